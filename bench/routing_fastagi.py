"""Routing decision latency and throughput over FastAGI (a benchmark, not a test).

    .venv/bin/python bench/routing_fastagi.py [--seconds 5] [--database URL]

A load generator on loopback speaks FastAGI as Asterisk does (agi_* headers and a blank line,
then "200 result=1" to each command, until the server closes) against:

* ``ours``: the service's FastAgiServer with the production RouteEndpoint and its real look-ups
  (green-channel profiles and earlier open cases in the database, mirrored in memory and kept in
  step over Redis pub/sub, exactly as HotlineService wires them), on uvloop and on asyncio's
  own loop;
* ``ours-cold``: the same with the mirrors switched off, so every decision asks the database
  (what a decision costs before the mirrors are loaded);
* ``stock``: panoramisk's own ``Application`` (reads 100 bytes at a time) with an endpoint that
  only sets the variable (no decision at all): the reference.

Each server runs in its own process pinned to CPU 0, the generator in another pinned to CPU 1.
For each: p50/p99 latency (connect to close, what the dialplan waits) at 1, 50 and 200 requests
in flight, and decisions per second (wall clock, and per CPU-second of the server process).
The calls are known to the case store (the case is made on arrival, before the menu), 10% of
callers are registered elderly, 10% repeat callers with an open case. Routed facts are
recorded after the answer by the endpoint's background workers; here into a counting sink,
because the database write is the case store's throughput, not the decision's (``--record``
records into the real store instead).

Prints one JSON line per measurement and a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

    from cases.store import CaseStore
    from common.config import Config
    from common.facts import CallFact
    from common.privacy import PersonalData
    from queueing.routing.lookups import CallerProfiles, EarlierCases, RoutingLookups
    from queueing.routing.router import CallerLookup, Miss

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

POOL = 20000  # distinct calls (linkedids) the generator cycles through
N_PROFILES = 2000
N_EARLIER = 2000

HEAD = ("agi_network: yes\nagi_network_script: route\nagi_request: agi://127.0.0.1/route\n"
        "agi_channel: PJSIP/trunk-{trunk}-0000{i:04x}\nagi_language: zh\nagi_type: PJSIP\n"
        "agi_uniqueid: node1-1700000000.{i}\nagi_version: 22.1.0\nagi_callerid: {caller}\n"
        "agi_calleridname: x\nagi_callingpres: 0\nagi_callingani2: 0\nagi_callington: 0\n"
        "agi_callingtns: 0\nagi_dnid: {dialed}\nagi_rdnis: unknown\nagi_context: hotline-route\n"
        "agi_extension: s\nagi_priority: 3\nagi_enhanced: 0.0\nagi_accountcode: \n"
        "agi_threadid: 140000000\nagi_arg_1: {trunk}\nagi_arg_2: {dialed}\nagi_arg_3: {key}\n"
        "agi_arg_4: node1-1700000000.{i}\nagi_arg_5: \n\n")


def elderly_number(i: int) -> str:
    return f"1390000{i % N_PROFILES:04d}"


def repeat_number(i: int) -> str:
    return f"1370000{i % N_EARLIER:04d}"


def request_bytes(n: int) -> bytes:
    i = n % POOL
    kind = n % 10
    caller = (elderly_number(n) if kind == 0 else repeat_number(n) if kind == 1
              else f"138{n % 100000000:08d}")
    trunk = ("nanjing", "suzhou", "carrier")[n % 3]
    dialed = "12315" if n % 7 == 0 else "12345"
    key = ("", "1", "2", "")[n % 4]
    return HEAD.format(i=i, caller=caller, trunk=trunk, dialed=dialed, key=key).encode()


# -- the server side ------------------------------------------------------------------------------

_T = TypeVar("_T")


async def prepare(cfg: Config, db_url: str) -> tuple[
        AsyncEngine, Redis, CaseStore, PersonalData, CallerProfiles, EarlierCases,
        RoutingLookups]:
    """Database with profiles and earlier cases; the look-ups as the service wires them."""
    from datetime import UTC, datetime

    from redis.asyncio import Redis
    from sqlalchemy import insert

    from cases.db import make_engine, migrate, sessionmaker
    from cases.models import CallerProfile, Case
    from cases.store import CaseRef, CaseStore
    from common.privacy import PersonalData, mask_number
    from queueing.routing.lookups import CallerProfiles, EarlierCases, RoutingLookups

    personal = PersonalData(cfg.data_key)
    engine = make_engine(db_url)
    await migrate(engine)
    sessions = sessionmaker(engine)
    now = datetime.now(UTC)
    async with sessions() as s, s.begin():
        await s.execute(insert(CallerProfile), [
            {"caller_hash": personal.lookup_hash(elderly_number(i)),
             "caller_enc": personal.encrypt(elderly_number(i)),
             "caller_masked": mask_number(elderly_number(i)), "category": "elderly",
             "created_at": now, "updated_at": now} for i in range(N_PROFILES)])
        await s.execute(insert(Case), [
            {"number": f"20260101{i:06d}", "call_id": f"old:{i}", "node": "node1",
             "caller_hash": personal.lookup_hash(repeat_number(i)), "agent_id": "1001",
             "answered_at": now, "created_at": now, "updated_at": now, "priority": 0,
             "flags": [], "call_state": "ended", "source": "live"} for i in range(N_EARLIER)])
    store = CaseStore(sessions, personal, cfg.service.timezone)
    for i in range(POOL):  # the calls arrived (the tracker made their cases before the menu)
        store._remember(f"node1:node1-1700000000.{i}", CaseRef(i + 1, f"20261122{i:06d}", False))
    redis = Redis.from_url(cfg.redis_url, decode_responses=True)
    profiles = CallerProfiles(sessions, personal)
    earlier = EarlierCases(sessions, personal, cfg.routing.repeat_window_days, store.cached)
    lookups = RoutingLookups(redis, cfg.redis.prefix, profiles, earlier, cfg.routing.refresh_s)
    profiles.notify = lookups.notify
    await lookups.start()
    return engine, redis, store, personal, profiles, earlier, lookups


class _Cold(Generic[_T]):
    """A look-up that never answers from memory: every decision asks the database."""

    def __init__(self, warm: CallerLookup[_T]):
        from queueing.routing.router import MISS

        self.warm = warm
        self.miss: Literal[Miss.MISS] = MISS

    def peek(self, caller_hash: str) -> Literal[Miss.MISS]:
        return self.miss

    async def lookup(self, caller_hash: str) -> _T | None:
        return await self.warm.lookup(caller_hash)


async def serve(args: argparse.Namespace) -> None:
    import logging

    from common.logs import setup_logging
    from lab.harness import ensure_secrets, lab_config
    from queueing.routing.router import RouteEndpoint

    ensure_secrets()
    setup_logging("info", "json")
    # The per-decision "call routed" line goes to a file, as a deployment ships its logs.
    handler = logging.FileHandler(Path(args.workdir) / f"{args.kind}.log")
    root = logging.getLogger()
    for h in list(root.handlers):
        handler.setFormatter(h.formatter)
        root.removeHandler(h)
    root.addHandler(handler)

    cfg = lab_config(Path(args.workdir), redis_prefix=f"bench-{os.getpid()}")
    db_url = args.database or f"sqlite+aiosqlite:///{args.workdir}/{args.kind}.db"
    port = int(args.port)
    if args.kind == "stock":
        from panoramisk.fast_agi import Application

        value = "nanjing-general|0|20261122000001||||province-general|||"

        async def stock_route(request: Any) -> None:  # panoramisk's Request (untyped)
            await request.send_command(f'SET VARIABLE HOTLINE_ROUTE "{value}"')

        app = Application()
        app.add_route("route", stock_route)
        server = await asyncio.start_server(app.handler, "127.0.0.1", port, backlog=1024)
        endpoint = None
    else:
        from telephony.fastagi import FastAgiServer

        _engine, _redis, store, personal, profiles, earlier, _lookups = await prepare(cfg,
                                                                                     db_url)
        recorded = [0]

        async def count(fact: CallFact) -> None:
            recorded[0] += 1

        cold = args.kind == "ours-cold"  # every decision asks the database
        endpoint = RouteEndpoint(cfg, store.apply if args.record else count, personal=personal,
                                 profiles=_Cold(profiles) if cold else profiles,
                                 earlier_cases=_Cold(earlier) if cold else earlier,
                                 case_number=store.cached_number)
        endpoint.start()
        server = FastAgiServer(route_timeout=cfg.fastagi.dialplan_timeout_s)
        server.add_route("route", endpoint)
        await server.start("127.0.0.1", port)
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).strip()
        if line == b"stats" or not line:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            stats = {"cpu_s": ru.ru_utime + ru.ru_stime}
            if endpoint is not None:
                stats.update(decisions=endpoint.decisions, slow=endpoint.slow,
                             fallbacks=endpoint.fallbacks, unrecorded=endpoint.unrecorded,
                             backlog=endpoint._backlog.qsize() if endpoint._backlog else 0)
            print(json.dumps(stats), flush=True)
        if not line:
            break


# -- the load generator ---------------------------------------------------------------------------

class _Client(asyncio.Protocol):
    __slots__ = ("buf", "done", "ok", "payload", "transport")

    def __init__(self, payload: bytes, done: asyncio.Future[bool]):
        self.payload = payload
        self.done = done
        self.buf = b""
        self.ok = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection's protocol is always handed a (read-write) Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            if line.startswith((b"SET VARIABLE", b"EXEC", b"GET", b"VERBOSE")):
                self.transport.write(b"200 result=1\n")
                self.ok = line.startswith(b"SET VARIABLE HOTLINE_ROUTE")

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.ok)


async def load(port: int, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    counter = [0]
    lat: list[float] = []
    failed = [0]
    stop_at = [0.0]
    measuring = [False]

    async def one() -> None:
        n = counter[0] = counter[0] + 1
        done: asyncio.Future[bool] = loop.create_future()
        t0 = time.perf_counter()
        try:
            await loop.create_connection(lambda: _Client(request_bytes(n), done),
                                         "127.0.0.1", port)
            ok = await asyncio.wait_for(done, 10)
        except (OSError, TimeoutError):
            ok = False
        if measuring[0]:
            if ok:
                lat.append(time.perf_counter() - t0)
            else:
                failed[0] += 1

    async def worker() -> None:
        while time.perf_counter() < stop_at[0]:
            await one()

    stop_at[0] = time.perf_counter() + warmup
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    measuring[0] = True
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    lat.sort()

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1000, 3) if lat else -1

    return {"concurrency": concurrency, "requests": len(lat), "failed": failed[0],
            "per_s": round(len(lat) / elapsed), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 3) if lat else -1}


# -- orchestration --------------------------------------------------------------------------------

def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if (os.cpu_count() or 1) > 1 else []


def run_server(kind: str, loop_kind: str, workdir: Path, args: argparse.Namespace
               ) -> tuple[subprocess.Popen[str], int]:
    from lab.harness import free_port

    port = free_port()
    cmd = [*_pin(0), sys.executable, __file__, "serve", "--kind", kind, "--port", str(port),
           "--workdir", str(workdir), "--loop", loop_kind]
    if args.database:
        cmd += ["--database", args.database]
    if args.record:
        cmd.append("--record")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line or not json.loads(line).get("ready"):
        raise RuntimeError(f"{kind} server did not start")
    return proc, port


def stats(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("stats\n")
    proc.stdin.flush()
    counters: dict[str, Any] = json.loads(proc.stdout.readline())
    return counters


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve", "load"])
    p.add_argument("--kind", default="ours")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--workdir", default="")
    p.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    p.add_argument("--database", default="", help="default: a fresh SQLite file")
    p.add_argument("--record", action="store_true", help="record routed facts in the store")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--levels", default="1,50,200")
    p.add_argument("--servers", default="ours:uvloop,ours:asyncio,stock:asyncio,ours-cold:uvloop")
    args = p.parse_args()

    def run(coro: Coroutine[Any, Any, _T]) -> _T:
        if args.loop == "uvloop":
            import uvloop

            return uvloop.run(coro)
        return asyncio.run(coro)

    if args.mode == "serve":
        run(serve(args))
        return 0
    if args.mode == "load":
        args.loop = "uvloop"
        print(json.dumps(run(load(args.port, args.concurrency, args.seconds, args.warmup))))
        return 0

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp:
        for spec in args.servers.split(","):
            kind, loop_kind = spec.split(":")
            workdir = Path(tmp) / f"{kind}-{loop_kind}"
            workdir.mkdir()
            proc, port = run_server(kind, loop_kind, workdir, args)
            try:
                for level in [int(x) for x in args.levels.split(",")]:
                    before = stats(proc)
                    out = subprocess.run(
                        [*_pin(1), sys.executable, __file__, "load", "--port", str(port),
                         "--concurrency", str(level), "--seconds", str(args.seconds),
                         "--warmup", str(args.warmup)],
                        capture_output=True, text=True, check=True)
                    res = json.loads(out.stdout)
                    after = stats(proc)
                    cpu = after["cpu_s"] - before["cpu_s"]
                    n_total = after.get("decisions", 0) - before.get("decisions", 0)
                    res.update(server=kind, loop=loop_kind, server_cpu_s=round(cpu, 3),
                               per_cpu_s=round((n_total or res["requests"]) / cpu) if cpu else 0)
                    for k in ("slow", "fallbacks", "unrecorded", "backlog"):
                        if k in after:
                            res[k] = after[k] - before.get(k, 0) if k != "backlog" else after[k]
                    print(json.dumps(res), flush=True)
                    results.append(res)
            finally:
                assert proc.stdin is not None
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
                proc.wait(30)

    def best(kind: str, loop_kind: str) -> dict[str, Any]:
        rows = [r for r in results if r["server"] == kind and r["loop"] == loop_kind]
        return max(rows, key=lambda r: r["per_s"]) if rows else {}

    def at(kind: str, loop_kind: str, level: int) -> dict[str, Any]:
        return next((r for r in results if r["server"] == kind and r["loop"] == loop_kind
                     and r["concurrency"] == level), {})

    ours, stock = best("ours", "uvloop"), best("stock", "asyncio")
    summary = {
        "summary": True,
        "ours_uvloop_per_s": ours.get("per_s"), "ours_uvloop_per_cpu_s": ours.get("per_cpu_s"),
        "ours_asyncio_per_s": best("ours", "asyncio").get("per_s"),
        "stock_panoramisk_per_s": stock.get("per_s"),
        "ratio_ours_to_stock": round(ours["per_s"] / stock["per_s"], 2)
        if ours.get("per_s") and stock.get("per_s") else None,
        "p99_ms_sequential": at("ours", "uvloop", 1).get("p99_ms"),
        "p99_ms_50": at("ours", "uvloop", 50).get("p99_ms"),
        "p99_ms_200": at("ours", "uvloop", 200).get("p99_ms"),
        "targets": {"p99_sequential_ms": 1, "per_s": 10000, "p99_50_ms": 10},
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
