"""The live state's own guarantees against a real Redis: a lost write is reported (so the
service resyncs), and a snapshot that lags the events cannot bring back an ended call."""

from __future__ import annotations

import secrets
import socket
import time

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from common import events as ev
from common.facts import CallFact, SeenSince
from telephony.live.state import LiveState
from tests.support.tracking import tracker_with_facts


def _caller(linkedid: str) -> ev.Channel:
    return ev.Channel(name=f"PJSIP/trunk-nanjing-{linkedid}", uniqueid=linkedid,
                      linkedid=linkedid, context="from-carrier", exten="12345")


async def test_a_snapshot_listing_an_ended_call_does_not_bring_it_back(redis):
    live = LiveState(redis, f"t{secrets.token_hex(4)}")
    try:
        node = "node1"
        for lk in ("100.1", "100.2"):
            await live.on_fact(CallFact("arrived", f"{node}:{lk}", node, 1.0, {"caller": ""}))
            await live.on_fact(CallFact("queued", f"{node}:{lk}", node, 2.0,
                                        {"queue": "nanjing-general"}))
        # 100.2 hung up; Asterisk's channel list, read a moment earlier, still has it.
        await live.on_fact(CallFact("ended", f"{node}:100.2", node, 3.0, {}))
        snap = ev.Snapshot(
            channels=[ev.ChannelStatus(_caller(lk), "Queue", "nanjing-general", 5, "")
                      for lk in ("100.1", "100.2")],
            entries=[ev.QueueEntry("nanjing-general", i + 1, 3, _caller(lk))
                     for i, lk in enumerate(("100.1", "100.2"))],
            members=[])
        await live.rebuild(node, snap, SeenSince(ended={f"{node}:100.2"}))
        assert [c for c, _ in await live.waiting("nanjing-general")] == [f"{node}:100.1"]
        assert await live.active_calls(node) == {f"{node}:100.1"}
        # A call that arrived and queued while the lists were read, though they miss it.
        await live.on_fact(CallFact("arrived", f"{node}:100.3", node, 4.0, {"caller": ""}))
        await live.rebuild(node, ev.Snapshot(channels=snap.channels[:1],
                                             entries=snap.entries[:1], members=[]),
                           SeenSince(up={f"{node}:100.3"},
                                     joined={f"{node}:100.3": ("nanjing-general", 9.0)}))
        assert {c for c, _ in await live.waiting("nanjing-general")} == {
            f"{node}:100.1", f"{node}:100.3"}
        assert await live.active_calls(node) == {f"{node}:100.1", f"{node}:100.3"}
    finally:
        keys = [k async for k in redis.scan_iter(f"{live.prefix}:*")]
        if keys:
            await redis.delete(*keys)


async def test_a_call_first_heard_of_while_the_snapshot_was_read_is_not_gone():
    tracker, facts = tracker_with_facts()
    old = _caller("1.10")
    await tracker.handle(ev.Newchannel("node1", channel=old))
    started = time.time()
    new = _caller("1.20")  # its events came in between the lists and the Connected event
    await tracker.handle(ev.Newchannel("node1", channel=new))
    await tracker.handle(ev.QueueCallerJoin("node1", channel=new, queue="nanjing-general",
                                            position=1))
    await tracker.handle(ev.Connected("node1", snapshot=ev.Snapshot(
        channels=[], entries=[], members=[], started_at=started)))
    assert "node1:1.20" in tracker.calls and "node1:1.10" not in tracker.calls
    seen = tracker.seen_since(ev.Snapshot([], [], [], started_at=started))
    assert seen.up == {"node1:1.20"}
    assert seen.joined["node1:1.20"][0] == "nanjing-general"
    await tracker.handle(ev.Hangup("node1", channel=new, cause=16, cause_text="Normal"))
    assert [f.kind for f in facts if f.call_id == "node1:1.20"][-1] == "ended"


async def test_writes_redis_did_not_take_are_reported():
    # A port nobody listens on: every write fails as it does while Redis restarts.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gone = Redis(host="127.0.0.1", port=port, decode_responses=True,
                 socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    lost: list[BaseException] = []
    live = LiveState(gone, "t", on_lost_writes=lost.append)
    try:
        await live.on_fact(CallFact("ended", "node1:1.1", "node1", 1.0, {}))
        await live.flush()
        assert live.write_errors > 0 and lost, "a lost end of call must be reported"
        assert live.pending == 0  # dropped, not retried forever: the resync puts it right
    finally:
        await gone.aclose()
