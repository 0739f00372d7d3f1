"""FastAGI routing latency while the console's web port is flooded (a benchmark, not a test).

    .venv/bin/python bench/web_flood.py [--seconds 10] [--rate 100] [--clients 200]
                                        [--modes unlimited,limited]

The web console and the FastAGI router share one event loop (``hotline serve``), so every
request the web port answers delays the routing answers waiting behind it. This runs the real
service (HotlineService: the production RouteEndpoint and its look-ups, the case store on
SQLite, Redis; no Asterisk: its AMI clients keep retrying in the background) with its console
(hotline/desk.py start_web) in one process pinned to CPU 0, and on loopback:

* a probe that asks the router ``--rate`` times a second, one call at a time, over FastAGI as
  Asterisk does (the requests of bench/routing_fastagi.py; latency from connect to close,
  what the dialplan waits);
* a flood: ``--clients`` concurrent HTTP clients without a session asking as fast as they can
  for ``/api/openapi.json``, ``/login``, ``/api/me`` and POSTing bad JSON to ``/api/login``
  (niced, so the probe beside it on CPU 1 is not starved by its own machine).

For each mode the probe runs with the web port idle, then flooded, in the same run and the
same server process; the result is the ratio flooded/idle of p50/p95/p99, the routing
fallbacks, and what the flood was answered (status counts). Modes: ``unlimited`` (the [web]
limits switched off: what the console did before agent_desk/web/limits.py) and ``limited``
(the defaults of [web] in common/config.py). JSON lines on stdout, a summary line last.
Bounded: each phase lasts ``--seconds``, the flood ``--clients`` connections.
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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import emit, loadavg
from routing_fastagi import POOL, _Client, request_bytes

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# [web] settings that switch the limits off: the console as it was before them.
UNLIMITED = {"web.max_requests_in_flight": 0, "web.anonymous_requests_per_s": 0}


# -- the server: the service and its console on one loop ------------------------------------

async def serve(args: argparse.Namespace) -> None:
    import logging

    from cases.store import CaseRef
    from common.logs import setup_logging
    from hotline.desk import start_web
    from lab.harness import ensure_secrets, lab_config

    ensure_secrets()
    setup_logging("warning", "json")
    # The AMI clients' retries and the routing warnings go to a file, as a deployment's logs.
    handler = logging.FileHandler(Path(args.workdir) / "server.log")
    root = logging.getLogger()
    for h in list(root.handlers):
        handler.setFormatter(h.formatter)
        root.removeHandler(h)
    root.addHandler(handler)
    overrides: dict[str, Any] = dict(UNLIMITED) if args.mode_name == "unlimited" else {}
    overrides["fastagi.port"] = int(args.port)
    cfg = lab_config(Path(args.workdir), redis_prefix=f"bench-flood-{os.getpid()}",
                     overrides=overrides)
    service = await _service(cfg)
    for i in range(POOL):  # the calls arrived (the tracker made their cases before the menu)
        service.store._remember(f"node1:node1-1700000000.{i}",
                                CaseRef(i + 1, f"20261122{i:06d}", False))
    runner, _deps = await start_web(service, "127.0.0.1", int(args.web_port))
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            line = (await reader.readline()).strip()
            if not line:
                break
            ru = resource.getrusage(resource.RUSAGE_SELF)
            router = service.router
            print(json.dumps({"cpu_s": ru.ru_utime + ru.ru_stime,
                              "decisions": router.decisions, "slow": router.slow,
                              "fallbacks": router.fallbacks}), flush=True)
    finally:
        await runner.cleanup()
        await service.stop()


async def _service(cfg: Any) -> Any:
    from common.privacy import PersonalData
    from hotline.service import HotlineService

    service = HotlineService(cfg, ami_secret=cfg.ami_secret, personal=PersonalData(cfg.data_key),
                             cel_from_now=True)
    await service.start()
    return service


# -- the probe: one routing request at a time ------------------------------------------------

def _factory(client: _Client) -> Callable[[], _Client]:
    return lambda: client


async def probe(port: int, seconds: float, rate: float) -> dict[str, Any]:
    """``rate`` requests a second, one at a time (a busy hotline's calls, not a load test:
    the server has time to spare when the web port is idle)."""
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    failed = 0
    n = 0
    start = time.perf_counter()
    stop_at = start + seconds
    while time.perf_counter() < stop_at:
        n += 1
        ahead = start + n / rate - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(ahead)
        done: asyncio.Future[bool] = loop.create_future()
        client = _Client(request_bytes(n), done)
        t0 = time.perf_counter()
        try:
            await loop.create_connection(_factory(client), "127.0.0.1", port)
            ok = await asyncio.wait_for(done, 10)
        except (OSError, TimeoutError):
            ok = False
        if ok:
            lat.append(time.perf_counter() - t0)
        else:
            failed += 1
    lat.sort()

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1000, 3) if lat else -1

    return {"requests": len(lat), "failed": failed, "p50_ms": pct(0.5), "p95_ms": pct(0.95),
            "p99_ms": pct(0.99), "max_ms": round(lat[-1] * 1000, 3) if lat else -1}


# -- the flood: many clients without a session ------------------------------------------------

FLOOD = (("GET", "/api/openapi.json", None), ("GET", "/login", None), ("GET", "/api/me", None),
         ("POST", "/api/login", b'{"username": "x", "password": '))


async def flood(base: str, clients: int) -> None:
    """Hammer until stdin closes; then print the answers counted by status."""
    import aiohttp

    statuses: Counter[str] = Counter()
    stop = asyncio.Event()
    started = [0.0]

    async def client(i: int, http: aiohttp.ClientSession) -> None:
        k = i
        while not stop.is_set():
            method, path, body = FLOOD[k % len(FLOOD)]
            k += 1
            try:
                async with http.request(method, base + path, data=body, headers={
                        "Content-Type": "application/json"} if body else None) as resp:
                    await resp.read()
                    statuses[str(resp.status)] += 1
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tasks = [asyncio.create_task(client(i, http)) for i in range(clients)]
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        started[0] = time.perf_counter()
        print(json.dumps({"ready": True}), flush=True)
        await reader.readline()
        stop.set()
        elapsed = time.perf_counter() - started[0]
        await asyncio.gather(*tasks, return_exceptions=True)
    total = sum(statuses.values())
    print(json.dumps({"answers": dict(statuses), "per_s": round(total / elapsed)}), flush=True)


# -- orchestration ----------------------------------------------------------------------------

def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if (os.cpu_count() or 1) > 1 else []


def _ask(proc: subprocess.Popen[str], line: str = "stats") -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    doc: dict[str, Any] = json.loads(proc.stdout.readline())
    return doc


def _ready(proc: subprocess.Popen[str], what: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line or not json.loads(line).get("ready"):
        raise RuntimeError(f"{what} did not start")


def _probe(port: int, seconds: float, rate: float) -> dict[str, Any]:
    out = subprocess.run([*_pin(1), sys.executable, __file__, "probe", "--port", str(port),
                          "--seconds", str(seconds), "--rate", str(rate)],
                         capture_output=True, text=True, check=True)
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def run_mode(mode: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from lab.harness import free_port

    port, web_port = free_port(), free_port()
    server = subprocess.Popen(
        [*_pin(0), sys.executable, __file__, "serve", "--mode-name", mode, "--port", str(port),
         "--web-port", str(web_port), "--workdir", str(workdir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] = {"mode": mode}
    try:
        _ready(server, "the service")
        _probe(port, args.warmup, args.rate)  # warm the look-ups and the loop
        for phase in ("idle", "flooded"):
            flooder = None
            if phase == "flooded":
                flooder = subprocess.Popen(
                    [*_pin(1), "nice", "-n", "10", sys.executable, __file__, "flood",
                     "--url", f"http://127.0.0.1:{web_port}", "--clients", str(args.clients)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                _ready(flooder, "the flood")
                time.sleep(args.warmup)  # the flood's connections up and hammering
            before = _ask(server)
            res = _probe(port, args.seconds, args.rate)
            after = _ask(server)
            res.update(phase=phase, mode=mode,
                       server_cpu_s=round(after["cpu_s"] - before["cpu_s"], 3),
                       **{k: after[k] - before[k] for k in ("decisions", "slow", "fallbacks")})
            if flooder is not None:
                res["flood"] = _ask(flooder, "stop")
                flooder.wait(30)
                res["flood"]["clients"] = args.clients
            emit(**res)
            result[phase] = res
    finally:
        assert server.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            server.stdin.close()
        server.wait(60)
    return result


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 1) if a > 0 and b > 0 else None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("what", nargs="?", default="bench", choices=["bench", "serve", "probe",
                                                                 "flood"])
    p.add_argument("--modes", default="unlimited,limited")
    p.add_argument("--mode-name", default="limited")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--web-port", type=int, default=0)
    p.add_argument("--url", default="")
    p.add_argument("--workdir", default="")
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=100.0, help="routing requests per second")
    p.add_argument("--warmup", type=float, default=1.0)
    args = p.parse_args()

    import uvloop

    if args.what == "serve":
        uvloop.run(serve(args))
        return 0
    if args.what == "probe":
        print(json.dumps(uvloop.run(probe(args.port, args.seconds, args.rate))))
        return 0
    if args.what == "flood":
        uvloop.run(flood(args.url, args.clients))
        return 0

    emit(start=True, loadavg=loadavg(), clients=args.clients, seconds=args.seconds,
         rate=args.rate)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        for mode in args.modes.split(","):
            workdir = Path(tmp) / mode
            workdir.mkdir()
            results[mode] = run_mode(mode, workdir, args)
    summary: dict[str, Any] = {"summary": True, "loadavg": loadavg()}
    for mode, r in results.items():
        idle, flooded = r["idle"], r["flooded"]
        summary[mode] = {
            **{f"{k}_idle": idle[k] for k in ("p50_ms", "p95_ms", "p99_ms")},
            **{f"{k}_flooded": flooded[k] for k in ("p50_ms", "p95_ms", "p99_ms")},
            **{f"ratio_{k}": ratio(flooded[k], idle[k]) for k in ("p50_ms", "p95_ms", "p99_ms")},
            "fallbacks": idle["fallbacks"] + flooded["fallbacks"],
            "server_cpu_s_idle": idle["server_cpu_s"],
            "server_cpu_s_flooded": flooded["server_cpu_s"],
            "flood_per_s": flooded["flood"]["per_s"], "flood_answers": flooded["flood"]["answers"],
        }
    emit(**summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
