"""The live hub behind the supervisor wallboard and the agents' consoles.

One Redis subscription per web process (``<prefix>:events`` and ``<prefix>:captions``) —
never one per browser, and never polling Asterisk. Each message updates the board's state
(per queue, per city, per agent); the messages of a burst (those already received when the
first is read) are handled together, and what they changed goes out as one update, serialised
once for every wallboard socket, numbered: ``seq`` grows by one per update, so a browser (and
the tests) can tell that nothing was dropped. A socket that cannot keep up is closed with code
4000 (the page reconnects and starts again from a full snapshot), never silently skipped.

Agents' consoles get only their own events: the calls ringing or answered at their extension,
their state, their softphone's reports and the captions of their call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.supervision import satisfaction
from cases.models import Case
from common.config import Config
from common.livekeys import LiveKeys
from common.queues import all_queues, split_queue
from common.replies import text_map
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
# A message from the feed, and whether it is a caption (the captions channel) or an event.
Received = tuple[dict[str, Any], bool]

# The most messages handled as one burst (a batch of queue member updates, a call's facts).
BURST_MAX = 500
# What the live state's member updates carry for the wallboard, not for the agent's console.
CARRIED = ("live", "live_queues")


@dataclass
class Changes:
    """What a burst of messages changed: one update for the wallboards."""

    queues: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    cities: set[str] = field(default_factory=set)  # the changed agents' (queues' come later)
    event: str = ""  # the kind of the last message that changed something


@dataclass
class QueueStats:
    waiting: dict[str, float] = field(default_factory=dict)  # call id -> joined (epoch)
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    wait_total: float = 0.0

    def view(self) -> dict[str, Any]:
        offered = self.answered + self.abandoned
        return {
            "waiting": len(self.waiting),
            "longest_since": min(self.waiting.values()) if self.waiting else None,
            "answered": self.answered, "abandoned": self.abandoned,
            "service_level": round(self.answered_in_sl / offered, 4) if offered else None,
            "abandon_rate": round(self.abandoned / offered, 4) if offered else None,
            "asa": round(self.wait_total / self.answered, 1) if self.answered else None,
        }


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class Client:
    """One socket. Wallboard updates are framed once per update and written straight to each
    socket's transport (``transport`` given: a socket without compression), bounded by the
    transport's write buffer; other messages go through a bounded queue and a writer task."""

    def __init__(self, send: Send, *, role: str, agent: str | None, max_queue: int = 20000,
                 on_overflow: Callable[[], Coroutine[Any, Any, None]] | None = None,
                 transport: asyncio.Transport | None = None, max_buffer: int = 8 << 20):
        self.send = send
        self.role = role
        self.agent = agent
        self.queue: asyncio.Queue[str] = asyncio.Queue(max_queue)
        self.on_overflow = on_overflow
        self.transport = transport
        self.max_buffer = max_buffer
        self.overflowed = False
        self.sent = 0
        self.task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    def _overflow(self) -> None:
        self.overflowed = True
        log.warning("wallboard socket too slow: closed", extra={"role": self.role})
        if self.on_overflow is not None:
            self._closer = asyncio.get_running_loop().create_task(self.on_overflow())

    def put(self, data: str) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self._overflow()

    def write_frame(self, frames: bytes, count: int = 1) -> None:
        t = self.transport
        if self.overflowed or t is None or t.is_closing():
            return
        if t.get_write_buffer_size() > self.max_buffer:
            self._overflow()
            return
        t.write(frames)
        self.sent += count

    async def run(self) -> None:
        while True:
            data = await self.queue.get()
            await self.send(data)
            self.sent += 1


class Wallboard:
    def __init__(self, cfg: Config, redis: Redis, prefix: str,
                 sessions: async_sessionmaker[AsyncSession] | None = None, *,
                 service_level_s: int = 15):
        self.cfg = cfg
        self.redis = redis
        self.prefix = prefix
        self.keys = LiveKeys(prefix)
        self.sessions = sessions
        self.sl_s = service_level_s
        self.tz = ZoneInfo(cfg.service.timezone)
        self.queues: dict[str, QueueStats] = {q: QueueStats() for q in all_queues(cfg)}
        self.agents: dict[str, dict[str, Any]] = {}
        self.known_agents = {a.id for a in cfg.agents}
        self.calls: dict[str, dict[str, Any]] = {}  # live calls: queue, queued_at, agent
        self._counted: set[str] = set()
        self.seq = 0
        self.clients: set[Client] = set()
        self.by_agent: dict[str, set[Client]] = {}
        self.messages = 0
        # The open hot-topic alerts as agent_desk/insight last published them.
        self.hot_topics: list[dict[str, Any]] = []
        # 监听、耳语、强插 in progress, by session id (telephony/monitoring).
        self.monitoring: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._pending: list[str] = []
        self._flush_scheduled = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="wallboard")
        await asyncio.wait_for(self._subscribed.wait(), 10)
        await self.reload()
        await self._load_today()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], what="wallboard")
            self._task = None
        for c in list(self.clients):
            self.remove(c)

    async def _listen(self) -> None:
        channels = (self.keys.events, self.keys.captions)
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*channels)
                self._subscribed.set()
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None:
                        continue
                    # With what has already arrived behind it: a batch of member updates
                    # publishes a message per queue of each agent, a call several facts.
                    msgs = [msg]
                    while len(msgs) < BURST_MAX:
                        more = await pubsub.get_message(ignore_subscribe_messages=True,
                                                        timeout=0)
                        if more is None:
                            break
                        msgs.append(more)
                    batch = [r for r in map(self._received, msgs) if r is not None]
                    if batch:
                        await self.handle_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("wallboard feed interrupted", extra={"error": str(exc)})
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    await self.reload()
                    self._broadcast({"type": "update", "full": True, **self._all()})
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 2)

    def _received(self, msg: dict[str, Any]) -> Received | None:
        if msg.get("type") != "message":
            return None
        try:
            doc = json.loads(msg["data"])
        except (ValueError, TypeError):
            return None
        if not isinstance(doc, dict):
            return None
        return doc, msg["channel"] == self.keys.captions

    async def reload(self) -> None:
        """Waiting callers and agents from the live state in Redis (after a resync)."""
        queues = set(self.queues)
        pipe = self.redis.pipeline(transaction=False)
        for q in sorted(queues):
            pipe.zrange(self.keys.waiting(q), 0, -1, withscores=True)
        results = await pipe.execute()
        for q, rows in zip(sorted(queues), results, strict=True):
            self.queues[q].waiting = {cid: float(score) for cid, score in rows}
        self.agents.update(await self._load_agents([a.id for a in self.cfg.agents]))

    async def _load_agents(self, agent_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The agents' views from their live state: one round trip for them all."""
        ids = list(agent_ids)
        pipe = self.redis.pipeline(transaction=False)
        for a in ids:
            pipe.hgetall(self.keys.agent(a))
            pipe.hgetall(self.keys.agent_queues(a))
        replies = await pipe.execute()
        return {a: self._agent_view(a, text_map(replies[2 * i]), text_map(replies[2 * i + 1]))
                for i, a in enumerate(ids)}

    def _agent_view(self, agent_id: str, h: dict[str, str], queues: Collection[str]
                    ) -> dict[str, Any]:
        # ``queues``: the agent's queues by name (their settings do not count here).
        cfg_agent = self.cfg.agent(agent_id)
        state = h.get("state") or ("signed_out" if not queues else "unknown")
        reason = h.get("reason", "")
        if h.get("paused") == "1" and state in ("ready", "unavailable", "unknown"):
            state = "paused"
        if not queues:
            state = "signed_out"
        elif state == "paused" and reason == "after_call_work":
            state = "wrapup"
        home = h.get("home_city") or cfg_agent.city
        borrowed_by = h.get("borrowed_by") or None
        return {"agent": agent_id, "name": cfg_agent.name, "state": state, "reason": reason,
                "since": float(h.get("since") or 0) or None, "home_city": home,
                "city": borrowed_by or home, "borrowed_by": borrowed_by,
                "queues": sorted(queues)}

    async def _load_today(self) -> None:
        if self.sessions is None:
            return
        start = datetime.combine(datetime.now(self.tz).date(), dtime(), self.tz)
        async with self.sessions() as s:
            rows = (await s.execute(select(Case.call_id, Case.queue, Case.outcome,
                                           Case.wait_seconds).where(
                Case.created_at >= start, Case.queue.is_not(None),
                Case.outcome.in_(("answered", "abandoned"))))).all()
        for call_id, queue, outcome, wait in rows:
            st = self.queues.get(queue) if queue else None
            # The query asks for calls with a queue and an outcome: both are there.
            if st is None or call_id is None or outcome is None or call_id in self._counted:
                continue
            self._counted.add(call_id)
            self._count(st, outcome, wait)

    def _count(self, st: QueueStats, outcome: str, wait: float | None) -> None:
        if outcome == "answered":
            st.answered += 1
            st.wait_total += wait or 0.0
            if wait is not None and wait <= self.sl_s:
                st.answered_in_sl += 1
        else:
            st.abandoned += 1

    # -- state ------------------------------------------------------------------------------

    def city_of_queue(self, queue: str) -> str:
        return split_queue(queue)[0]

    def city_view(self, city: str) -> dict[str, Any]:
        qs = [st for q, st in self.queues.items() if self.city_of_queue(q) == city]
        total = QueueStats()
        for st in qs:
            total.waiting.update(st.waiting)
            total.answered += st.answered
            total.answered_in_sl += st.answered_in_sl
            total.abandoned += st.abandoned
            total.wait_total += st.wait_total
        view = total.view()
        counts = {"ready": 0, "on_call": 0, "wrapup": 0, "paused": 0, "borrowed": 0,
                  "ringing": 0, "signed_out": 0, "other": 0}
        for a in self.agents.values():
            if a["city"] != city:
                continue
            st = a["state"]
            counts[st if st in counts else "other"] += 1
            if a["borrowed_by"] == city:
                counts["borrowed"] += 1
        view["agents"] = counts
        view["name"] = next((c.name for c in self.cfg.cities if c.id == city), city)
        return view

    def cities(self) -> list[str]:
        return [c.id for c in self.cfg.cities]

    def _all(self) -> dict[str, Any]:
        return {"queues": {q: st.view() for q, st in self.queues.items()},
                "cities": {c: self.city_view(c) for c in self.cities()},
                "agents": dict(self.agents), "hot_topics": list(self.hot_topics),
                "monitoring": dict(self.monitoring)}

    async def satisfaction(self) -> dict[str, Any]:
        """Today's 满意率 per city and queue, from the case records (not the live state)."""
        if self.sessions is None:
            return {"day": datetime.now(self.tz).date().isoformat(), "cities": {}, "queues": {}}
        return await satisfaction.today(self.sessions, self.tz)

    def snapshot(self) -> dict[str, Any]:
        return {"type": "snapshot", "seq": self.seq, "now": time.time(),
                "service_level_s": self.sl_s, **self._all()}

    async def handle(self, doc: dict[str, Any]) -> None:
        """One message from the events channel (a burst of one)."""
        await self.handle_batch([(doc, False)])

    async def handle_batch(self, batch: list[Received]) -> None:
        """Messages that arrived together, applied in their order. The agents named without
        their state are read back first, in one round trip for the burst (that read is at
        least as new as every message of it); the changes go out as one update, after any
        update the burst sends of another kind (monitoring, hot topics, a resync) before."""
        read_back = sorted({a for doc, caption in batch if not caption
                            and self._names_agents(doc) and _carried(doc) is None
                            for a in self._named(doc)})
        loaded = await self._load_agents(read_back) if read_back else {}
        changes = Changes()
        for doc, caption in batch:
            if caption:
                self._caption(doc)
            else:
                await self._apply(doc, changes, loaded)
        self._send(changes)

    def _names_agents(self, doc: dict[str, Any]) -> bool:
        """An agent's state, sign-in, skills, or a surge moving agents between cities (their
        live state carries borrowed_by / home_city)."""
        kind = doc.get("type")
        if kind in ("call", "monitoring", "hot_topics", "resync") or (
                kind == "softphone" and doc.get("agent")):
            return False
        return bool(doc.get("agent") or doc.get("agents") or doc.get("agent_ids"))

    def _named(self, doc: dict[str, Any]) -> set[str]:
        named = [doc["agent"]] if doc.get("agent") else []
        for key in ("agents", "agent_ids"):
            if isinstance(doc.get(key), list):
                named += [a if isinstance(a, str) else a.get("agent", "")
                          for a in doc[key] if isinstance(a, (str, dict))]
        return {str(a) for a in named} & self.known_agents

    async def _apply(self, doc: dict[str, Any], changes: Changes,
                     loaded: dict[str, dict[str, Any]]) -> None:
        kind = str(doc.get("type"))
        self.messages += 1
        if kind == "call":
            agent = doc.get("agent") or self.calls.get(str(doc.get("call_id")), {}).get("agent")
            changed: set[str] = set()
            self._call(doc, changed)
            if changed:
                changes.queues |= changed
                changes.event = kind
            if agent:
                self._to_agent(str(agent), doc)
        elif kind == "softphone" and doc.get("agent"):
            self._to_agent(str(doc["agent"]), doc)
        elif kind == "monitoring":
            self._send(changes)
            self._monitoring(doc)
        elif kind == "hot_topics":
            alerts = doc.get("alerts")
            self.hot_topics = [a for a in alerts if isinstance(a, dict)] \
                if isinstance(alerts, list) else []
            self._send(changes)
            self._broadcast({"type": "update", "event": kind, "hot_topics": self.hot_topics})
        elif kind == "resync":
            self._send(changes)
            await self.reload()
            self._broadcast({"type": "update", "full": True, **self._all()})
        elif self._names_agents(doc):
            carried = _carried(doc)
            for agent in self._named(doc):
                # A member update says the agent's state; other messages were read back.
                view = (self._agent_view(agent, *carried) if carried is not None
                        else loaded.get(agent))
                if view is None:
                    continue
                self.agents[agent] = view
                changes.agents.add(agent)
                changes.cities |= {view["city"], view["home_city"]}
                changes.event = kind
                self._to_agent(agent, doc)

    def _send(self, changes: Changes) -> None:
        """The update for what the messages handled so far changed, if anything."""
        if not changes.queues and not changes.agents:
            return
        cities = changes.cities | {self.city_of_queue(q) for q in changes.queues}
        self._broadcast({
            "type": "update", "event": changes.event,
            "queues": {q: self.queues[q].view() for q in changes.queues},
            "cities": {c: self.city_view(c) for c in cities if c in self.cities()},
            "agents": {a: self.agents[a] for a in changes.agents if a in self.agents}})
        changes.queues, changes.agents, changes.cities = set(), set(), set()

    def _monitoring(self, doc: dict[str, Any]) -> None:
        """A supervisor on an agent's call: every wallboard sees it; the agent's console only
        when the [supervision] policy says so (``agent_sees``, set by the publisher)."""
        sid = str(doc.get("session_id", ""))
        if not sid:
            return
        view = {k: v for k, v in doc.items() if k not in ("type", "agent_sees")}
        if doc.get("state") == "ended":
            self.monitoring.pop(sid, None)
        else:
            self.monitoring[sid] = view
        self._broadcast({"type": "update", "event": "monitoring",
                         "monitoring": {sid: view}})
        if doc.get("agent_sees") is True and doc.get("agent"):
            # The agent learns the mode and the state, not who is listening.
            self._to_agent(str(doc["agent"]), {
                "type": "monitoring", "mode": doc.get("mode"), "state": doc.get("state")})

    def _call(self, doc: dict[str, Any], changed: set[str]) -> None:
        call_id = str(doc.get("call_id", ""))
        fact = doc.get("fact")
        call = self.calls.setdefault(call_id, {})
        at = float(doc.get("at") or time.time())
        if fact == "queued" and doc.get("queue"):
            q = str(doc["queue"])
            if q in self.queues:
                old = call.get("queue")
                if old and old != q and old in self.queues:
                    self.queues[old].waiting.pop(call_id, None)
                    changed.add(old)
                call["queue"] = q
                call.setdefault("queued_at", float(doc.get("queued_at") or at))
                self.queues[q].waiting[call_id] = call["queued_at"]
                changed.add(q)
        elif fact == "ringing" and doc.get("agent"):
            call["agent"] = str(doc["agent"])
        elif fact == "ring_noanswer" and not call.get("answered"):
            call.pop("agent", None)  # the queue rings someone else next
        elif fact == "answered":
            call["answered"] = True
            q = str(doc.get("queue") or call.get("queue") or "")
            call["agent"] = str(doc.get("agent") or call.get("agent") or "")
            for wq in {q, call.get("queue")} - {None, ""}:
                st = self.queues.get(str(wq))
                if st is not None and st.waiting.pop(call_id, None) is not None:
                    changed.add(str(wq))
            st = self.queues.get(q)
            if st is not None and call_id not in self._counted:
                self._counted.add(call_id)
                wait = float(doc.get("answered_at") or at) - call["queued_at"] if (
                    "queued_at" in call) else None
                self._count(st, "answered", wait)
                changed.add(q)
        elif fact in ("abandoned", "ended", "orphaned"):
            q = str(call.get("queue") or "")
            st = self.queues.get(q) if q else None
            if st is not None:
                if st.waiting.pop(call_id, None) is not None:
                    changed.add(q)
                if (fact == "abandoned" or "agent" not in call) and call_id not in self._counted:
                    self._counted.add(call_id)
                    self._count(st, "abandoned", None)
                    changed.add(q)
            if fact != "abandoned":
                self.calls.pop(call_id, None)
        if len(self._counted) > 200_000:
            self._counted.clear()

    # -- fan-out ----------------------------------------------------------------------------

    def _broadcast(self, body: dict[str, Any]) -> None:
        self.seq += 1
        body["seq"] = self.seq
        body["now"] = time.time()
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        # Coalesced: the updates handled before the loop next turns go out in one write per
        # socket (one system call for a burst, not one per update and socket).
        self._pending.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        if not pending:
            return
        blob = b"".join(ws_text_frame(d.encode()) for d in pending)
        for c in self.clients:
            if c.role == "agent":
                continue
            if c.transport is not None:
                c.write_frame(blob, len(pending))
            else:
                for d in pending:
                    c.put(d)

    def _to_agent(self, agent: str, doc: dict[str, Any]) -> None:
        clients = self.by_agent.get(agent)
        if not clients:
            return
        if "live" in doc:
            # The console reads its own state from the API; the message stays as it was.
            doc = {k: v for k, v in doc.items() if k not in CARRIED}
        data = json.dumps({"type": "console", "event": doc}, ensure_ascii=False)
        for c in clients:
            c.put(data)

    def _caption(self, doc: dict[str, Any]) -> None:
        call_id = str(doc.get("call_id", ""))
        agent = self.calls.get(call_id, {}).get("agent")
        if not agent:
            # captions carry the caller channel's uniqueid/linkedid without the node
            for cid, call in self.calls.items():
                if cid.endswith(":" + call_id) and call.get("agent"):
                    agent = call["agent"]
                    break
        if agent:
            self._to_agent(agent, {"type": "caption", **doc})

    def add(self, client: Client, *, snapshot: bool = False) -> None:
        """Register a socket. With ``snapshot`` (a wallboard), the full state is written to it
        first, in the same step, so its updates follow the snapshot's ``seq`` without a gap."""
        self._flush()
        if snapshot:
            data = json.dumps(self.snapshot(), ensure_ascii=False, separators=(",", ":"))
            if client.transport is not None:
                client.write_frame(ws_text_frame(data.encode()), 0)
            else:
                client.put(data)
        self.clients.add(client)
        if client.agent:
            self.by_agent.setdefault(client.agent, set()).add(client)
        client.task = asyncio.create_task(client.run())

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        if client.agent and client.agent in self.by_agent:
            self.by_agent[client.agent].discard(client)
        if client.task is not None:
            client.task.cancel()


def _carried(doc: dict[str, Any]) -> tuple[dict[str, str], list[str]] | None:
    """The agent's state a member update carries (telephony.live.state's MEMBER_SCRIPT): its
    live hash and its queues' names; None for a message that does not."""
    live, queues = doc.get("live"), doc.get("live_queues")
    if queues == {}:
        queues = []  # no queue left: cjson writes the empty list as {}
    if not isinstance(live, dict) or not isinstance(queues, list):
        return None
    return live, queues
