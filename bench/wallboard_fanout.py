"""Wallboard fan-out: Redis pub/sub -> the web process's hub -> N WebSockets.

A publisher puts a burst of call events (queued, answered, ended for synthetic calls) on the
real Redis ``<prefix>:events`` channel as the live state does; one hub
(agent_desk/supervision/wallboard.py,
the same code the console runs) turns them into numbered updates and sends them to every
socket. The sockets are read by a separate process (as browsers would be elsewhere), which
checks every socket got every update in order. The hub handles a burst of messages as one
update, so the count of updates is the hub's (``updates``); a ``hot_topics`` message published
after the calls marks the end (its update is the last). Runs once with 1 socket and once with
N in the same run, so the ratio shows what fan-out costs. JSON lines on stdout.

    .venv/bin/python bench/wallboard_fanout.py [--sockets 100] [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, WSMsgType, web
from benchlib import REDIS_URL, emit
from redis.asyncio import Redis

from agent_desk.supervision.wallboard import Client, Wallboard
from common.livekeys import LiveKeys
from common.logs import setup_logging
from lab.harness import free_port, lab_config

LOOP = ["uvloop"]


# -- the reading side (a child process) --------------------------------------------------------


END = '{"type":"update","event":"hot_topics"'


async def read_sockets(url: str, sockets: int) -> dict[str, Any]:
    """Connect, report ready on stdout, then read until every socket saw the end's update."""
    async with ClientSession() as http:
        conns = [await http.ws_connect(url, max_msg_size=0) for _ in range(sockets)]
        counts = [0] * sockets
        gaps = [0] * sockets
        first_at: list[float] = []
        done_at = [0.0] * sockets

        async def read(i: int, ws: Any) -> None:
            last = None
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                data = msg.data
                if data.startswith('{"type":"snapshot"'):
                    last = json.loads(data)["seq"]
                    continue
                # The hub puts "seq" after the body: read it without parsing the whole update.
                at = data.rindex('"seq":') + 6
                seq = int(data[at:data.index(",", at)])
                if last is not None and seq != last + 1:
                    gaps[i] += 1
                last = seq
                if not first_at:
                    first_at.append(time.time())
                counts[i] += 1
                if data.startswith(END):
                    done_at[i] = time.time()
                    return

        tasks = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(conns)]
        await asyncio.sleep(0.5)  # snapshots in
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
        for ws in conns:
            await ws.close()
    return {"received": sum(counts), "gaps": sum(gaps),
            "last_done_at": max(done_at), "first_at": first_at[0] if first_at else 0.0}


# -- the serving side --------------------------------------------------------------------------


async def round_(cfg: Any, redis: Redis, sockets: int, calls: int) -> dict[str, Any]:
    prefix = f"bench-wall-{secrets.token_hex(4)}"
    board = Wallboard(cfg, redis, prefix, None)
    await board.start()

    async def ws_handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        client = Client(ws.send_str, role="supervisor", agent=None,
                        transport=request.transport)
        board.add(client, snapshot=True)
        try:
            async for _ in ws:
                pass
        finally:
            board.remove(client)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    queue = "nanjing-general"
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--read", f"ws://127.0.0.1:{port}/ws", "--sockets",
        str(sockets), "--loop", LOOP[0], stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    ready = json.loads(await asyncio.wait_for(child.stdout.readline(), 60))
    assert ready.get("ready")
    clients = list(board.clients)  # (a socket leaves the hub once its reader is done)
    first_seq = board.seq  # the snapshots'

    started = time.time()
    channel = LiveKeys(prefix).events
    batch = 200
    for start in range(0, calls, batch):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(calls, start + batch)):
            cid = f"node1:bench-{i}"
            now = time.time()
            for fact, extra in (("queued", {"queue": queue, "queued_at": now}),
                                ("answered", {"queue": queue, "agent": "1001",
                                              "answered_at": now + 3}),
                                ("ended", {})):
                pipe.publish(channel, json.dumps({"type": "call", "at": now, "call_id": cid,
                                                  "node": "node1", "fact": fact, **extra}))
        await pipe.execute()
        await asyncio.sleep(0)  # let the hub read while we publish, as in real life
    await redis.publish(channel, json.dumps({"type": "hot_topics", "alerts": [{"end": True}]}))
    published_s = time.time() - started
    deadline = time.monotonic() + 120
    while not board.hot_topics and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    updates = board.seq - first_seq
    server_s = time.time() - started  # every update framed and written to every socket
    out, _ = await asyncio.wait_for(child.communicate(), 300)
    result = json.loads(out.decode().strip().splitlines()[-1])
    elapsed = result["last_done_at"] - started
    await runner.cleanup()
    await board.stop()
    view = board.queues[queue].view()
    return {"sockets": sockets, "calls": calls, "updates": updates,
            "deliveries": result["received"], "gaps": result["gaps"],
            "expected_deliveries": updates * sockets,
            "seconds": round(elapsed, 3), "publish_seconds": round(published_s, 3),
            "deliveries_per_s": round(result["received"] / elapsed),
            "server_seconds": round(server_s, 3),
            "server_deliveries_per_s": round(sum(c.sent for c in clients) / server_s),
            "updates_per_s": round(updates / elapsed),
            "final_waiting": view["waiting"], "final_answered": view["answered"]}


async def run(sockets: int, calls: int, loop: str) -> int:
    setup_logging("warning", "text")
    LOOP[0] = loop
    cfg = lab_config(Path(tempfile.mkdtemp(prefix="bench-wallboard-")))
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        one = await round_(cfg, redis, 1, calls)
        emit(bench="wallboard_fanout", **one)
        many = await round_(cfg, redis, sockets, calls)
        emit(bench="wallboard_fanout", **many)
        emit(bench="wallboard_fanout", summary=True, loop=loop,
             fanout_cost_ratio=round(one["updates_per_s"] / max(1, many["updates_per_s"]), 2),
             deliveries_ratio=round(many["deliveries_per_s"] / max(1, one["deliveries_per_s"]),
                                    1),
             gaps=one["gaps"] + many["gaps"],
             complete=(one["deliveries"] == one["expected_deliveries"]
                       and many["deliveries"] == many["expected_deliveries"]))
    finally:
        await redis.aclose()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sockets", type=int, default=100)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--read", help=argparse.SUPPRESS)
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                    help="the event loop (the service runs on uvloop)")
    args = ap.parse_args()
    runner: Any = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        runner = uvloop.run
    if args.read:
        res = runner(read_sockets(args.read, args.sockets))
        print(json.dumps(res), flush=True)
        return 0
    return int(runner(run(args.sockets, args.calls, args.loop)))


if __name__ == "__main__":
    sys.exit(main())
