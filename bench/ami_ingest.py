"""AMI events per second the service ingests, with its Redis updates, from a real Asterisk.

Asterisk drops an AMI reader that does not keep up (manager.conf ``writetimeout``, 100 ms by
default): the service must read and handle events as fast as they come. This bench starts a
real Asterisk (lab/harness.py, free ports) with many agents (each a member of 7 queues) and the
real service in a child process (HotlineService, the production subscriber chain, uvloop), then
makes Asterisk produce a controlled mix of events from a second AMI connection:

* ``QueuePause`` toggles of an agent in all its queues -> one ``QueueMemberPause`` per queue,
  each written by the live state to Redis (agent hash, per-queue hash, agents set, publish);
* ``QueuePenalty`` of one membership -> ``QueueMemberPenalty`` (Redis too);
* ``Originate`` of a Local channel into a small dialplan added at run time -> Newchannel,
  Newexten, VarSet, Newstate, UserEvent, Hangup... (call tracking, call control);
* ``UserEvent`` actions -> one UserEvent each.

A third connection (a plain reader of the same AMI user) counts what Asterisk sent, by type; the
service reports what it received and handled and its backlog (received, not yet handled). The
rate is ramped in steps; a step is *sustained* when nothing was lost, no AMI connection was
dropped and the backlog at its end is under half a second of events. Then the best sustained
rate at or under ``--target`` is held for ``--sustain-s`` seconds, the service's CPU-seconds
per 1,000 events are measured, and the Redis live state is compared with Asterisk's
QueueStatus. JSON lines on stdout; ``bench/results/ami_ingest.json`` and ``.png``.

    .venv/bin/python bench/ami_ingest.py                     # ramp 2k..20k, hold up to 10k
    .venv/bin/python bench/ami_ingest.py --rates 10000 --sustain-s 60
    .venv/bin/python bench/ami_ingest.py --profile var/ami_ingest.speedscope  # py-spy
    git archive main | tar -x -C /tmp/base       # the same events to earlier code, one run:
    .venv/bin/python bench/ami_ingest.py --baseline /tmp/base --save-as ami_ingest_baseline

With ``--baseline`` a second service, built from another source tree, reads the same AMI at
the same time (its own Redis prefix and database): CPU per event of both, in the same run.

Timings on a shared machine vary; what matters is handled vs offered in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from benchlib import REDIS_URL, REPO, RESULTS, BenchAmi, emit, loadavg

sys.path.insert(0, str(REPO))
if "--tree" in sys.argv:  # a baseline service from another source tree (--baseline)
    sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1])

from common.livekeys import LiveKeys
from lab.harness import Lab, ensure_secrets, lab_config_toml

ASTERISK_PID: list[int] = []
BASELINE: list[Any] = []  # the --baseline service (a Child), fed the same events
BASE_PREFIX = f"bench-ingest-base-{secrets.token_hex(3)}"
CONTEXT = "bench-ingest"
# The dialplan each originated Local channel runs (added over AMI: asterisk-conf is untouched).
DIALPLAN = ["Answer()", "Set(BENCH_A=1)", "Set(BENCH_B=${EPOCH})", "NoOp(bench)",
            "UserEvent(BenchCall,Step:dialplan)", "Hangup()"]


def agents_config(n: int) -> list[dict[str, Any]]:
    """n agents over two cities; three skills each -> 7 queue memberships (personal queue +
    3 skills x (city, province))."""
    out = []
    for i in range(n):
        city = "nanjing" if i % 2 == 0 else "suzhou"
        out.append({"id": f"{3000 + i}", "name": f"坐席{i}", "city": city,
                    "skills": {"general": 1 + i % 5, "enterprise_policy": 1 + (i // 5) % 5,
                               "lang_en": 1 + (i // 25) % 5}})
    return out


# -- the generator ---------------------------------------------------------------------------

class Mix:
    """Actions that make Asterisk produce events; per second of events at ``rate``."""

    # Share of the event rate produced by each kind of action (measured yields calibrate it).
    # Half of the events are queue member updates the live state writes to Redis; pauses also
    # bring DeviceStateChange events, originates a channel's life (Newchannel ... Hangup). A
    # QueuePause costs Asterisk the most per event (it re-evaluates every member's device
    # state), so the mix leans on penalties and UserEvents to leave this 2-core machine some
    # CPU for the service.
    SHARES: ClassVar[dict[str, float]] = {
        "pause": 0.2, "penalty": 0.3, "originate": 0.2, "userevent": 0.3}

    def __init__(self, agents: list[str], memberships: dict[str, list[str]],
                 yields: dict[str, float], shares: dict[str, float] | None = None):
        self.shares = dict(shares or self.SHARES)
        self.agents = agents
        self.memberships = memberships
        self.yields = yields
        self.paused = dict.fromkeys(agents, False)
        self.sent: Counter[str] = Counter()
        self.n = 0

    def actions(self, kind: str) -> bytes:
        self.n += 1
        aid = f"g{self.n}"
        self.sent[kind] += 1
        if kind == "pause":
            a = random.choice(self.agents)
            self.paused[a] = not self.paused[a]
            return (f"Action: QueuePause\r\nActionID: {aid}\r\nInterface: PJSIP/{a}\r\n"
                    f"Paused: {'true' if self.paused[a] else 'false'}\r\n"
                    f"Reason: {'bench' if self.paused[a] else ''}\r\n\r\n").encode()
        if kind == "penalty":
            a = random.choice(self.agents)
            q = random.choice(self.memberships[a])
            return (f"Action: QueuePenalty\r\nActionID: {aid}\r\nInterface: PJSIP/{a}\r\n"
                    f"Penalty: {random.randint(0, 4)}\r\nQueue: {q}\r\n\r\n").encode()
        if kind == "originate":
            return (f"Action: Originate\r\nActionID: {aid}\r\nChannel: Local/s@{CONTEXT}/n\r\n"
                    "Application: Wait\r\nData: 0\r\nAsync: true\r\nTimeout: 5000\r\n"
                    "CallerID: bench <10000>\r\n\r\n").encode()
        return (f"Action: UserEvent\r\nActionID: {aid}\r\nUserEvent: BenchTick\r\n"
                f"Seq: {self.n}\r\n\r\n").encode()

    def per_second(self, rate: float) -> dict[str, float]:
        return {k: rate * share / max(self.yields.get(k, 1.0), 0.1)
                for k, share in self.shares.items() if share > 0}


async def drive(gen: BenchAmi, mix: Mix, rate: float, seconds: float,
                tick: float = 0.01) -> None:
    """Send the mix's actions for ``seconds`` at ``rate`` events/s, evenly over ticks."""
    per_s = mix.per_second(rate)
    owed = dict.fromkeys(per_s, 0.0)
    start = time.monotonic()
    last = start
    while (now := time.monotonic()) - start < seconds:
        dt, last = now - last, now
        batch = []
        for kind, r in per_s.items():
            owed[kind] += r * dt
            while owed[kind] >= 1:
                owed[kind] -= 1
                batch.append(mix.actions(kind))
        if batch:
            gen.write(b"".join(batch))
            await gen.drain()
        await asyncio.sleep(tick)


# -- the service, in a child process ----------------------------------------------------------

def serve(config_path: str) -> None:
    """Child: the real service; one JSON line of counters on stdout every 0.25 s."""
    import uvloop

    from common.config import load_config
    from common.logs import setup_logging
    from common.privacy import PersonalData
    from hotline.service import HotlineService

    cfg = load_config(Path(config_path))
    setup_logging("warning", "json", stream=sys.stderr)

    async def run() -> None:
        service = HotlineService(cfg, ami_secret=cfg.ami_secret,
                                 personal=PersonalData(cfg.data_key), cel_from_now=True)
        await service.start()
        await service.wait_connected(60)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        while not stop.is_set():
            rt = next(iter(service.nodes.values()))
            ami = rt.ami
            cpu = os.times()
            print(json.dumps({
                "t": time.time(), "received": ami.events_received,
                "handled": rt.events_handled,
                "backlog": getattr(ami, "backlog", None) or ami._events.qsize(),
                "redis_pending": getattr(service.live, "pending", 0),
                "redis_errors": getattr(service.live, "write_errors", 0),
                "connections": ami.connections, "connected": ami.connected,
                "malformed": ami.malformed, "published": service.live.published,
                "cpu_s": cpu.user + cpu.system}), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)
        await service.stop()

    uvloop.run(run())


class Child:
    def __init__(self, config_path: Path, log_path: Path, tree: str | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(config_path),
             *(("--tree", tree) if tree else ())],
            stdout=subprocess.PIPE, stderr=log_path.open("w"), text=True)
        self.samples: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}

    async def read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.to_thread(self.proc.stdout.readline)
            if not line:
                return
            with contextlib.suppress(ValueError):
                self.last = json.loads(line)
                self.samples.append(self.last)

    async def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not self.last.get("connected"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service did not start (see its log)")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_profiler(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """py-spy (PyPI) sampling the service during the hold."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
         "--duration", str(int(min(30, args.sustain_s))), "--rate", "200",
         "--format", args.profile_format, "-o", args.profile, "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the run ----------------------------------------------------------------------------------

async def quiet(listener: BenchAmi, child: Child, *, timeout: float = 90) -> None:
    """Until Asterisk has stopped sending and the services handled all they received."""
    children = [child, *BASELINE]
    deadline = time.monotonic() + timeout
    last: tuple[int, ...] = ()
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = (listener.total, *(c.last.get("received", -1) for c in children))
        if now == last and all(c.last.get("backlog", 1) == 0 for c in children):
            return
        last = now


def service_metrics(s0: dict[str, Any], s1: dict[str, Any], s2: dict[str, Any],
                    elapsed: float, sent: int, max_backlog: int) -> dict[str, Any]:
    """One service's figures for a step: s0 at its start, s1 at its end, s2 once drained."""
    handled = s2["handled"] - s0["handled"]
    return {
        "received_events_s": round((s1["received"] - s0["received"]) / elapsed),
        "handled_events_s": round((s1["handled"] - s0["handled"]) / elapsed),
        "backlog_max": max_backlog, "backlog_end": s1["backlog"],
        # What Asterisk sent in the step (counted once it went quiet) and the service missed.
        "lost": sent - (s2["received"] - s0["received"]),
        "disconnects": s2["connections"] - s0["connections"],
        "malformed": s2["malformed"] - s0["malformed"],
        "service_cpu_share": round((s1["cpu_s"] - s0["cpu_s"]) / elapsed, 3),
        # Over the step and its drain: every event of the step handled.
        "cpu_s_per_1000_events": round(1000 * (s2["cpu_s"] - s0["cpu_s"]) / max(1, handled),
                                       4),
    }


async def step(listener: BenchAmi, gen: BenchAmi, child: Child, mix: Mix, rate: float,
               seconds: float, phase: str) -> dict[str, Any]:
    children = [child, *BASELINE]
    l0 = listener.total
    s0 = [dict(c.last) for c in children]
    asterisk_pid = ASTERISK_PID[0] if ASTERISK_PID else None
    a0 = proc_cpu(asterisk_pid) if asterisk_pid else 0.0
    by0 = Counter(listener.by_type)
    t0 = time.monotonic()
    max_backlog = [0] * len(children)

    async def watch() -> None:
        while True:
            for i, c in enumerate(children):
                max_backlog[i] = max(max_backlog[i], c.last.get("backlog", 0))
            await asyncio.sleep(0.1)

    w = asyncio.create_task(watch())
    await drive(gen, mix, rate, seconds)
    elapsed = time.monotonic() - t0
    s1, l1 = [dict(c.last) for c in children], listener.total
    a1 = proc_cpu(asterisk_pid) if asterisk_pid else 0.0
    offered = (l1 - l0) / elapsed
    drain_t = time.monotonic()
    await quiet(listener, child)
    w.cancel()
    s2, l2 = [dict(c.last) for c in children], listener.total
    by = Counter(listener.by_type)
    by.subtract(by0)
    figures = [service_metrics(s0[i], s1[i], s2[i], elapsed, l2 - l0, max_backlog[i])
               for i in range(len(children))]
    main = figures[0]
    doc = {
        "phase": phase, "target_events_s": rate, "seconds": round(elapsed, 1),
        "offered_events_s": round(offered), **main,
        "handled_ratio": round(main["handled_events_s"] / offered, 4) if offered else None,
        "drain_s": round(time.monotonic() - drain_t, 1),
        "asterisk_cpu_share": round((a1 - a0) / elapsed, 3) if asterisk_pid else None,
        "by_type_per_s": {k: round(v / elapsed) for k, v in by.most_common(14) if v > 0},
        "loadavg": loadavg(),
    }
    if BASELINE:
        doc["baseline"] = figures[1]
        doc["cpu_ratio_baseline_over_service"] = round(
            figures[1]["cpu_s_per_1000_events"] / max(1e-9, main["cpu_s_per_1000_events"]), 2)
    # Sustained: nothing lost, no drop, and the backlog at the end of the step under half a
    # second of events (the service kept up; the counters are sampled every 0.25 s, hence
    # the 5 % on the rates).
    doc["sustained"] = bool(
        offered and main["handled_events_s"] / offered >= 0.95
        and main["backlog_end"] <= max(200, offered / 2)
        and main["disconnects"] == 0 and main["lost"] == 0)
    emit(**doc)
    return doc


async def compare_state(gen: BenchAmi, prefix: str) -> dict[str, Any]:
    """Redis live state against Asterisk's QueueStatus, member by member."""
    from redis.asyncio import Redis

    from common.replies import text_map

    members = await gen.queue_members()
    r = Redis.from_url(REDIS_URL, decode_responses=True)
    mismatches: list[str] = []
    checked = 0
    try:
        by_agent: dict[str, dict[str, dict[str, str]]] = {}
        for m in members:
            loc = m.get("Location") or m.get("Interface") or m.get("StateInterface", "")
            agent = loc.removeprefix("PJSIP/")
            by_agent.setdefault(agent, {})[m["Queue"]] = m
        for agent, queues in by_agent.items():
            live = text_map(await r.hgetall(LiveKeys(prefix).agent_queues(agent)))
            hash_ = text_map(await r.hgetall(LiveKeys(prefix).agent(agent)))
            for q, m in queues.items():
                checked += 1
                got = json.loads(live[q]) if q in live else None
                want = {"penalty": int(m["Penalty"]), "paused": m["Paused"] == "1"}
                if got != want:
                    mismatches.append(f"{agent}@{q}: redis {got} asterisk {want}")
            extra = set(live) - set(queues)
            mismatches += [f"{agent}@{q}: in redis only" for q in extra]
            paused = {m["Paused"] == "1" for m in queues.values()}
            if len(paused) == 1 and hash_.get("paused") != str(int(paused.pop())):
                mismatches.append(f"{agent}: agent hash paused={hash_.get('paused')}")
    finally:
        await r.aclose()
    return {"members_checked": checked, "mismatches": len(mismatches),
            "mismatch_samples": mismatches[:10]}


async def calibrate(listener: BenchAmi, gen: BenchAmi, child: Child, mix: Mix) -> dict[str, float]:
    """Events per action of each kind, measured on this Asterisk."""
    yields = {}
    for kind in Mix.SHARES:
        await quiet(listener, child)
        before = listener.total
        n = 40
        gen.write(b"".join(mix.actions(kind) for _ in range(n)))
        await quiet(listener, child)
        yields[kind] = (listener.total - before) / n
    return yields


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = doc["series"]
    t = [s["t"] for s in series]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    a1.plot(t, [s["offered"] for s in series], label="offered by Asterisk (reference reader)")
    a1.plot(t, [s["handled"] for s in series], label="handled by the service", alpha=0.8)
    if series and "baseline_handled" in series[0]:
        a1.plot(t, [s["baseline_handled"] for s in series], alpha=0.6,
                label="handled by the baseline (earlier code), same events")
    a1.set_ylabel("AMI events / s")
    a1.legend(loc="upper left")
    a1.grid(alpha=0.3)
    cpu = doc["hold"].get("cpu_s_per_1000_events") or min(
        (s["cpu_s_per_1000_events"] for s in doc["steps"]), default=None)
    a1.set_title(f"AMI ingest: max sustained {doc['max_sustained_events_s']} events/s "
                 f"(service CPU {cpu} s / 1000 events)")
    a2.plot(t, [s["backlog"] for s in series], color="tab:red", label="service")
    if series and "baseline_backlog" in series[0]:
        a2.plot(t, [s["baseline_backlog"] for s in series], color="tab:gray", label="baseline")
        a2.legend(loc="upper left")
    a2.set_ylabel("backlog (events received, not handled)")
    a2.set_xlabel("seconds")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main(args: argparse.Namespace) -> int:
    ensure_secrets()
    work = Path(tempfile.mkdtemp(prefix="ami-ingest-"))
    prefix = f"bench-ingest-{secrets.token_hex(3)}"
    toml = lab_config_toml(work, redis_prefix=prefix, nodes=1, overrides={
        "agents": agents_config(args.agents), "service.log_level": "warning",
        "service.log_format": "json", "asr.enabled": False, "recording.enabled": False})
    cfg_path = work / "hotline.toml"
    cfg_path.write_text(toml, encoding="utf-8")
    from common.config import load_config

    cfg = load_config(cfg_path)
    lab = Lab(cfg)
    await lab.start_asterisk()
    node = cfg.nodes[0]
    asterisk_pid = lab.instance.pid()
    if asterisk_pid:
        ASTERISK_PID.append(asterisk_pid)
    child: Child | None = None
    listener = gen = None
    profiler = None
    try:
        for prio, app in enumerate(DIALPLAN, 1):
            out = await asyncio.to_thread(
                lab.instance.cli,
                f'dialplan add extension s,{prio},{app} into {CONTEXT}')
            if "added" not in out.lower():
                raise RuntimeError(f"dialplan not added: {out}")
        listener = await BenchAmi("127.0.0.1", node.ami_port, node.ami_username,
                                  cfg.ami_secret, events=True).connect()
        gen = await BenchAmi("127.0.0.1", node.ami_port, node.ami_username, cfg.ami_secret,
                             events=False).connect()
        child = Child(cfg_path, work / "service.log")
        reader = asyncio.create_task(child.read())
        if args.baseline:
            base_cfg = work / "baseline.toml"
            base_cfg.write_text(baseline_config(toml, work), encoding="utf-8")
            BASELINE.append(Child(base_cfg, work / "baseline.log", tree=args.baseline))
            base_reader = asyncio.create_task(BASELINE[0].read())
            await BASELINE[0].wait_ready()
        await child.wait_ready()
        await quiet(listener, child)
        members = await gen.queue_members()
        memberships: dict[str, list[str]] = {}
        for m in members:
            memberships.setdefault(m["Location"].removeprefix("PJSIP/"), []).append(m["Queue"])
        agents = sorted(memberships)
        emit(phase="setup", agents=len(agents), memberships=len(members),
             asterisk=lab.runtime.version if hasattr(lab.runtime, "version") else "",
             service_pid=child.proc.pid, loadavg=loadavg())
        mix = Mix(agents, memberships, {}, args.mix)
        mix.yields = await calibrate(listener, gen, child, mix)
        emit(phase="calibrate", events_per_action=mix.yields, shares=mix.shares)

        t_start = time.time()
        if args.profile and args.profile_ramp:
            profiler = start_profiler(child.proc.pid, args)
        steps = []
        for rate in args.rates:
            steps.append(await step(listener, gen, child, mix, rate, args.step_s, "ramp"))
            if steps[-1]["disconnects"]:
                break
        sustained = [s for s in steps if s["sustained"]]
        best = max((s["target_events_s"] for s in sustained if
                    s["target_events_s"] <= args.target), default=None)
        hold: dict[str, Any] = {}
        if best is not None and not args.no_hold:
            if args.profile and not args.profile_ramp:
                profiler = start_profiler(child.proc.pid, args)
            hold = await step(listener, gen, child, mix, best, args.sustain_s, "hold")
            if profiler is not None:
                await asyncio.to_thread(profiler.wait, 60)
        state = await compare_state(gen, prefix)
        emit(phase="state", **state)
        max_sustained = max((s["offered_events_s"] for s in [*steps, hold] if s and
                             s.get("sustained")), default=0)
        t_end = time.time()
        series = per_second_series(listener, child, t_start, t_end)
        if BASELINE:
            for row, b in zip(series, per_second_series(listener, BASELINE[0], t_start, t_end),
                              strict=False):
                row["baseline_handled"], row["baseline_backlog"] = b["handled"], b["backlog"]
        doc = {"bench": "ami_ingest", "agents": len(agents), "memberships": len(members),
               "mix_shares": mix.shares, "events_per_action": mix.yields,
               "dialplan": DIALPLAN, "steps": steps, "hold": hold, "state": state,
               "max_sustained_events_s": max_sustained, "target_events_s": args.target,
               "actions_sent": dict(mix.sent), "action_errors": gen.errors,
               "action_error_samples": gen.error_samples,
               "listener_disconnected": listener.closed.is_set(),
               "loadavg": loadavg(),
               "cores": os.cpu_count(), "baseline": args.baseline, "series": series}
        emit(phase="result", max_sustained_events_s=max_sustained,
             hold_offered=hold.get("offered_events_s"), hold_handled=hold.get("handled_events_s"),
             hold_backlog_max=hold.get("backlog_max"),
             cpu_s_per_1000_events=hold.get("cpu_s_per_1000_events"),
             baseline_cpu_s_per_1000_events=hold.get("baseline", {}).get(
                 "cpu_s_per_1000_events"),
             cpu_ratio_baseline_over_service=hold.get("cpu_ratio_baseline_over_service"),
             state_mismatches=state["mismatches"], action_errors=gen.errors)
        if not args.no_save:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"{args.save_as}.json").write_text(json.dumps(doc, indent=1,
                                                                     ensure_ascii=False))
            plot(doc, RESULTS / f"{args.save_as}.png")
        reader.cancel()
        if BASELINE:
            base_reader.cancel()
        ok = bool(hold.get("sustained")) and state["mismatches"] == 0
        return 0 if ok else 1
    finally:
        if child is not None:
            child.stop()
        for b in BASELINE:
            b.stop()
        for c in (listener, gen):
            if c is not None:
                await c.close()
        await lab.close()


def baseline_config(toml: str, work: Path) -> str:
    """The same configuration for the baseline service: its own Redis prefix, database and
    FastAGI port (both services read the same Asterisk)."""
    from lab.harness import free_port

    out = []
    section = ""
    for line in toml.splitlines():
        if line.startswith("["):
            section = line.strip("[] ")
        key = line.split("=", 1)[0].strip()
        if section == "redis" and key == "prefix":
            line = f'prefix = "{BASE_PREFIX}"'
        elif section == "fastagi" and key == "port":
            line = f"port = {free_port()}"
        elif section == "database" and key == "url":
            line = f'url = "sqlite+aiosqlite:///{work}/baseline.db"'
        out.append(line)
    if "[database]" not in toml:
        out += ["", "[database]", f'url = "sqlite+aiosqlite:///{work}/baseline.db"']
    return "\n".join(out) + "\n"


def per_second_series(listener: BenchAmi, child: Child, t0: float, t1: float
                      ) -> list[dict[str, float]]:
    """Offered (the reference reader's count) and handled (the service's) per second."""
    out = []
    samples = child.samples
    i = 0
    prev_handled = None
    for sec in range(int(t0), int(t1) + 1):
        while i < len(samples) - 1 and samples[i + 1]["t"] <= sec + 1:
            i += 1
        s = samples[i]
        backlog = max((x["backlog"] for x in samples if sec <= x["t"] < sec + 1), default=0)
        if prev_handled is not None:
            out.append({"t": sec - int(t0), "offered": listener.per_second.get(sec, 0),
                        "handled": s["handled"] - prev_handled, "backlog": backlog})
        prev_handled = s["handled"]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                   default=[2000, 4000, 6000, 8000, 10000, 12000, 15000, 20000])
    p.add_argument("--mix", type=lambda s: {k: float(v) for k, v in
                                            (x.split("=") for x in s.split(","))},
                   default=None, help="shares of the event rate, e.g. pause=0.6,originate=0.4")
    p.add_argument("--step-s", type=float, default=15)
    p.add_argument("--sustain-s", type=float, default=45)
    p.add_argument("--target", type=float, default=10000)
    p.add_argument("--profile", help="py-spy output file (during the hold)")
    p.add_argument("--profile-format", default="speedscope",
                   choices=["speedscope", "flamegraph", "raw"])
    p.add_argument("--profile-ramp", action="store_true", help="profile the ramp, not the hold")
    p.add_argument("--baseline", help="a source tree of earlier code (git archive): its "
                   "service gets the same events, and the CPU ratio is reported")
    p.add_argument("--tree", help=argparse.SUPPRESS)
    p.add_argument("--save-as", default="ami_ingest",
                   help="name of the result files in bench/results (.json, .png)")
    p.add_argument("--no-hold", action="store_true", help="the ramp only")
    p.add_argument("--no-save", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    if a.serve:
        serve(a.serve)
        sys.exit(0)
    sys.exit(asyncio.run(main(a)))
