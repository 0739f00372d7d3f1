"""The live state's own guarantees against a real Redis: a lost write is reported (so the
service resyncs), and a snapshot that lags the events cannot bring back an ended call. And the
wallboard's side of it: queue member updates carry the agent's state (no read back per
message), and a burst of messages makes one update."""

from __future__ import annotations

import json
import secrets
import socket
import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agent_desk.supervision.wallboard import Client, Wallboard
from common import events as ev
from common.facts import CallFact, SeenSince
from common.livekeys import LiveKeys
from telephony.live.state import LiveState
from tests.support.service import lab_test_config
from tests.support.tracking import tracker_with_facts
from tests.support.waiting import eventually


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


def _member(queue: str, agent: str, *, paused: bool = False, reason: str = "") -> ev.QueueMember:
    return ev.QueueMember(queue=queue, interface=f"PJSIP/{agent}", member_name=agent,
                          penalty=0, paused=paused, status=1, in_call=False,
                          paused_reason=reason)


class Board:
    """A wallboard on the live state's channel, with what it read back and what it sent to a
    supervisor's socket and to agent 1001's console."""

    def __init__(self, redis: Redis, tmp_path: Any):
        self.prefix = f"t{secrets.token_hex(4)}"
        self.redis = redis
        self.live = LiveState(redis, self.prefix)
        self.board = Wallboard(lab_test_config(tmp_path), redis, self.prefix)
        self.read_back: list[list[str]] = []
        self.updates: list[dict[str, Any]] = []
        self.console: list[dict[str, Any]] = []

    async def start(self) -> None:
        await self.board.start()
        self.load = self.board._load_agents  # the real read, for the expected views

        async def counted(ids: Any) -> dict[str, dict[str, Any]]:
            ids = list(ids)
            self.read_back.append(ids)
            return await self.load(ids)

        self.board._load_agents = counted  # type: ignore[method-assign]

        async def to_board(data: str) -> None:
            self.updates.append(json.loads(data))

        async def to_console(data: str) -> None:
            self.console.append(json.loads(data)["event"])

        self.board.add(Client(to_board, role="supervisor", agent=None))
        self.board.add(Client(to_console, role="agent", agent="1001"))

    def mark(self) -> tuple[int, int]:
        """Messages handled and updates sent so far (before publishing)."""
        return self.board.messages, self.board.seq

    async def updates_for(self, mark: tuple[int, int], n: int) -> int:
        """Wait for ``n`` messages handled since ``mark`` and the socket at the last update;
        the number of updates they made."""
        messages, seq = mark

        async def done() -> bool:
            return (self.board.messages >= messages + n and bool(self.updates)
                    and self.updates[-1]["seq"] == self.board.seq)
        await eventually(done, 10, 0.02, what=f"{n} messages handled")
        assert self.board.messages == messages + n
        return self.board.seq - seq

    async def expected(self, *agents: str) -> bool:
        """The board shows what reading the agents' live state gives."""
        fresh = await self.load(agents)
        return {a: self.board.agents[a] for a in agents} == fresh

    async def close(self) -> None:
        await self.board.stop()
        keys = [k async for k in self.redis.scan_iter(f"{self.prefix}:*")]
        if keys:
            await self.redis.delete(*keys)


async def test_member_updates_reach_the_wallboard_with_the_agents_state_in_one_update(
        redis, tmp_path):
    b = Board(redis, tmp_path)
    await b.start()
    try:
        queues = {"1001": ["nanjing-general", "nanjing-enterprise_policy", "province-general"],
                  "1002": ["nanjing-general", "nanjing-lang_en"]}
        # Sign-in: an update per queue of each agent, one batch (one script run).
        for agent, qs in queues.items():
            for q in qs:
                b.live._member("node1", _member(q, agent))
        mark = b.mark()
        await b.live.flush()
        # A message per agent (its queues' updates say the same), one update for the burst.
        assert await b.updates_for(mark, 2) == 1, "one update for the burst, not one a message"
        assert set(b.updates[-1]["agents"]) == {"1001", "1002"}
        assert b.read_back == [], "the messages carry the state: nothing read back"
        assert await b.expected("1001", "1002", "2001")
        assert b.board.agents["1001"]["state"] == "ready"
        assert b.board.agents["1001"]["queues"] == sorted(queues["1001"])

        # 1001 paused in every queue, 1002 out of all its queues (no queue left: the message
        # says so with an empty list, which cjson writes as {}); the last message wins.
        for q in queues["1001"]:
            b.live._member("node1", _member(q, "1001", paused=True, reason="meeting"))
        for q in queues["1002"]:
            await b.live.on_event(ev.QueueMemberEvent("node1", kind="Removed",
                                                      member=_member(q, "1002")))
        mark = b.mark()
        await b.live.flush()
        assert await b.updates_for(mark, 2) == 1
        assert b.read_back == []
        assert await b.expected("1001", "1002")
        a1001, a1002 = b.board.agents["1001"], b.board.agents["1002"]
        assert (a1001["state"], a1001["reason"]) == ("paused", "meeting")
        assert (a1002["state"], a1002["queues"]) == ("signed_out", [])
        assert b.updates[-1]["agents"] == {"1001": a1001, "1002": a1002}
        assert b.updates[-1]["cities"]["nanjing"]["agents"]["signed_out"] == 1
        # The agent's console gets a message per change, naming the queues it was reported
        # in (Asterisk reports it once per queue), without the wallboard's part.
        mine = [m for m in b.console if m.get("type") == "agent"]
        assert [(m["state"], m["queues"]) for m in mine] == [
            ("ready", queues["1001"]), ("paused", queues["1001"])]
        assert not any("live" in m or "live_queues" in m for m in mine)
    finally:
        await b.close()


async def test_a_message_without_the_state_is_read_back_once_for_its_burst(redis, tmp_path):
    b = Board(redis, tmp_path)
    await b.start()
    try:
        # A surge lends 2001 (Suzhou) to Nanjing: its live state says so, the message names it
        # only; behind it, in the same burst, a member update of 1001 (with its state).
        await redis.hset(LiveKeys(b.prefix).agent("2001"),
                         mapping={"borrowed_by": "nanjing", "home_city": "suzhou"})
        b.live._member("node1", _member("nanjing-general", "1001"))
        mark = b.mark()
        await b.live.publish("surge", {"action": "borrow", "agents": [{"agent": "2001"}],
                                       "agent_ids": ["1002"]})
        assert await b.updates_for(mark, 2) == 1
        assert b.read_back == [["1002", "2001"]], "one read for the burst, of those named only"
        assert b.board.agents["2001"]["city"] == "nanjing"
        assert b.board.agents["2001"]["borrowed_by"] == "nanjing"
        assert b.board.agents["1001"]["state"] == "ready"
        assert await b.expected("1001", "1002", "2001")
        assert set(b.updates[-1]["cities"]) == {"nanjing", "suzhou"}
        # One message on its own (handle) reads back as before.
        await b.board.handle({"type": "skills", "agent": "2001", "skills": {}})
        assert b.read_back[-1] == ["2001"]
    finally:
        await b.close()
