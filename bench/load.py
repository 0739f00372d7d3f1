"""Load benchmark: real calls through one real Asterisk node and the real service.

Callers are a sipp UAC (Debian's sip-tester) dialling 12345 on the nanjing trunk with RTP audio,
each with its own caller number (CSV injection); a share presses 1 in the menu (RFC 4733 DTMF
from sip-tester's pcap). Agents are real SIP registrations (digest auth, passwords derived from
HOTLINE_SIP_SECRET) answered by one sipp UAS: it answers Asterisk's qualify pings and the queue's
calls, talks with RTP audio both ways, and hangs up after the talk time. The service runs as its
own process (``hotline --config X serve``, with its console; ``--no-web`` without) on a fresh
PostgreSQL database and Redis prefix, with recording on (MixMonitor from the queue, files moved
and linked on the case by the service); transcription workers and live captions are off
(sized by bench/asr_throughput.py).

Modes:

    --mode smoke                          a few dozen calls in under a minute (the test's)
    --mode concurrency --target 200       hold 200 calls up at once: half talking, half queued
    --mode sustained --cps 20 --seconds 300
    --mode check --calls 10000            the sustained path for 10,000 calls (at --cps)

Every mode ends with the case check: exactly one case per sipp call (by caller number), ended,
answered by the agent whose phone answered it, plausible wait and talk, dialled number and
route as expected, recordings linked. JSON lines on stdout, progress on stderr; results in
bench/results/load.json (one entry per run, by --label, default the mode), plots
bench/results/load_<label>_*.png and the table bench/results/load.md (docs/load.md).
Everything started is stopped at the end; the database is dropped unless --keep.

    .venv/bin/python bench/load.py --mode sustained --cps 20 --seconds 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import PG_ADMIN, REDIS_URL, REPO, RESULTS, BenchAmi, emit, loadavg

sys.path.insert(0, str(REPO))

from common import sealed
from common.config import Config, parse_config
from common.privacy import PersonalData, mask_number, scrub
from common.secrets import sip_password
from common.tasks import cancel_and_wait
from lab.harness import Lab, ensure_secrets, free_sip_port, lab_config_toml, to_toml

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
SIPP_SHARE = Path("/usr/share/sip-tester")
SCENARIOS = Path(__file__).resolve().parent / "sipp"
CITY = "nanjing"
QUEUE_BY_KEY = {"0": f"{CITY}-general", "1": f"{CITY}-enterprise_policy"}
HZ = os.sysconf("SC_CLK_TCK")
MEMBER_STATES = ("Not in use", "In use", "Busy", "Unavailable", "Ringing", "Ring+Inuse",
                 "On Hold", "Invalid", "Unknown")


def progress(msg: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- parameters ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one run does; derived from the mode and flags."""

    mode: str
    agents: int
    talk_s: float
    cps: float
    calls: int
    limit: int           # sipp -l: most calls up at once (concurrency mode holds this many)
    key_share: float     # share of callers pressing 1
    max_wait_s: float    # a caller nobody answered within this fails
    seconds: float = 0.0
    target: int = 0
    db: str = "postgresql"

    @property
    def expected_s(self) -> float:
        return self.calls / self.cps + self.talk_s + 10


def make_plan(a: argparse.Namespace) -> Plan:
    key_share = a.key_share
    if a.mode == "smoke":
        calls = a.calls or 24
        return Plan("smoke", agents=a.agents or 6, talk_s=a.talk_s or 2.0, cps=a.cps or 3,
                    calls=calls, limit=a.limit or 40, key_share=key_share,
                    max_wait_s=60, db=a.db)
    if a.mode == "concurrency":
        target = a.target
        agents = a.agents or target // 2
        talk = a.talk_s or 30.0
        # After the ramp the limit keeps `target` callers up: every call that ends starts
        # another, so half talk and half wait for as long as --seconds.
        hold = a.seconds or 120
        calls = a.calls or int(target + agents * hold / talk)
        return Plan("concurrency", agents=agents, talk_s=talk, cps=a.cps or 10, calls=calls,
                    limit=target, key_share=key_share, max_wait_s=max(120, talk * 4),
                    seconds=hold, target=target, db=a.db)
    # sustained / check: enough agents for the rate at ~75 % occupancy.
    cps = a.cps or 20
    talk = a.talk_s or 4.0
    if a.mode == "check":
        calls = a.calls or 10000
        seconds = calls / cps
    else:
        seconds = a.seconds or 300
        calls = a.calls or int(cps * seconds)
    agents = a.agents or math.ceil(cps * (talk + 0.6) / 0.75)
    return Plan(a.mode, agents=agents, talk_s=talk, cps=cps, calls=calls,
                limit=a.limit or max(100, int(cps * (talk + 20))), key_share=key_share,
                max_wait_s=90, seconds=seconds, db=a.db)


# -- the stack: PostgreSQL database, Redis prefix, Asterisk, the service -------------------------


def load_config_toml(work: Path, plan: Plan, database_url: str, prefix: str) -> str:
    agents = [{"id": str(1001 + i), "name": f"坐席{i + 1}", "city": CITY,
               "skills": {"general": 4, "enterprise_policy": 4}} for i in range(plan.agents)]
    text = lab_config_toml(work, database_url=database_url, redis_prefix=prefix, overrides={
        "agents": agents,
        # One short prompt; silence goes on after the key window. The callers press their key
        # as the call starts, before any prompt: the menu-first dialplan, where the key comes
        # before the queue (queue first: bench/caller_entry.py, docs/caller-side.md).
        "menu.prompt": "您好，幺二三四五。", "menu.timeout_s": 1.0, "menu.first": "menu",
        "service.log_format": "json", "service.log_level": "info",
        "recording.enabled": True,
        # Transcription is sized on its own (bench/asr_throughput.py); recordings are still
        # moved and linked on cases by the service as in production.
        "asr.enabled": False, "asr.live": False,
        "queueing.ring_timeout_s": 15, "queueing.wrapup_s": 0,
    })
    raw = tomllib.loads(text)
    # The lab's 100-port RTP range holds ~50 channels; a load node needs one pair per channel.
    base = 30000 + secrets.randbelow(10) * 2000
    for n in raw["nodes"]:
        n["rtp_start"], n["rtp_end"] = base, base + 1998
    return to_toml(raw)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


async def queue_members_state(cli: Callable[[str], Awaitable[str]], queue: str
                              ) -> dict[str, str]:
    """Agent id -> device state as ``queue show`` prints it (Not in use, In use, ...)."""
    out = {}
    for line in (await cli(f"queue show {queue}")).splitlines():
        line = line.strip()
        if "(PJSIP/" not in line:
            continue
        agent = line.split(" ", 1)[0]
        states = [p.split(")", 1)[0] for p in line.split("(")[1:]]
        known = [s for s in states if s in MEMBER_STATES]
        out[agent] = known[0] if known else "?"
    return out


def cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def machine_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of all cores (/proc/stat), for the machine's share."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        user, nice, system, idle, iowait, irq, softirq, steal = f
        busy = user + nice + system + irq + softirq
        return busy, steal, busy + steal + idle + iowait
    return 0, 0, 0


def descendants(pid: int) -> list[int]:
    """pid and its children, grandchildren (the service's worker processes, if any)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for t in Path(f"/proc/{p}/task").iterdir():
                kids = (t / "children").read_text().split()
                todo.extend(int(k) for k in kids)
    return out


class Stack:
    """Everything one run needs, started and stopped in order."""

    def __init__(self, plan: Plan, keep: bool, web: bool = True, unfiltered: bool = False):
        self.unfiltered = unfiltered
        self.plan = plan
        self.keep = keep
        self.web = web
        self.http: Any = None
        self.work = Path(tempfile.mkdtemp(prefix="hotline-load-"))
        self.prefix = f"hotline-load-{secrets.token_hex(4)}"
        self.db_name: str | None = None
        self.database_url = ""
        self.cfg: Config | None = None
        self.lab: Lab | None = None
        self.service: subprocess.Popen[bytes] | None = None
        self.ami: BenchAmi | None = None
        self.sipps: list[subprocess.Popen[bytes]] = []
        self.agent_port = 0
        self.callers_sipp: subprocess.Popen[bytes] | None = None
        self.agents_sipp: subprocess.Popen[bytes] | None = None
        self.exit_cpu: dict[str, float] = {}
        self.config_path = self.work / "hotline.toml"

    async def cli(self, command: str) -> str:
        """An Asterisk CLI command (``asterisk -rx``): the service's AMI user may not run
        commands (docs/security.md), and the bench asks as the operator would."""
        assert self.lab is not None and self.cfg is not None
        inst = self.lab.instances[self.cfg.nodes[0].id]
        text = await asyncio.to_thread(inst.cli, command)
        return ANSI.sub("", text)  # the console colours its words (state names included)

    # database

    async def create_database(self) -> None:
        import asyncpg

        if self.plan.db == "sqlite":
            self.database_url = f"sqlite+aiosqlite:///{self.work}/hotline.db"
            return
        self.db_name = f"hotline_load_{secrets.token_hex(5)}"
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await conn.close()
        host = PG_ADMIN.split("@", 1)[1].rsplit("/", 1)[0]
        user = PG_ADMIN.split("://", 1)[1].split("@", 1)[0]
        self.database_url = f"postgresql+asyncpg://{user}@{host}/{self.db_name}"

    async def drop_database(self) -> None:
        import asyncpg

        if self.db_name is None:
            return
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def db_backend_pids(self) -> list[int]:
        import asyncpg

        if self.db_name is None:
            return []
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1",
                                    self.db_name)
        finally:
            await conn.close()
        return [r["pid"] for r in rows]

    # start / stop

    async def start(self) -> None:
        ensure_secrets()
        await self.create_database()
        self.config_path.write_text(load_config_toml(self.work, self.plan, self.database_url,
                                                     self.prefix), encoding="utf-8")
        self.cfg = parse_config(self.config_path.read_text(encoding="utf-8"),
                                source=str(self.config_path), base_dir=self.work)
        self.lab = Lab(self.cfg)
        progress(f"starting Asterisk ({self.plan.agents} agents, node {self.cfg.nodes[0].id}, "
                 f"SIP port {self.cfg.nodes[0].sip_port})")
        if self.unfiltered:
            await self.start_asterisk_unfiltered()
        else:
            await self.lab.start_asterisk()
        node = self.cfg.nodes[0]
        self.ami = await BenchAmi(node.ami_host, node.ami_port, node.ami_username,
                                  self.cfg.ami_secret, events=False).connect()
        progress("starting the service: hotline serve" + ("" if self.web else " --no-web"))
        self.spawn_service()
        await self.wait_members()
        await self.register_agents()

    async def start_asterisk_unfiltered(self) -> None:
        """Baseline (--unfiltered): the project's configuration without its AMI event filters
        (asterisk-conf/manager.conf.j2), as before issue 21, to measure what they save."""
        from telephony.asterisk.instance import reap_orphans

        assert self.lab is not None and self.cfg is not None
        reap_orphans()
        inst = self.lab.instance
        inst.render(self.cfg, ami_secret=self.cfg.ami_secret, sip_master=self.cfg.sip_secret)
        conf = inst.dir / "etc" / "manager.conf"
        conf.write_text("".join(line for line in conf.read_text().splitlines(keepends=True)
                                if not line.startswith("eventfilter")))
        inst.start(owner_pid=os.getpid())
        await inst.wait_ready(self.cfg.ami_secret)

    def spawn_service(self) -> None:
        """The service as its own process, as operators run it, so its CPU is its own."""
        argv = [sys.executable, "-m", "hotline.cli", "--config", str(self.config_path), "serve"]
        if not self.web:
            argv.append("--no-web")
        with open(self.work / "service.log", "wb") as log:
            self.service = subprocess.Popen(
                argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                preexec_fn=_pdeathsig)

    async def wait_members(self, timeout: float = 90) -> None:
        """The service adds every agent to its queues once it is connected to AMI."""
        assert self.ami is not None
        deadline = time.monotonic() + timeout
        want = self.plan.agents
        while time.monotonic() < deadline:
            if self.service is not None and self.service.poll() is not None:
                raise RuntimeError("the service exited at start:\n" + self.service_log_tail())
            if len(await queue_members_state(self.cli, QUEUE_BY_KEY["0"])) >= want:
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"agents not in {QUEUE_BY_KEY['0']} after {timeout:.0f} s:\n"
                           + self.service_log_tail())

    async def metrics(self) -> dict[str, float]:
        """The service's Prometheus figures (summed over labels)."""
        import aiohttp

        assert self.cfg is not None
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        async with self.http.get(f"http://127.0.0.1:{self.cfg.web.port}/metrics") as resp:
            text = await resp.text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, _, value = line.rpartition(" ")
            name = name.split("{", 1)[0]
            with contextlib.suppress(ValueError):
                out[name] = out.get(name, 0.0) + float(value)
        return out

    def service_log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.work / "service.log").read_text(errors="replace")
                             .splitlines()[-n:])
        return ""

    def scenario(self, name: str, **values: Any) -> Path:
        text = (SCENARIOS / f"{name}.xml").read_text(encoding="utf-8")
        for k, v in values.items():
            text = text.replace(f"@@{k}@@", str(v))
        if "@@" in text:
            raise ValueError(f"{name}.xml: unfilled placeholder")
        out = self.work / f"{name}.xml"
        out.write_text(text, encoding="utf-8")
        return out

    def sipp_argv(self, scenario: Path, *extra: str) -> list[str]:
        assert self.cfg is not None
        return [SIPP, f"127.0.0.1:{self.cfg.nodes[0].sip_port}", "-sf", str(scenario),
                "-i", "127.0.0.1", "-nostdin", *extra]

    def start_sipp(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        out = open(self.work / f"{name}.out", "wb")
        proc = subprocess.Popen(argv, cwd=self.work, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_pdeathsig)
        out.close()
        self.sipps.append(proc)
        return proc

    def exited(self, proc: subprocess.Popen[bytes], name: str) -> bool:
        """Whether a child has exited; reaps it with its CPU time (gone from /proc after)."""
        if proc.returncode is not None:
            return True
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.exit_cpu[name] = usage.ru_utime + usage.ru_stime
        proc.returncode = os.waitstatus_to_exitcode(status)
        return True

    async def register_agents(self) -> None:
        assert self.cfg is not None and self.ami is not None
        rows = [(a.id, sip_password(self.cfg.sip_secret, a.id)) for a in self.cfg.agents]
        agents_csv = self.work / "agents.csv"
        # sipp 3.6 does not expand [field] inside [authentication ...]: the CSV holds the whole
        # keyword, which sipp then processes as one.
        agents_csv.write_text("SEQUENTIAL\n" + "".join(
            f"{i};[authentication username={i} password={p}]\n" for i, p in rows))
        self.agent_port = free_sip_port()
        reg = self.scenario("register", EXPIRES=3600)
        progress(f"registering {len(rows)} agents from 127.0.0.1:{self.agent_port}")
        proc = self.start_sipp(self.sipp_argv(
            reg, "-p", str(self.agent_port), "-inf", str(agents_csv), "-m", str(len(rows)),
            "-r", "50", "-l", "50", "-trace_err", "-max_retrans", "3"), "register")
        rc = await asyncio.to_thread(proc.wait, 60)
        self.sipps.remove(proc)
        if rc != 0:
            raise RuntimeError(f"agent registration failed (sipp exit {rc}); see "
                               f"{self.work}/register.out")
        audio = self.audio_file()
        uas = self.scenario("agent", TALK_MS=int(self.plan.talk_s * 1000), AUDIO=audio)
        # The smoke run (and a kept one, for inspection) keeps every SIP message the agents'
        # phones got: the check looks for callers' numbers in clear in them (agents' phones
        # show them masked).
        trace = (["-trace_msg", "-message_file", str(self.work / "agents_messages.log")]
                 if self.plan.mode == "smoke" or self.keep else [])
        self.agents_sipp = self.start_sipp(self.sipp_argv(
            uas, "-p", str(self.agent_port), "-mp", str(self.media_base(1)), *trace,
            "-trace_stat", "-fd", "1", "-stf", str(self.work / "agents_stat.csv"),
            "-trace_logs", "-log_file", str(self.work / "agents_answers.log"),
            "-trace_err", "-error_file", str(self.work / "agents_errors.log"),
            # A bench killed before its clean-up leaves no agents' sipp running for ever.
            "-timeout", f"{int(self.plan.expected_s + 900)}s",
            "-max_recv_loops", "10000", "-max_sched_loops", "10000"), "agents")
        # Every agent ready (registered, qualified, not in use) in the queue before loading.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.agents_sipp.poll() is not None:
                out = self.work / "agents.out"
                tail = out.read_text(errors="replace")[-2000:] if out.exists() else ""
                raise RuntimeError(f"agents' sipp exited ({self.agents_sipp.returncode}); "
                                   f"its output ended:\n{tail}")
            states = await queue_members_state(self.cli, QUEUE_BY_KEY["0"])
            if sum(1 for v in states.values() if v == "Not in use") >= self.plan.agents:
                progress(f"{self.plan.agents} agents registered and available")
                return
            await asyncio.sleep(0.5)
        text = await self.cli(f"queue show {QUEUE_BY_KEY['0']}")
        raise TimeoutError(f"agents not available after registering:\n{text}")

    def media_base(self, i: int) -> int:
        """sipp's media ports: below the kernel's ephemeral range (32768-60999, where the
        pjsua2 parties' and browsers' RTP sockets land) and the labs' Asterisk RTP ranges
        (20000-29199); two benches apart by their nodes' RTP ranges."""
        assert self.cfg is not None
        return 10000 + (self.cfg.nodes[0].rtp_start % 1000) + i * 4500

    def audio_file(self) -> Path:
        """Raw A-law speech-like audio (a tone sweep) for sipp's rtp_stream."""
        out = self.work / "talk.alaw"
        if not out.exists():
            subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "a-law", "-t", "raw",
                            str(out), "synth", "4", "sine", "300-1200", "vol", "0.3"],
                           check=True)
        return out

    async def stop(self) -> None:
        for proc in list(self.sipps):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGUSR1)  # sipp: stop gracefully
        for proc in list(self.sipps):
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
        self.sipps.clear()
        if self.service is not None and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.service.wait, 30)
            except subprocess.TimeoutExpired:
                self.service.kill()
                await asyncio.to_thread(self.service.wait)
        if self.ami is not None:
            await self.ami.close()
        if self.http is not None:
            await self.http.close()
        if self.lab is not None:
            await self.lab.stop_asterisk()
        await self.clean_redis()
        if not self.keep:
            await self.drop_database()
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            progress(f"kept: {self.work}, database {self.db_name or self.database_url}")

    async def clean_redis(self) -> None:
        from redis.asyncio import Redis

        r = Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            keys = [k async for k in r.scan_iter(f"{self.prefix}:*", count=1000)]
            for i in range(0, len(keys), 500):
                await r.delete(*keys[i:i + 500])
        finally:
            await r.aclose()


# -- one run: callers, watching, checking -----------------------------------------------------


def caller_numbers(plan: Plan) -> list[tuple[str, str]]:
    """Unique mobile numbers (139 + 8 digits, a fresh block per run) and whether each presses 1;
    the key presses are spread evenly through the run."""
    if plan.calls > 10_000:
        # Agents' phones show callers masked (139****0004): the last four digits tell apart.
        raise SystemExit("at most 10,000 calls in one run (the check tells calls apart by "
                         "the last four digits agents' phones show)")
    block = secrets.randbelow(9000) * 10000
    out = []
    acc = 0.0
    for i in range(plan.calls):
        acc += plan.key_share
        key = "1" if acc >= 1.0 else "0"
        if key == "1":
            acc -= 1.0
        out.append((f"139{(block + i) % 100_000_000:08d}", key))
    return out


def key_pcap(out: Path, key: str = "1", gap_s: float = 0.2) -> Path:
    """sip-tester's RFC 4733 event for the key, then its G.711 A-law speech, in one pcap: sipp
    plays a pcap from one port, and Asterisk's strict RTP takes one source per call."""
    import struct

    def records(path: Path) -> tuple[bytes, list[tuple[float, bytes]]]:
        data = path.read_bytes()
        header, off, out = data[:24], 24, []
        while off + 16 <= len(data):
            sec, usec, incl, _orig = struct.unpack("<IIII", data[off:off + 16])
            out.append((sec + usec / 1e6, data[off + 16:off + 16 + incl]))
            off += 16 + incl
        return header, out

    header, dtmf = records(SIPP_SHARE / f"dtmf_2833_{key}.pcap")
    header2, speech = records(SIPP_SHARE / "g711a.pcap")
    if header[20:24] != header2[20:24]:
        raise ValueError("sip-tester's pcaps differ in link type")
    # sipp sends each packet to the remote port plus its offset from the pcap's lowest port:
    # the event gets the speech's UDP ports (Ethernet 14 + IPv4 20 bytes, then UDP).
    ports = speech[0][1][34:38]
    dtmf = [(t, p[:34] + ports + p[38:40] + b"\0\0" + p[42:]) for t, p in dtmf]
    t0, d_end, s0 = dtmf[0][0], dtmf[-1][0], speech[0][0]
    chunks = [header]
    for t, pkt in [(t - t0, p) for t, p in dtmf] + [
            (d_end - t0 + gap_s + t - s0, p) for t, p in speech]:
        sec = int(t)
        chunks.append(struct.pack("<IIII", 1_000_000_000 + sec, int((t - sec) * 1e6),
                                  len(pkt), len(pkt)) + pkt)
    out.write_bytes(b"".join(chunks))
    return out


def start_callers(st: Stack, plan: Plan, numbers: list[tuple[str, str]]) -> subprocess.Popen[bytes]:
    callers_csv = st.work / "callers.csv"
    callers_csv.write_text("SEQUENTIAL\n" + "".join(f"{n};{k}\n" for n, k in numbers))
    uac = st.scenario("caller", AUDIO=st.audio_file(), MAX_WAIT_MS=int(plan.max_wait_s * 1000),
                      KEY_AFTER_MS=300, KEY_PCAP=key_pcap(st.work / "key1.pcap"),
                      AUDIO_PCAP=SIPP_SHARE / "g711a.pcap",
                      MAX_LOOPS=math.ceil(plan.max_wait_s / 7))
    return st.start_sipp(st.sipp_argv(
        uac, "-p", str(free_sip_port()), "-mp", str(st.media_base(0)),
        "-inf", str(callers_csv), "-r", f"{plan.cps:g}", "-l", str(plan.limit),
        "-m", str(plan.calls),
        "-trace_stat", "-fd", "1", "-stf", str(st.work / "callers_stat.csv"),
        "-trace_rtt", "-rtt_freq", "1",
        "-trace_err", "-error_file", str(st.work / "callers_errors.log"),
        # A BYE that lands in the moment a waiting caller replays its audio (the scenario is
        # between two receives) is not the call's failure: sipp lets it pass, Asterisk sends
        # it again 0.5 s later and the scenario takes it (it used to fail 1-2 calls in 600).
        "-default_behaviors", "all,-abortunexp",
        "-max_recv_loops", "10000", "-max_sched_loops", "10000"), "callers")


def _pdeathsig() -> None:
    """Children die with the bench (a killed bench leaves no sipp or service behind)."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def read_stat_csv(path: Path) -> list[dict[str, str]]:
    """sipp's -trace_stat file: one row per second (-fd 1)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return []
    head = lines[0].rstrip(";").split(";")
    return [dict(zip(head, ln.rstrip(";").split(";"), strict=False)) for ln in lines[1:]]


def last_stat(path: Path) -> dict[str, str]:
    """The last row of a sipp stat file without reading it all."""
    try:
        with open(path, "rb") as f:
            head = f.readline().decode(errors="replace").rstrip().rstrip(";").split(";")
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            tail = f.read().decode(errors="replace").splitlines()
    except OSError:
        return {}
    rows = [ln for ln in tail if ln.strip() and not ln.startswith("StartTime")]
    if not rows:
        return {}
    return dict(zip(head, rows[-1].rstrip(";").split(";"), strict=False))


def stat_int(row: dict[str, str], key: str) -> int:
    try:
        return int(float(row.get(key, "0") or 0))
    except ValueError:
        return 0


def pids_named(comm: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                if (p / "comm").read_text().strip() == comm:
                    out.append(int(p.name))
    return out


@dataclass
class Sample:
    t: float
    cpu: dict[str, float]          # seconds of CPU so far, per party
    channels: int = 0
    waiting: int = 0
    talking: int = 0
    backlog: int | None = None     # AMI events the service received and has not handled yet
    facts: int | None = None       # call facts applied to cases so far
    events: int | None = None      # AMI events the service handled so far


@dataclass
class Watch:
    """CPU of every party and Asterisk's view of calls, once a second."""

    st: Stack
    samples: list[Sample] = field(default_factory=list)
    pg_ticks: dict[int, int] = field(default_factory=dict)
    pg_base: dict[int, int] = field(default_factory=dict)
    redis_pid: int | None = None

    def __post_init__(self) -> None:
        reds = pids_named("redis-server")
        self.redis_pid = reds[0] if len(reds) == 1 else None

    def parties(self) -> dict[str, list[int]]:
        st = self.st
        out: dict[str, list[int]] = {}
        if st.service is not None:
            out["service"] = descendants(st.service.pid)
        pid = st.lab.instance.pid() if st.lab is not None else None
        if pid:
            out["asterisk"] = [pid]
        if st.callers_sipp is not None:
            out["sipp_callers"] = [st.callers_sipp.pid]
        if st.agents_sipp is not None:
            out["sipp_agents"] = [st.agents_sipp.pid]
        return out

    async def sample(self, with_ami: bool = True, scrape: bool = True) -> Sample:
        cpu: dict[str, float] = {}
        for name, pids in self.parties().items():
            cpu[name] = sum(cpu_ticks(p) or 0 for p in pids) / HZ
        for name, secs in self.st.exit_cpu.items():  # reaped: its whole life's CPU
            cpu[name] = secs
        # PostgreSQL: the backends serving this run's database (the server is shared).
        for pid in self.pg_ticks:
            t = cpu_ticks(pid)
            if t is not None:
                self.pg_ticks[pid] = t
        cpu["postgres"] = sum(self.pg_ticks[p] - self.pg_base[p] for p in self.pg_ticks) / HZ
        if self.redis_pid:
            cpu["redis"] = (cpu_ticks(self.redis_pid) or 0) / HZ
        busy, steal, _total = machine_ticks()
        cpu["machine"] = busy / HZ   # every process on every core (other users included)
        cpu["steal"] = steal / HZ    # time the hypervisor gave to other machines
        s = Sample(time.monotonic(), cpu)
        if with_ami and self.st.ami is not None:
            with contextlib.suppress(Exception):
                count = await self.st.cli("core show channels count")
                for line in count.splitlines():
                    if "active channel" in line:
                        s.channels = int(line.split()[0])
                qs = await self.st.ami.queue_summary()
                s.waiting = sum(q["Callers"] for q in qs.values())
                general = qs.get(QUEUE_BY_KEY["0"], {})
                s.talking = max(0, self.st.plan.agents - general.get("Available", 0))
        if with_ami and scrape and self.st.web:
            with contextlib.suppress(Exception):
                m = await self.st.metrics()
                s.backlog = int(m.get("hotline_ami_event_backlog", 0))
                s.facts = int(m.get("hotline_case_facts_total", 0))
                s.events = int(m.get("hotline_ami_events_total", 0))
        self.samples.append(s)
        return s

    async def refresh_pg(self) -> None:
        with contextlib.suppress(Exception):
            for pid in await self.st.db_backend_pids():
                if pid not in self.pg_ticks:
                    t = cpu_ticks(pid) or 0
                    self.pg_ticks[pid] = self.pg_base[pid] = t

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            if n % 5 == 0:
                await self.refresh_pg()
            # The service's /metrics every 5 s, as a Prometheus would (every 15 s or so):
            # scraped every second, its exposition was 3 % of the service's CPU at 5 calls/s.
            await self.sample(scrape=n % 5 == 0)
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 3)


async def run_load(plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    st = Stack(plan, keep=args.keep, web=args.web, unfiltered=args.unfiltered)
    result: dict[str, Any] = {"mode": plan.mode, "plan": asdict(plan),
                              "unfiltered": args.unfiltered,
                              "work_dir": str(st.work), "database": st.db_name}
    stop = asyncio.Event()
    watch = Watch(st)
    watcher: asyncio.Task[None] | None = None
    try:
        t_boot = time.monotonic()
        await st.start()
        result["database"] = st.db_name
        result["start_s"] = round(time.monotonic() - t_boot, 1)
        numbers = caller_numbers(plan)
        result["loadavg_before"] = loadavg()
        await watch.refresh_pg()
        base = await watch.sample(with_ami=False)
        progress(f"{plan.mode}: {plan.calls} calls at {plan.cps:g}/s (at most {plan.limit} up), "
                 f"{plan.agents} agents, talk {plan.talk_s:g} s, "
                 f"{plan.key_share:.0%} press 1")
        spy = start_profiler(st, args.profile) if args.profile else None
        perf = start_perf(st, args.perf) if args.perf else None
        t0 = time.monotonic()
        st.callers_sipp = start_callers(st, plan, numbers)
        watcher = asyncio.create_task(watch.run(stop))
        last = 0.0
        while not st.exited(st.callers_sipp, "sipp_callers"):
            await asyncio.sleep(0.5)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                row = last_stat(st.work / "callers_stat.csv")
                s = watch.samples[-1] if watch.samples else base
                started = stat_int(row, "OutgoingCall(C)")
                up = stat_int(row, "CurrentCall")
                progress(f"{time.monotonic() - t0:6.0f} s  started {started}/{plan.calls}  "
                         f"up {up}  "
                         f"talking {s.talking}  waiting {s.waiting}  "
                         f"service lag {s.backlog if s.backlog is not None else '-'} events  "
                         f"ok {stat_int(row, 'SuccessfulCall(C)')}  "
                         f"failed {stat_int(row, 'FailedCall(C)')}  "
                         f"load {' '.join(map(str, loadavg()))}")
        t_calls = time.monotonic()
        result["callers_exit"] = st.callers_sipp.returncode
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await asyncio.to_thread(spy.wait, 60)
            result["profile"] = str(args.profile)
        if perf is not None:
            result["perf"] = await stop_perf(st, perf, args.perf)
        progress(f"callers done in {t_calls - t0:.0f} s; waiting for the cases to complete")
        settled = await wait_settled(st, plan, numbers)
        t_settled = time.monotonic()
        stop.set()
        await watcher
        watcher = None
        end = await watch.sample(with_ami=False)
        result["loadavg_after"] = loadavg()
        result["settle_s"] = round(t_settled - t_calls, 1)
        result["settled"] = settled
        result.update(summarize(st, plan, watch, base, end, t0, t_calls, t_settled))
        progress("checking every call's case")
        result["check"] = await check_cases(st, plan, numbers)
        result["service_log"] = service_log_summary(st.work / "service.log")
        result["ok"] = bool(result["check"]["ok"] and result["sipp"]["failed"] == 0
                            and result["sipp"]["successful"] == plan.calls and settled)
        if plan.mode == "concurrency":
            held = result["concurrency"]["held_s"]
            result["ok"] = result["ok"] and held > 0
        result["plots"] = plots(st, plan, watch, t0, args.results, args.plots,
                                args.label or plan.mode)
        return result
    finally:
        stop.set()
        if watcher is not None:
            await cancel_and_wait([watcher], what="watcher")
        progress("stopping sipp, the service and Asterisk")
        await st.stop()


def start_profiler(st: Stack, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (pip install py-spy) sampling the service while the calls run: collapsed
    stacks for flame graphs, or speedscope JSON when ``out`` ends in .json. Only the thread
    holding the GIL is sampled (``--gil``): without it, worker threads waiting in the kernel
    (a recording's fsync) were counted as if they used the CPU; the service's worker threads
    use ~0.3 % of its CPU (per-thread /proc counters), the event loop's thread the rest."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    assert st.service is not None
    fmt = "speedscope" if out.suffix == ".json" else "raw"
    return subprocess.Popen([spy, "record", "-p", str(st.service.pid), "-o", str(out),
                             "-f", fmt, "-r", "100", "--nonblocking", "--gil"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_pdeathsig)


def start_perf(st: Stack, out: Path) -> subprocess.Popen[bytes]:
    """perf sampling Asterisk's threads on CPU (the virtual machine has no hardware
    counters: cpu-clock), with call graphs, while the calls run."""
    pid = st.lab.instance.pid() if st.lab is not None else None
    assert pid, "Asterisk is not running"
    return subprocess.Popen(["perf", "record", "-F", "199", "-e", "cpu-clock", "-g", "-p",
                             str(pid), "-o", str(out.with_suffix(".data"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_pdeathsig)


async def stop_perf(st: Stack, perf: subprocess.Popen[bytes], out: Path) -> str:
    """Stops perf; writes Asterisk's CPU by module (shared object) and by symbol, and its
    task processors' counters (``core show taskprocessors``), to ``out``."""
    perf.send_signal(signal.SIGINT)
    await asyncio.to_thread(perf.wait, 60)
    data = str(out.with_suffix(".data"))
    parts = []
    for sort in ("dso", "dso,sym"):
        rep = await asyncio.to_thread(subprocess.run, [
            "perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio",
            "--percent-limit", "0.5", "-g", "none"], capture_output=True, text=True)
        parts.append(f"## perf report --sort {sort}\n\n{rep.stdout}")
    if st.lab is not None:
        for cmd in ("core show taskprocessors", "core show threads", "core show channels count"):
            try:
                text = await asyncio.to_thread(st.lab.instance.cli, cmd)
            except (OSError, subprocess.SubprocessError) as exc:
                text = f"({exc})"
            parts.append(f"## {cmd}\n\n{text}")
    await asyncio.to_thread(out.write_text, "\n".join(parts), encoding="utf-8")
    return str(out)


async def wait_settled(st: Stack, plan: Plan, numbers: list[tuple[str, str]],
                       timeout: float = 180) -> bool:
    """Until every call's case is ended and its recordings are linked (or the timeout)."""
    from sqlalchemy import func, select

    from asr.models import Recording
    from cases.db import make_engine, sessionmaker
    from cases.models import Case

    engine = make_engine(st.database_url)
    try:
        sessions = sessionmaker(engine)
        deadline = time.monotonic() + timeout
        last = (-1, -1)
        while time.monotonic() < deadline:
            async with sessions() as s:
                ended = (await s.execute(select(func.count(Case.id)).where(
                    Case.call_state == "ended"))).scalar_one()
                recorded = (await s.execute(select(func.count(func.distinct(
                    Recording.case_id))))).scalar_one()
            if ended >= len(numbers) and recorded >= len(numbers):
                return True
            if (ended, recorded) != last:
                progress(f"cases ended {ended}/{len(numbers)}, with recordings {recorded}")
                last = (ended, recorded)
            await asyncio.sleep(2)
        return False
    finally:
        await engine.dispose()


def answers(path: Path) -> dict[str, list[str]]:
    """Caller number as agents' phones show it (masked, 139****0004) -> agents whose phone
    answered it (from the agents' sipp log)."""
    out: dict[str, list[str]] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "answer":
                out.setdefault(parts[2], []).append(parts[1])
    return out


async def check_cases(st: Stack, plan: Plan, numbers: list[tuple[str, str]]) -> dict[str, Any]:
    """Exactly one correct case per sipp call, none without a call."""
    from sqlalchemy import select

    from asr.models import Recording
    from cases.db import make_engine, sessionmaker
    from cases.models import Case

    assert st.cfg is not None
    personal = PersonalData(st.cfg.data_key)
    answered_by = answers(st.work / "agents_answers.log")
    engine = make_engine(st.database_url)
    try:
        async with sessionmaker(engine)() as s:
            cases = (await s.execute(select(Case))).scalars().all()
            recs = (await s.execute(select(Recording))).scalars().all()
    finally:
        await engine.dispose()
    result = evaluate_cases(st, plan, numbers, cases, recs, personal, answered_by)
    messages = st.work / "agents_messages.log"
    if messages.exists():
        seen = messages.read_text(errors="replace")
        clear = [n for n, _ in numbers if n in seen]
        result["agent_messages_checked"] = True
        if clear:
            result["ok"] = False
            result["problems"]["number_in_clear_to_agent"] = len(clear)
            result["examples"]["number_in_clear_to_agent"] = [mask_number(n) for n in clear[:3]]
    return result


def evaluate_cases(st: Stack, plan: Plan, numbers: list[tuple[str, str]], cases: Any,
                   recs: Any, personal: PersonalData, answered_by: dict[str, list[str]]
                   ) -> dict[str, Any]:
    import wave

    import numpy as np

    assert st.cfg is not None
    by_case: dict[int, list[Any]] = {}
    for r in recs:
        by_case.setdefault(r.case_id, []).append(r)
    by_number: dict[str, list[Any]] = {}
    for c in cases:
        by_number.setdefault(personal.decrypt(c.caller_enc) or "", []).append(c)
    wanted = dict(numbers)
    problems: dict[str, list[str]] = {}

    def bad(kind: str, number: str) -> None:
        problems.setdefault(kind, []).append(number)

    agents = {a.id for a in st.cfg.agents}
    chain = {"0": {QUEUE_BY_KEY["0"], "province-general"},
             "1": {QUEUE_BY_KEY["1"], QUEUE_BY_KEY["0"], "province-general"}}
    waits, talks = [], []
    audio_checked = 0
    for number, key in numbers:
        found = by_number.get(number, [])
        if len(found) != 1:
            bad("no_case" if not found else "several_cases", number)
            continue
        c = found[0]
        if c.call_state != "ended":
            bad("not_ended", number)
        if c.outcome != "answered":
            bad(f"outcome_{c.outcome}", number)
        if c.agent_id is None or c.agent_id not in agents:
            bad("no_agent", number)
        elif answered_by.get(mask_number(number)) != [c.agent_id]:
            bad("wrong_agent", number)
        if c.dialed_number != "12345" or c.trunk != CITY or c.city != CITY:
            bad("wrong_origin", number)
        if (c.route_queue != QUEUE_BY_KEY[key] or c.route_source != "router"
                or "router_unavailable" in (c.flags or [])):
            bad("wrong_route", number)
        if (c.menu_key or "0") != key:
            bad("wrong_key", number)
        if c.queue not in chain[key]:
            bad("wrong_queue", number)
        if c.hangup_by != "agent":
            bad("wrong_hangup", number)
        if c.wait_seconds is None or not 0 <= c.wait_seconds <= plan.max_wait_s:
            bad("wait_implausible", number)
        else:
            waits.append(c.wait_seconds)
        if c.talk_seconds is None or abs(c.talk_seconds - plan.talk_s) > 2.0:
            bad("talk_implausible", number)
        else:
            talks.append(c.talk_seconds)
        rs = by_case.get(c.id, [])
        sides = sorted(r.side for r in rs)
        if sides != ["agent", "caller", "mix"] or any(r.part != 1 for r in rs):
            bad("recordings_missing", number)
            continue
        for r in rs:
            p = Path(r.path)
            if (not p.is_file() or (r.bytes or 0) <= 44 or r.seconds is None
                    or abs(r.seconds - plan.talk_s) > 2.0):
                bad("recording_implausible", number)
                break
        else:
            # Audio both ways, on a sample of calls: each side's file is not silence.
            if audio_checked < 20:
                audio_checked += 1
                for r in rs:
                    if r.side == "mix":
                        continue
                    # Stored sealed (common/sealed.py): opened with the data key, as the
                    # service does for playback and transcription.
                    clear = sealed.read_all(Path(r.path), personal)
                    with wave.open(io.BytesIO(clear), "rb") as w:
                        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
                    if pcm.size == 0 or float(np.sqrt(np.mean(pcm.astype(float) ** 2))) < 200:
                        bad(f"silent_{r.side}", number)
    extra = [c.number for n, cs in by_number.items() if n not in wanted for c in cs]
    if extra:
        problems["case_without_call"] = extra
    counts = {k: len(v) for k, v in problems.items()}

    def detail(number: str) -> dict[str, Any]:
        found = by_number.get(number) or []
        if len(found) != 1:
            return {"cases": len(found)}
        c = found[0]
        return {"case": c.number, "state": c.call_state, "outcome": c.outcome,
                "agent": c.agent_id, "phone_answered": answered_by.get(mask_number(number)),
                "queue": c.queue, "route": c.route_queue, "source": c.route_source,
                "flags": c.flags, "wait_s": c.wait_seconds, "talk_s": c.talk_seconds,
                "hangup_by": c.hangup_by,
                "recordings": sorted((r.side, r.seconds) for r in by_case.get(c.id, []))}

    return {
        "calls": len(numbers), "cases": len(cases), "recordings": len(recs),
        "ok": not problems, "problems": counts,
        "examples": {k: v[:3] for k, v in problems.items()},
        "details": {k: [detail(n) for n in v[:2]] for k, v in problems.items()
                    if k != "case_without_call"},
        "audio_checked_calls": audio_checked,
        "wait_s": {"p50": pct(waits, 50), "p95": pct(waits, 95), "max": max(waits, default=None)},
        "talk_s": {"min": min(talks, default=None), "max": max(talks, default=None)},
    }


def service_log_summary(path: Path) -> dict[str, Any]:
    """Warnings and errors the service logged (AMI disconnects, routing fallbacks...)."""
    counts: dict[str, int] = {}
    lines = 0
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        for line in f:
            lines += 1
            try:
                doc = json.loads(line)
            except ValueError:
                if "Traceback" in line:
                    counts["traceback"] = counts.get("traceback", 0) + 1
                continue
            if doc.get("level") in ("warning", "error", "critical"):
                key = f"{doc['level']}: {doc.get('msg', '')}"
                if doc.get("sample"):  # malformed AMI data: what was wrong (no personal data)
                    key += f" ({str(doc['sample'])[:60]})"
                key = key[:160]
                counts[key] = counts.get(key, 0) + 1
    return {"lines": lines, "warnings_errors": counts}


def summarize(st: Stack, plan: Plan, watch: Watch, base: Sample, end: Sample, t0: float,
              t_calls: float, t_settled: float) -> dict[str, Any]:
    rows = read_stat_csv(st.work / "callers_stat.csv")
    agent_rows = read_stat_csv(st.work / "agents_stat.csv")
    last = rows[-1] if rows else {}
    successful = stat_int(last, "SuccessfulCall(C)")
    failed = stat_int(last, "FailedCall(C)")
    created = stat_int(last, "OutgoingCall(C)")
    # Calls up (sipp's view of the callers), and Asterisk's waiting / talking.
    up = [stat_int(r, "CurrentCall") for r in rows]
    talking_sipp = [stat_int(r, "CurrentCall") for r in agent_rows]
    rtt = rtt_values(st.work)
    errors = {}
    for side in ("callers", "agents"):
        with contextlib.suppress(OSError):
            text = (st.work / f"{side}_errors.log").read_text(errors="replace")
            # What sipp saw go wrong, the first few entries (headers carry numbers: masked).
            # sipp does not always end an entry with a newline: entries start with a date.
            entries = re.split(r"(?=\d{4}-\d{2}-\d{2}\t\d)", text)
            errors[side] = [scrub(" ".join(e.split()))[:400] for e in entries
                            if "Aborting" in e or "unexpected" in e.lower()][:5]
    # Calls started per second while the rate ran (sipp's own periodic counts).
    started = [stat_int(r, "OutgoingCall(P)") for r in rows]
    active = [x for x in started if x > 0]
    steady = active[2:-2] if len(active) > 6 else active
    created_window = max(1, len(active))
    cpu = {k: round(end.cpu.get(k, 0) - base.cpu.get(k, 0), 2) for k in end.cpu}
    calls = max(1, successful)
    per_call_ms = {k: round(v * 1000 / calls, 2) for k, v in cpu.items()
                   if k not in ("machine", "steal")}
    svc, ast = cpu.get("service", 0.0), cpu.get("asterisk", 0.0)
    window = t_settled - t0
    ours = sum(v for k, v in cpu.items() if k not in ("machine", "steal", "redis"))
    machine = {"cores": os.cpu_count(),
               "busy_pct_of_all_cores": round(cpu.get("machine", 0) * 100
                                              / (window * (os.cpu_count() or 1)), 1),
               "this_run_pct_of_all_cores": round(ours * 100 / (window * (os.cpu_count() or 1)),
                                                  1),
               "steal_pct": round(cpu.get("steal", 0) * 100 / (window * (os.cpu_count() or 1)),
                                  1)}
    for k in ("machine", "steal"):
        cpu.pop(k, None)
    out: dict[str, Any] = {
        "sipp": {"created": created, "successful": successful, "failed": failed,
                 "retransmissions": stat_int(last, "Retransmissions(C)"),
                 "unexpected": stat_int(last, "FailedUnexpectedMessage(C)"),
                 "timeouts": stat_int(last, "FailedTimeoutOnRecv(C)"),
                 "watchdog_major": stat_int(last, "WatchdogMajor(C)"),
                 # The agents' phones: qualify pings answered count as calls there too.
                 "agents_failed": stat_int(agent_rows[-1] if agent_rows else {},
                                           "FailedCall(C)")},
        "sipp_errors": errors,
        "rate": {"target_cps": plan.cps,
                 "achieved_cps": round(created / created_window, 2),
                 "steady_cps_min": min(steady, default=0),
                 "steady_cps_median": statistics.median(steady) if steady else 0,
                 "calling_s": round(t_calls - t0, 1)},
        "invite_200_ms": {"n": len(rtt), "p50": pct(rtt, 50), "p95": pct(rtt, 95),
                          "p99": pct(rtt, 99), "max": max(rtt, default=None),
                          "resolution_ms": 1},
        "cpu_s": cpu, "cpu_ms_per_call": per_call_ms, "window_s": round(window, 1),
        "machine_cpu": machine,
        "cpu_pct_of_one_core": {k: round(v * 100 / window, 1) for k, v in cpu.items()},
        "service_vs_asterisk_cpu": round(svc / ast, 3) if ast else None,
        "ami_events_per_call": round(max((s.events for s in watch.samples
                                          if s.events is not None), default=0) / calls, 1),
        "service_lag_events_max": max((s.backlog for s in watch.samples
                                       if s.backlog is not None), default=None),
        "concurrency": {"max_up": max(up, default=0),
                        "max_talking": max(talking_sipp, default=0),
                        "max_waiting": max((s.waiting for s in watch.samples), default=0),
                        "max_channels": max((s.channels for s in watch.samples), default=0)},
    }
    if plan.mode == "concurrency":
        # Seconds the node held the target with half waiting and half talking (±5 %).
        tol = max(1, plan.target // 20)
        held = [s for s in watch.samples
                if s.channels >= 1 and abs(s.waiting - (plan.target - plan.agents)) <= tol
                and abs(s.talking - plan.agents) <= tol]
        full = [u for u in up if u >= plan.target]
        out["concurrency"].update({
            "target": plan.target, "seconds_at_target_up": len(full),
            "held_s": len(held),
            "talking_when_held": round(statistics.mean(s.talking for s in held), 1)
            if held else None,
            "waiting_when_held": round(statistics.mean(s.waiting for s in held), 1)
            if held else None})
    return out


def rtt_values(work: Path) -> list[float]:
    return [ms for _, ms in rtt_series(work)]


def rtt_series(work: Path) -> list[tuple[float, float]]:
    """(seconds, INVITE -> 200 OK ms) for each call, from sipp's -trace_rtt files."""
    out = []
    for f in work.glob("caller_*_rtt.csv"):
        with contextlib.suppress(OSError):
            for line in f.read_text().splitlines()[1:]:
                parts = line.split(";")
                if len(parts) >= 3 and parts[2].strip() == "invite":
                    with contextlib.suppress(ValueError):
                        out.append((float(parts[0]) / 1000, float(parts[1])))
    return out


# -- plots, results file, table ---------------------------------------------------------------


def plots(st: Stack, plan: Plan, watch: Watch, t0: float, results: Path, enabled: bool,
          label: str) -> list[str]:
    if not enabled:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results.mkdir(parents=True, exist_ok=True)
    rows = read_stat_csv(st.work / "callers_stat.csv")
    agent_rows = read_stat_csv(st.work / "agents_stat.csv")
    made = []
    title = (f"{label}: {plan.calls} calls, {plan.cps:g}/s, {plan.agents} agents, "
             f"talk {plan.talk_s:g} s (one node, {os.cpu_count()} cores)")

    def save(fig: Any, kind: str) -> None:
        path = results / f"load_{label}_{kind}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path))

    ts = [s.t - t0 for s in watch.samples]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(range(len(rows)), [stat_int(r, "CurrentCall") for r in rows],
            label="calls up (callers)")
    ax.plot(range(len(agent_rows)), [stat_int(r, "CurrentCall") for r in agent_rows],
            label="talking (agents' phones)")
    ax.plot(ts, [s.waiting for s in watch.samples], label="waiting in queue (Asterisk)")
    ax.plot(ts, [s.channels for s in watch.samples], label="Asterisk channels", alpha=0.5)
    ax.set_xlabel("s")
    ax.set_ylabel("calls")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "concurrency")

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(range(len(rows)), [stat_int(r, "OutgoingCall(P)") for r in rows],
            label="calls started /s")
    ax.plot(range(len(rows)), [stat_int(r, "SuccessfulCall(P)") for r in rows],
            label="calls completed /s")
    ax.plot(range(len(rows)), [stat_int(r, "FailedCall(P)") for r in rows],
            label="calls failed /s", color="red")
    ax.axhline(plan.cps, ls="--", color="grey", lw=0.8)
    ax.set_xlabel("s")
    ax.set_ylabel("calls per second")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    lag = [(s.t - t0, s.backlog) for s in watch.samples if s.backlog is not None]
    if lag:
        ax2 = ax.twinx()
        ax2.plot([t for t, _ in lag], [b for _, b in lag], color="purple", lw=1, alpha=0.7,
                 label="service lag: AMI events not yet handled")
        ax2.set_ylabel("AMI events", color="purple")
        lines, labels = ax.get_legend_handles_labels()
        l2, lb2 = ax2.get_legend_handles_labels()
        ax.legend(lines + l2, labels + lb2, fontsize=8, loc="upper left")
    else:
        ax.legend(fontsize=8)
    save(fig, "cps")

    series = rtt_series(st.work)
    vals = [v for _, v in series]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    if vals:
        a1.hist(vals, bins=min(60, max(10, int(max(vals)) + 1)), color="C0")
        for p, c in ((50, "green"), (95, "orange"), (99, "red")):
            v = pct(vals, p)
            a1.axvline(v, color=c, ls="--", label=f"p{p} {v:g} ms")
        a1.set_yscale("log")
        a1.legend(fontsize=8)
        a2.scatter([t for t, _ in series], vals, s=2, alpha=0.4)
    a1.set_xlabel("INVITE -> 200 OK (ms)")
    a1.set_ylabel("calls")
    a2.set_xlabel("s since the first call")
    a2.set_ylabel("INVITE -> 200 OK (ms)")
    fig.suptitle(title, fontsize=9)
    save(fig, "latency")

    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = [n for n in ("service", "asterisk", "sipp_callers", "sipp_agents", "postgres",
                         "redis") if watch.samples and n in watch.samples[-1].cpu]
    for n in names:
        xs, ys = [], []
        for a, b in zip(watch.samples, watch.samples[1:], strict=False):
            if n in a.cpu and n in b.cpu and b.t > a.t:
                xs.append(b.t - t0)
                ys.append((b.cpu[n] - a.cpu[n]) * 100 / (b.t - a.t))
        lw = 2 if n in ("service", "asterisk") else 1
        ax.plot(xs, ys, label=n + (" (whole server)" if n == "redis" else ""), lw=lw)
    xs, ys = [], []
    for a, b in zip(watch.samples, watch.samples[1:], strict=False):
        if "machine" in a.cpu and b.t > a.t:
            xs.append(b.t - t0)
            ys.append((b.cpu["machine"] - a.cpu["machine"]) * 100 / (b.t - a.t))
    ax.plot(xs, ys, label="whole machine, all users", color="black", ls="--", lw=0.8)
    ax.axhline(100 * (os.cpu_count() or 1), color="grey", lw=0.8)
    ax.set_xlabel("s")
    ax.set_ylabel("CPU, % of one core")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "cpu")
    return made


def command_line() -> str:
    args = [a for a in sys.argv[1:]]
    return ".venv/bin/python bench/load.py " + " ".join(shlex.quote(a) for a in args)


def environment() -> dict[str, Any]:
    def out(cmd: list[str]) -> str:
        with contextlib.suppress(Exception):
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                                  cwd=REPO).stdout.strip()
        return ""

    return {"cores": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(),
            "sipp": out([SIPP, "-v"]).splitlines()[0].strip() if out([SIPP, "-v"]) else "",
            "commit": out(["git", "rev-parse", "--short", "HEAD"]),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def save_results(result: dict[str, Any], results: Path) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / "load.json"
    data: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
    data[result.get("label") or result["mode"]] = result
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str) + "\n",
                    encoding="utf-8")
    write_table(data, results / "load.md")
    return path


def write_table(data: dict[str, Any], path: Path) -> None:
    lines = ["# Load benchmark results (bench/load.py)", "",
             "One Asterisk node, the service as its own process (`hotline serve`), "
             "PostgreSQL, Redis; callers and agents are sipp with RTP audio both ways; every "
             "answered call recorded (MixMonitor), recordings moved and linked on the case by "
             "the service. Transcription workers and live captions off (sized by "
             "bench/asr_throughput.py). What each figure means: docs/load.md. Regenerated from "
             "load.json by each run; measured on a 2-core virtual machine that Asterisk, the "
             "service, PostgreSQL, Redis and both sipps share (each run's load average and "
             "machine CPU say how busy it was, and whether anything else ran).", "",
             "| run | passed | calls | concurrency | rate | INVITE → 200 OK ms p50 / p95 / p99 "
             "| CPU ms per call: service / Asterisk (ratio) | check |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = {"concurrency": 0, "sustained": 1, "check": 2, "smoke": 3}
    runs = sorted(data.items(), key=lambda kv: (order.get(kv[1].get("mode"), 9), kv[0]))
    for label, r in runs:
        c, lat, cpu, chk = r["concurrency"], r["invite_200_ms"], r["cpu_ms_per_call"], r["check"]
        if r.get("mode") == "concurrency":
            conc = (f"target {c['target']}: held {c['held_s']} s (talking "
                    f"{c['talking_when_held']}, waiting {c['waiting_when_held']})")
        else:
            conc = f"{c['max_up']} up at most"
        rate = (f"{r['rate']['achieved_cps']} of {r['rate']['target_cps']:g} cps, "
                f"{r['sipp']['failed']} failed")
        problems = ", ".join(f"{k} {v}" for k, v in chk["problems"].items()) or "none"
        lines.append(
            f"| {label} | {'yes' if r.get('ok') else '**no**'} | {r['plan']['calls']} | {conc} "
            f"| {rate} | {lat['p50']} / {lat['p95']} / {lat['p99']} | {cpu.get('service')} / "
            f"{cpu.get('asterisk')} ({r['service_vs_asterisk_cpu']}) | {chk['cases']} cases "
            f"for {chk['calls']} calls, {chk['recordings']} recordings; problems: {problems} |")
    lines += ["", "## Commands and conditions", ""]
    for label, r in runs:
        mc = r.get("machine_cpu", {})
        cpu = r["cpu_ms_per_call"]
        lines += [
            f"- **{label}**: `{r.get('command', '')}`" + (" (baseline: AMI events unfiltered)"
                                                         if r.get("unfiltered") else ""),
            f"  {r['plan']['agents']} agents, talk {r['plan']['talk_s']:g} s, "
            f"{r['plan']['key_share']:.0%} press 1; load average "
            f"{r.get('loadavg_before', ['?'])[0]} → {r.get('loadavg_after', ['?'])[0]}; "
            f"machine busy {mc.get('busy_pct_of_all_cores')} % of all cores, this run "
            f"{mc.get('this_run_pct_of_all_cores')} %, steal {mc.get('steal_pct')} %; "
            f"sipp callers / agents {cpu.get('sipp_callers')} / {cpu.get('sipp_agents')} ms "
            f"per call, PostgreSQL {cpu.get('postgres')}; {r.get('ami_events_per_call')} AMI "
            f"events per call, service lag up to {r.get('service_lag_events_max')} events, "
            f"last case complete {r.get('settle_s')} s after the last call; "
            f"{r.get('environment', {}).get('date', '')}, commit "
            f"{r.get('environment', {}).get('commit', '')}."]
    lines += ["", "Plots: `load_<run>_{concurrency,cps,latency,cpu}.png`."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("smoke", "concurrency", "sustained", "check"),
                   default="smoke")
    p.add_argument("--smoke", action="store_const", const="smoke", dest="mode",
                   help="the same as --mode smoke")
    p.add_argument("--target", type=int, default=200, help="concurrency: calls up at once")
    p.add_argument("--cps", type=float, default=0, help="calls per second")
    p.add_argument("--seconds", type=float, default=0,
                   help="sustained: how long; concurrency: how long to hold the target")
    p.add_argument("--calls", type=int, default=0, help="number of calls (check: 10000)")
    p.add_argument("--agents", type=int, default=0, help="agents (default from the mode)")
    p.add_argument("--talk-s", type=float, default=0, help="talk time of each call")
    p.add_argument("--limit", type=int, default=0, help="most calls up at once (sipp -l)")
    p.add_argument("--key-share", type=float, default=0.2, help="share of callers pressing 1")
    p.add_argument("--no-web", dest="web", action="store_false",
                   help="run the service without its console (default: as `hotline serve`)")
    p.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="where load.json, load.md and the plots go")
    p.add_argument("--no-plots", dest="plots", action="store_false")
    p.add_argument("--no-save", dest="save", action="store_false",
                   help="print the JSON only (tests)")
    p.add_argument("--profile", type=Path, default=None,
                   help="sample the service with py-spy while the calls run (collapsed "
                        "stacks, or speedscope if the name ends in .json)")
    p.add_argument("--perf", type=Path, default=None,
                   help="sample Asterisk with perf while the calls run; its CPU by module "
                        "and symbol, and its task processors, go to this text file")
    p.add_argument("--unfiltered", action="store_true",
                   help="baseline: Asterisk without the project's AMI event filters (the "
                        "configuration before issue 21), to compare in the same session")
    p.add_argument("--label", default="",
                   help="the entry's name in load.json (default: the mode), e.g. sustained-5cps")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory and the database for inspection")
    args = p.parse_args()
    plan = make_plan(args)

    async def run() -> dict[str, Any]:
        # SIGTERM (and SIGINT, even when started in the background, where it is ignored)
        # cancel the run: everything started is stopped and cleaned as at a normal end.
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        return await run_load(plan, args)

    try:
        result = asyncio.run(run())
    except asyncio.CancelledError:
        progress("stopped by a signal; everything it started is stopped")
        return 130
    result["label"] = args.label or plan.mode
    result["command"] = command_line()
    result["environment"] = environment()
    emit(kind="load", **result)
    if args.save:
        path = save_results(result, args.results)
        progress(f"results in {path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
