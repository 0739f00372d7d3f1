"""Live state in Redis: calls in progress, agents' states, queues. Every change is published on
``<prefix>:events`` for the consoles and wallboards.

After each (re)connect the node's state is rebuilt from Asterisk's snapshot, so it always ends
up equal to Asterisk's own view, whatever was missed in between.

Writes are buffered and sent in order, many events' worth in one pipeline (a node produces
thousands of AMI events a second; one round trip per event cannot keep up). Queue member
updates, the bulk of them, run as one server-side script per batch: the agent's previous state
is read and compared in Redis itself, so "since" stays exact without a read round trip. A
batch goes out ``flush_delay_s`` after its first write (or at ``batch_max``); the AMI client's
drain() flushes (``AmiClient.flushers``), and reads through this class flush first, so the
process always reads its own writes.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis

from common import events as ev
from common.facts import CallFact, SeenSince, agent_of
from common.livekeys import LiveKeys
from common.privacy import mask_number
from common.replies import text, text_map, text_set

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

# Facts for the case alone: they change nothing a wallboard or a console shows (two messages
# a call that every subscriber parsed and dropped).
BOOKKEEPING = frozenset({"completed", "leg_ended"})

# One batch of queue member updates, applied in order. ARGV[1]: the events channel; ARGV[2..7]:
# head and tail of the agent, agent queues and node agents keys (common.livekeys); ARGV[8]: now;
# ARGV[9]: the updates, separated by \30, each 7 values separated by \31: agent, node, queue,
# state, paused (0|1), reason, penalty ("" when the member was removed). One argument for the
# batch keeps the client's packing cheap. (Keys are built here: one Redis, not a cluster.)
# Each message carries the agent's whole state as it now is: ``live`` (the agent's hash) and
# ``live_queues`` (its queues' names; cjson writes an empty list as {}), so the wallboard need
# not read it back. Asterisk reports a change once per queue the agent is in: consecutive
# updates of one agent that say the same (state, pause, reason, removed or not) are one
# message, with the queues they name in ``queues`` (``queue`` is the last of them).
MEMBER_SCRIPT = """
local function split(s, sep)
  local out, i = {}, 1
  while true do
    local j = string.find(s, sep, i, true)
    if not j then out[#out + 1] = string.sub(s, i); return out end
    out[#out + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end
local channel, now = ARGV[1], tonumber(ARGV[8])
local updates = split(ARGV[9], '\\30')
local parsed = {}
for i, rec in ipairs(updates) do parsed[i] = split(rec, '\\31') end
local named, since = {}, false
for i, u in ipairs(parsed) do
  local agent, node, queue, state = u[1], u[2], u[3], u[4]
  local paused, reason, penalty = u[5], u[6], u[7]
  local k = ARGV[2] .. agent .. ARGV[3]
  local queues = ARGV[4] .. agent .. ARGV[5]
  if penalty == '' then
    redis.call('HDEL', queues, queue)
  else
    redis.call('HSET', queues, queue, string.format('{"penalty": %s, "paused": %s}',
               penalty, paused == '1' and 'true' or 'false'))
  end
  if redis.call('HGET', k, 'state') ~= state then
    redis.call('HSET', k, 'agent', agent, 'node', node, 'state', state, 'paused', paused,
               'reason', reason, 'since', ARGV[8])
    since = true
  else
    redis.call('HSET', k, 'agent', agent, 'node', node, 'state', state, 'paused', paused,
               'reason', reason)
  end
  redis.call('SADD', ARGV[6] .. node .. ARGV[7], agent)
  named[#named + 1] = queue
  local n = parsed[i + 1]
  if not (n and n[1] == agent and n[2] == node and n[4] == state and n[5] == paused
          and n[6] == reason and (n[7] == '') == (penalty == '')) then
    local msg = {type = 'agent', at = now, agent = agent, node = node, state = state,
                 paused = tonumber(paused), reason = reason, queue = queue, queues = named,
                 removed = penalty == ''}
    if since then msg.since = now end
    local flat, live = redis.call('HGETALL', k), {}
    for j = 1, #flat, 2 do live[flat[j]] = flat[j + 1] end
    msg.live = live
    msg.live_queues = redis.call('HKEYS', queues)
    redis.call('PUBLISH', channel, cjson.encode(msg))
    named, since = {}, false
  end
end
return #updates
"""
_SEPARATORS = str.maketrans({"\x1e": " ", "\x1f": " "})

# A call leaves its queue's waiting set: the queue is the fact's, or the one recorded when the
# call joined (read in Redis, no round trip). ARGV[1], ARGV[2]: head and tail of the waiting
# key (common.livekeys); ARGV[3]: the queue or ""; ARGV[4]: the call id.
LEAVE_SCRIPT = """
local q = ARGV[3]
if q == '' then q = redis.call('HGET', KEYS[1], 'waiting_in') end
if q then redis.call('ZREM', ARGV[1] .. q .. ARGV[2], ARGV[4]) end
return 0
"""


class LiveState:
    def __init__(self, redis: Redis, prefix: str = "hotline", ended_ttl_s: int = 120,
                 batch_max: int = 500, flush_delay_s: float = 0.005,
                 on_lost_writes: Callable[[BaseException], None] | None = None):
        # ``redis`` must decode responses (strings, not bytes). ``on_lost_writes`` hears of
        # every batch Redis did not take: the owner resyncs from Asterisk, since a dropped
        # end of call would otherwise stay "up" in the live state for good.
        self.redis = redis
        self.on_lost_writes = on_lost_writes
        self.prefix = prefix
        self.keys = LiveKeys(prefix)
        k = self.keys
        self._member_args = (k.events, k.agent.head, k.agent.tail, k.agent_queues.head,
                             k.agent_queues.tail, k.agents.head, k.agents.tail)
        self.ended_ttl_s = ended_ttl_s
        self.batch_max = batch_max
        self.flush_delay_s = flush_delay_s
        self.published = 0
        self.write_errors = 0
        # Commands not sent yet, in order; consecutive member updates share one script call.
        self._pending: list[list[Any]] = []
        self._pending_updates = 0
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    @property
    def channel(self) -> str:
        return self.keys.events

    async def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """Publish now, after everything buffered (subscribers see changes in order)."""
        self._command("PUBLISH", self.channel, _message(kind, payload))
        await self.flush()

    # -- the write buffer -----------------------------------------------------------------

    def _command(self, *args: Any) -> None:
        self._pending.append(list(args))
        if args[0] == "PUBLISH":
            self.published += 1
        self._note_pending()

    def _member_update(self, *values: str) -> None:
        last = self._pending[-1] if self._pending else None
        if last is None or last[1] is not MEMBER_SCRIPT:
            last = ["EVAL", MEMBER_SCRIPT, 0, *self._member_args, "", []]
            self._pending.append(last)
        last[-1].append("\x1f".join(values))
        self.published += 1
        self._note_pending()

    def _note_pending(self) -> None:
        self._pending_updates += 1
        if self._flusher is None or self._flusher.done():
            # A fresh context: the batch is about many calls, not the one being handled now.
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_soon(), context=contextvars.Context())

    async def _flush_soon(self) -> None:
        # A few milliseconds' worth of events in one round trip: unnoticeable on a wallboard,
        # and what lets a node's thousands of events a second through.
        await asyncio.sleep(self.flush_delay_s)
        await self.flush()

    async def _bounded(self) -> None:
        if self._pending_updates >= self.batch_max:
            await self.flush()

    @property
    def pending(self) -> int:
        """Updates buffered, not yet sent to Redis."""
        return self._pending_updates

    async def flush(self) -> None:
        """Send everything buffered, in order (the AMI dispatcher calls this when idle)."""
        async with self._lock:
            while self._pending:
                batch, self._pending, self._pending_updates = self._pending, [], 0
                pipe = self.redis.pipeline(transaction=False)
                for cmd in batch:
                    if cmd[1] is MEMBER_SCRIPT:
                        cmd[-2] = repr(time.time())
                        cmd[-1] = "\x1e".join(cmd[-1])
                    pipe.execute_command(*cmd)
                try:
                    results = await pipe.execute(raise_on_error=False)
                except Exception as exc:  # Redis away: the next resync rebuilds the state
                    self.write_errors += len(batch)
                    log.warning("live state not written", extra={
                        "commands": len(batch), "error": str(exc) or type(exc).__name__})
                    if self.on_lost_writes is not None:
                        self.on_lost_writes(exc)
                    continue
                failed = [r for r in results if isinstance(r, Exception)]
                if failed:
                    self.write_errors += len(failed)
                    log.warning("live state commands failed", extra={
                        "failed": len(failed), "error": str(failed[0])[:200]})
                    if self.on_lost_writes is not None:
                        self.on_lost_writes(failed[0])

    # -- calls ----------------------------------------------------------------------------

    async def on_fact(self, fact: CallFact) -> None:
        if fact.source == "cel" or fact.kind in BOOKKEEPING:
            return  # history, not live
        state = CALL_STATE.get(fact.kind)
        d = fact.data
        k = self.keys.call(fact.call_id)
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
        mapping = [x for a, b in fields.items() for x in (a, str(b))]
        self._command("HSET", k, *mapping)
        # Who waits in which queue, by when they joined (longest wait = oldest score). Sets
        # and sorted sets make repeated facts harmless.
        if fact.kind == "queued" and d.get("queue"):
            self._command("ZADD", self.keys.waiting(d["queue"]), fact.at,
                          fact.call_id)
            self._command("HSET", k, "waiting_in", d["queue"])
        elif fact.kind in ("answered", "abandoned", "ended", "orphaned"):
            self._command("EVAL", LEAVE_SCRIPT, 1, k, self.keys.waiting.head,
                          self.keys.waiting.tail, d.get("queue") or "", fact.call_id)
        if state == "ended":
            self._command("EXPIRE", k, self.ended_ttl_s)
            self._command("SREM", self.keys.calls(fact.node), fact.call_id)
        elif fact.kind == "arrived":
            self._command("SADD", self.keys.calls(fact.node), fact.call_id)
        self._command("PUBLISH", self.channel, _message("call", {
            "call_id": fact.call_id, "node": fact.node, "fact": fact.kind,
            **{k2: v for k2, v in fields.items() if k2 not in ("call_id", "node")}}))
        await self._bounded()

    # -- agents and queues ------------------------------------------------------------------

    async def on_event(self, event: ev.DomainEvent) -> None:
        if isinstance(event, ev.QueueMemberEvent):
            self._member(event.node, event.member, removed=event.kind == "Removed")
            await self._bounded()
        elif isinstance(event, ev.Connected) and event.snapshot is not None:
            await self.rebuild(event.node, event.snapshot)

    def _member(self, node: str, m: ev.QueueMember, *, removed: bool = False) -> None:
        if "@node-" in m.interface:
            # An agent lent to this node's city (queueing/surge/manager.py): the agent's state
            # is its home node's; the surge manager marks the agent "borrowed_by".
            return
        agent = agent_of(m.interface) or m.member_name
        state = ("paused" if m.paused and m.status in (1, 0)
                 else MEMBER_STATUS.get(m.status, "unknown"))
        self._member_update(agent, node, m.queue, state, "1" if m.paused else "0",
                            (m.paused_reason or "").translate(_SEPARATORS),
                            "" if removed else str(m.penalty))

    async def rebuild(self, node: str, snap: ev.Snapshot,
                      seen: SeenSince | None = None) -> None:
        """Make the node's live state equal to Asterisk's snapshot, corrected by ``seen``:
        what the event stream told after the snapshot began (the lists are read one after
        the other while calls go on, and lag the events a little)."""
        seen = seen or SeenSince()
        await self.flush()
        live_calls = ({f"{node}:{c.channel.linkedid}" for c in snap.channels
                       if c.channel.uniqueid == c.channel.linkedid} - seen.ended) | seen.up
        keys = self.keys
        known = text_set(await self.redis.smembers(keys.calls(node)))
        pipe = self.redis.pipeline(transaction=False)
        for stale in known - live_calls:
            pipe.hset(keys.call(stale), "state", "ended")
            pipe.expire(keys.call(stale), self.ended_ttl_s)
            pipe.srem(keys.calls(node), stale)
        agents = text_set(await self.redis.smembers(keys.agents(node)))
        for a in agents:
            pipe.delete(keys.agent_queues(a))
        waiting = seen.waiting(node, snap)
        queues = ({m.queue for m in snap.members} | {e.queue for e in snap.entries}
                  | {q for q, _ in waiting.values()})
        for q in queues:
            pipe.delete(keys.waiting(q))
        for cid, (queue, at) in waiting.items():
            pipe.zadd(keys.waiting(queue), {cid: at})
        await pipe.execute()
        for m in snap.members:
            self._member(node, m)
        await self.publish("resync", {"node": node, "calls": len(live_calls),
                                      "members": len(snap.members)})

    async def agent(self, agent_id: str) -> dict[str, str]:
        await self.flush()
        return text_map(await self.redis.hgetall(self.keys.agent(agent_id)))

    async def call(self, call_id: str) -> dict[str, str]:
        await self.flush()
        return text_map(await self.redis.hgetall(self.keys.call(call_id)))

    async def waiting(self, queue: str) -> list[tuple[str, float]]:
        """Callers waiting in ``queue`` with the time they joined, longest first."""
        await self.flush()
        scored = await self.redis.zrange(self.keys.waiting(queue), 0, -1, withscores=True)
        # With scores, redis-py answers (member, score) pairs; its type covers every form.
        pairs = cast(list[tuple[bytes | str, float]], scored)
        return [(text(member), float(score)) for member, score in pairs]

    async def active_calls(self, node: str) -> set[str]:
        await self.flush()
        return text_set(await self.redis.smembers(self.keys.calls(node)))


def _message(kind: str, payload: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "at": time.time(), **payload}, ensure_ascii=False)
