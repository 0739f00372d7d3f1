"""Live state in Redis: calls in progress, agents' states, queues. Every change is published on
``<prefix>:events`` for the consoles and wallboards.

After each (re)connect the node's state is rebuilt from Asterisk's snapshot, so it always ends
up equal to Asterisk's own view, whatever was missed in between.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from redis.asyncio import Redis

from hotline.privacy import mask_number
from telephony import events as ev
from telephony.calls import CallFact, agent_of

log = logging.getLogger(__name__)

# Asterisk device states (QueueMember Status) as agents' states.
MEMBER_STATUS = {
    0: "unknown", 1: "ready", 2: "on_call", 3: "busy", 4: "invalid", 5: "unavailable",
    6: "ringing", 7: "on_call", 8: "on_hold",
}

CALL_STATE = {
    "arrived": "menu", "routed": "menu", "queued": "queued", "ringing": "ringing",
    "answered": "talking", "ended": "ended", "abandoned": "ended", "orphaned": "ended",
}


class LiveState:
    def __init__(self, redis: Redis, prefix: str = "hotline", ended_ttl_s: int = 120):
        # ``redis`` must decode responses (strings, not bytes).
        self.redis = redis
        self.prefix = prefix
        self.ended_ttl_s = ended_ttl_s
        self.published = 0

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def channel(self) -> str:
        return self.key("events")

    async def publish(self, kind: str, payload: dict[str, Any]) -> None:
        msg = json.dumps({"type": kind, "at": time.time(), **payload}, ensure_ascii=False)
        await self.redis.publish(self.channel, msg)
        self.published += 1

    # -- calls ----------------------------------------------------------------------------

    async def on_fact(self, fact: CallFact) -> None:
        if fact.source == "cel":
            return  # history, not live
        state = CALL_STATE.get(fact.kind)
        d = fact.data
        k = self.key("call", fact.call_id)
        fields: dict[str, Any] = {"call_id": fact.call_id, "node": fact.node}
        if state:
            fields["state"] = state
            fields[f"{state}_at"] = fact.at
        if fact.kind == "arrived":
            fields.update(caller=mask_number(d.get("caller")), dialed=d.get("dialed") or "",
                          trunk=d.get("trunk") or "", arrived_at=fact.at)
        elif fact.kind == "routed":
            fields.update(route_queue=d.get("queue", ""), city=d.get("city") or "",
                          priority=d.get("priority", 0), case=d.get("case", ""))
        elif fact.kind in ("queued", "ringing", "answered"):
            fields.update(queue=d.get("queue") or "")
            if d.get("agent"):
                fields["agent"] = d["agent"]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(k, mapping={a: str(b) for a, b in fields.items()})
        # Who waits in which queue, by when they joined (longest wait = oldest score). Sets
        # and sorted sets make repeated facts harmless.
        if fact.kind == "queued" and d.get("queue"):
            pipe.zadd(self.key("queue", d["queue"], "waiting"), {fact.call_id: fact.at})
            pipe.hset(k, "waiting_in", d["queue"])
        elif fact.kind in ("answered", "abandoned", "ended", "orphaned"):
            queue = d.get("queue") or await self.redis.hget(k, "waiting_in")
            if queue:
                pipe.zrem(self.key("queue", queue, "waiting"), fact.call_id)
        if state == "ended":
            pipe.expire(k, self.ended_ttl_s)
            pipe.srem(self.key("calls", fact.node), fact.call_id)
        elif fact.kind == "arrived":
            pipe.sadd(self.key("calls", fact.node), fact.call_id)
        await pipe.execute()
        await self.publish("call", {"call_id": fact.call_id, "node": fact.node,
                                    "fact": fact.kind, **{k2: v for k2, v in fields.items()
                                                          if k2 not in ("call_id", "node")}})

    # -- agents and queues ------------------------------------------------------------------

    async def on_event(self, event: ev.DomainEvent) -> None:
        if isinstance(event, ev.QueueMemberEvent):
            await self._member(event.node, event.member, removed=event.kind == "Removed")
        elif isinstance(event, ev.Connected) and event.snapshot is not None:
            await self.rebuild(event.node, event.snapshot)

    async def _member(self, node: str, m: ev.QueueMember, *, removed: bool = False) -> None:
        if "@node-" in m.interface:
            # An agent lent to this node's city (queueing/surge_manager.py): the agent's state
            # is its home node's; the surge manager marks the agent "borrowed_by".
            return
        agent = agent_of(m.interface) or m.member_name
        k = self.key("agent", agent)
        qk = self.key("agent", agent, "queues")
        pipe = self.redis.pipeline(transaction=False)
        if removed:
            pipe.hdel(qk, m.queue)
        else:
            pipe.hset(qk, m.queue, json.dumps({"penalty": m.penalty, "paused": m.paused}))
        state = ("paused" if m.paused and m.status in (1, 0)
                 else MEMBER_STATUS.get(m.status, "unknown"))
        prev = await self.redis.hget(k, "state")
        fields = {"agent": agent, "node": node, "state": state, "paused": int(m.paused),
                  "reason": m.paused_reason or ""}
        if prev != state:
            fields["since"] = time.time()
        pipe.hset(k, mapping={a: str(b) for a, b in fields.items()})
        pipe.sadd(self.key("agents", node), agent)
        await pipe.execute()
        await self.publish("agent", {**fields, "queue": m.queue, "removed": removed})

    async def rebuild(self, node: str, snap: ev.Snapshot) -> None:
        """Make the node's live state equal to Asterisk's snapshot."""
        live_calls = {f"{node}:{c.channel.linkedid}" for c in snap.channels
                      if c.channel.uniqueid == c.channel.linkedid}
        known = set(await self.redis.smembers(self.key("calls", node)))
        pipe = self.redis.pipeline(transaction=False)
        for stale in known - live_calls:
            pipe.hset(self.key("call", stale), "state", "ended")
            pipe.expire(self.key("call", stale), self.ended_ttl_s)
            pipe.srem(self.key("calls", node), stale)
        agents = set(await self.redis.smembers(self.key("agents", node)))
        for a in agents:
            pipe.delete(self.key("agent", a, "queues"))
        queues = {m.queue for m in snap.members} | {e.queue for e in snap.entries}
        for q in queues:
            pipe.delete(self.key("queue", q, "waiting"))
        for e in snap.entries:
            pipe.zadd(self.key("queue", e.queue, "waiting"),
                      {f"{node}:{e.channel.linkedid}": snap.taken_at - e.wait_s})
        await pipe.execute()
        for m in snap.members:
            await self._member(node, m)
        await self.publish("resync", {"node": node, "calls": len(live_calls),
                                      "members": len(snap.members)})

    async def agent(self, agent_id: str) -> dict[str, str]:
        return dict(await self.redis.hgetall(self.key("agent", agent_id)))

    async def call(self, call_id: str) -> dict[str, str]:
        return dict(await self.redis.hgetall(self.key("call", call_id)))

    async def waiting(self, queue: str) -> list[tuple[str, float]]:
        """Callers waiting in ``queue`` with the time they joined, longest first."""
        return list(await self.redis.zrange(self.key("queue", queue, "waiting"), 0, -1,
                                            withscores=True))

    async def active_calls(self, node: str) -> set[str]:
        return set(await self.redis.smembers(self.key("calls", node)))
