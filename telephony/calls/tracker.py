"""From AMI events to call facts.

The tracker follows each inbound call (keyed by node and Asterisk's linkedid) through menu,
queue, agent ringing, answer and hangup, and emits ``CallFact``s to its sinks (the case recorder,
the live state). Facts carry natural keys made of Asterisk ids, so sinks can apply the same fact
twice without counting it twice — which is what happens around reconnects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common import events as ev
from common.facts import (
    INBOUND_CONTEXTS,
    CallFact,
    SeenSince,
    Sink,
    agent_of,
    call_id_of,
    trunk_of,
)
from common.logs import call_scope, note_case
from telephony.calls.rating import NOT_RATED, rating_of, unrated_why

# The caller's choices when nobody answers ([hotline-nobody]) or while waiting (keep my
# place): channel variables (also CEL user events, telephony/calls/cel.py) and their facts.
CHOICE_VARIABLES = {"HOTLINE_NOBODY": "nobody", "HOTLINE_CALLBACK_REQUEST": "callback_requested",
                    "HOTLINE_MESSAGE": "message", "HOTLINE_KEEP_PLACE": "keep_place"}

log = logging.getLogger(__name__)




@dataclass
class AgentLeg:
    agent_id: str
    uniqueid: str
    channel: str
    called_at: float
    answered_at: float | None = None
    ended: bool = False


@dataclass
class Call:
    call_id: str
    node: str
    linkedid: str
    caller_uniqueid: str
    caller_channel: str
    arrived_at: float
    queue: str | None = None
    answered_by: str | None = None
    completed_reason: str | None = None
    agents: dict[str, AgentLeg] = field(default_factory=dict)  # by agent channel uniqueid
    ended: bool = False
    ended_at: float = 0.0
    # The caller's QUEUE_MAX_PENALTY: a queue rule raising it widens the call to lower levels.
    max_penalty: int | None = None
    # Its case number, once the case store has it (log lines about the call carry it).
    case: str | None = None
    # When we first heard of it, and when it joined its queue (wall clock, as snapshots).
    seen_at: float = field(default_factory=time.time)
    queued_at: float = 0.0
    # The caller's 一键评价 was heard (or its absence recorded): one ``rated`` fact per call.
    rated: bool = False
    # Up at a resync: events of the reconnect's gap may be lost, so its end asks for CEL's word.
    resynced: bool = False
    # The nobody-there variables already reported (one fact each).
    reported: set[str] = field(default_factory=set)
    # Asterisk's QueueCallerAbandon, held back: app_queue sends it when the caller hangs up
    # in the queue and also when Queue() times out (record_abandoned on QUEUE_TIMEOUT) and
    # the dialplan goes on (the next queue, nobody there). Only what follows tells which: the
    # caller's hang-up makes it the call's abandon; anything the dialplan does next drops it.
    abandon: tuple[float, str, float] | None = None

    def heard_after(self, snap: ev.Snapshot) -> bool:
        """First heard of after the snapshot began: it may be missing from it."""
        return 0 < snap.started_at <= self.seen_at


class CallTracker:
    def __init__(self, node: str, sinks: Sequence[Sink] | None = None,
                 on_resync: Callable[[ev.Connected, set[str], set[str]], Awaitable[None]]
                 | None = None, case_of: Callable[[str], str | None] | None = None):
        self.node = node
        self.case_of = case_of  # the case number of a call, once the case store wrote it
        self.sinks: list[Sink] = list(sinks or [])
        self.calls: dict[str, Call] = {}
        self._purged_at = 0.0
        # Told at each resync, before the snapshot is applied, which calls ended while we were
        # away (the CEL reconciler finishes them) and which are up (their history is
        # backfilled from CEL).
        self.on_resync = on_resync

    async def emit(self, kind: str, call: Call, at: float, source: str = "live",
                   **data: Any) -> None:
        fact = CallFact(kind, call.call_id, self.node, at, data, source)
        with call_scope(call.call_id, call.case):
            for sink in self.sinks:
                try:
                    ref = await sink(fact)
                except Exception:
                    log.exception("call fact sink failed",
                                  extra={"call_id": call.call_id, "fact": kind})
                    continue
                # The case store answers with the case (hotline.service puts it first).
                number = getattr(ref, "number", None)
                if number and call.case is None:
                    call.case = str(number)
                    note_case(call.call_id, call.case)
            if call.case is None and self.case_of is not None:
                # A store that writes in the background knows the case once it is written.
                call.case = self.case_of(call.call_id)
                note_case(call.call_id, call.case)
            log.debug("call fact", extra={"fact": kind, "source": source})

    def _call(self, channel: ev.Channel) -> Call | None:
        return self.calls.get(call_id_of(self.node, channel.linkedid))

    async def handle(self, event: ev.DomainEvent) -> None:
        if isinstance(event, ev.Connected):
            await self._resync(event)
            return
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            channel = getattr(event, "channel", None)
            call = self._call(channel) if channel is not None else None
            if call is None:
                await handler(event)
                return
            with call_scope(call.call_id, call.case):
                await handler(event)

    # -- channel life --------------------------------------------------------------------

    async def _on_Newchannel(self, e: ev.Newchannel) -> None:  # noqa: N802
        ch = e.channel
        if ch.context not in INBOUND_CONTEXTS or ch.uniqueid != ch.linkedid:
            return
        await self._arrived(ch, e.received_at, source="live", dialed=ch.exten)

    async def _arrived(self, ch: ev.Channel, at: float, *, source: str, dialed: str) -> Call:
        cid = call_id_of(self.node, ch.linkedid)
        call = self.calls.get(cid)
        if call is None:
            call = Call(cid, self.node, ch.linkedid, ch.uniqueid, ch.name, at)
            self.calls[cid] = call
            await self.emit("arrived", call, at, source, caller=ch.caller_num,
                            caller_name=ch.caller_name, dialed=dialed, trunk=trunk_of(ch.name),
                            uniqueid=ch.uniqueid, channel=ch.name)
        return call

    async def _on_Hangup(self, e: ev.Hangup) -> None:  # noqa: N802
        call = self._call(e.channel)
        if call is None:
            return
        if e.channel.uniqueid == call.caller_uniqueid:
            await self._ended(call, e.received_at, cause=e.cause, cause_text=e.cause_text)
        else:
            leg = call.agents.get(e.channel.uniqueid)
            if leg is not None:
                leg.ended = True
            await self.emit("leg_ended", call, e.received_at, uniqueid=e.channel.uniqueid,
                            channel=e.channel.name, cause=e.cause,
                            agent=leg.agent_id if leg else None)

    async def _ended(self, call: Call, at: float, *, source: str = "live", cause: int = 0,
                     cause_text: str = "", hangup_by: str | None = None) -> None:
        if call.ended:
            return
        call.ended = True
        if hangup_by is None:
            if call.completed_reason in ("caller", "agent"):
                hangup_by = call.completed_reason
            elif call.answered_by is None:
                hangup_by = "caller" if cause in (16, 0) else "system"
            elif call.completed_reason is None:
                # No AgentComplete: Asterisk sends it without any channel when the caller's is
                # already gone (seen under load), and it is then malformed. Who hung up first
                # tells: the agent's leg ended before the caller's, or not.
                answered = [leg for leg in call.agents.values() if leg.answered_at is not None]
                if answered:
                    hangup_by = "agent" if all(leg.ended for leg in answered) else "caller"
        if call.answered_by is not None and not call.rated:
            # Answered and never rated: the caller hung up first or during the prompt.
            call.rated = True
            await self.emit("rated", call, at, source, rating=NOT_RATED, key="",
                            why=unrated_why(hangup_by))
        if call.abandon is not None and call.answered_by is None:
            # The caller hung up while waiting in the queue (see Call.abandon).
            abandoned_at, queue, hold_time = call.abandon
            call.abandon = None
            await self.emit("abandoned", call, abandoned_at, source, queue=queue,
                            hold_time=hold_time)
        extra = {"resynced": True} if call.resynced else {}
        await self.emit("ended", call, at, source, cause=cause, cause_text=cause_text,
                        hangup_by=hangup_by, **extra)
        with call_scope(call.call_id, call.case):
            log.info("call ended", extra={"source": source, "hangup_by": hangup_by,
                                          "cause": cause, "answered_by": call.answered_by})
        # Keep it a little: the agents' legs hang up just after the caller's.
        call.ended_at = time.monotonic()
        self._purge_ended()

    def _purge_ended(self, keep_s: float = 30.0) -> None:
        now = time.monotonic()
        if now - self._purged_at < 1.0:
            return  # a scan of every call at each call's end, at most once a second
        self._purged_at = now
        cutoff = now - keep_s
        for cid in [cid for cid, c in self.calls.items() if c.ended and c.ended_at < cutoff]:
            del self.calls[cid]

    # -- queue ---------------------------------------------------------------------------

    async def _on_VarSet(self, e: ev.VarSet) -> None:  # noqa: N802
        call = self._call(e.channel)
        if call is None or e.channel.uniqueid != call.caller_uniqueid:
            return
        name = e.variable.lstrip("_")  # inherited variables are reported with their prefix
        if name == "HOTLINE_KEY" and e.value:
            await self.emit("menu", call, e.received_at, key=e.value[:4])
        elif name == "HOTLINE_ROUTE_SOURCE" and e.value == "fallback":
            await self.emit("fallback", call, e.received_at)
        elif name == "HOTLINE_WIDENED" and e.value:
            call.abandon = None  # timed out in the last queue, on to the next
            # The dialplan moved a waiting call on to the next queue (routing overflow).
            await self.emit("widened", call, e.received_at, step=e.value[:64],
                            queue=e.value[:64], previous=call.queue)
        elif name == "HOTLINE_RATED" and not call.rated:
            # 一键评价 ([hotline-rating]): the agent hung up first, the caller pressed a key
            # (or nothing, "key:").
            call.rated = True
            key = e.value.removeprefix("key:")[:4]
            rating = rating_of(key)
            await self.emit("rated", call, e.received_at, rating=rating, key=key,
                            why="" if rating != NOT_RATED else ("no_key" if not key
                                                                else "invalid_key"))
        elif name in CHOICE_VARIABLES and e.value and name not in call.reported:
            # Nobody there: the offer, a callback asked for, a message; or keep my place.
            call.reported.add(name)
            call.abandon = None  # left the queues for the offer (a timeout, not the caller)
            kind = CHOICE_VARIABLES[name]
            await self.emit(kind, call, e.received_at, status=e.value[:64])
        elif name == "HOTLINE_PREFERRED_MISS" and e.value:
            await self.emit("preferred_missed", call, e.received_at, status=e.value[:32])
        elif name == "QUEUE_MAX_PENALTY":
            value = int(e.value) if e.value.isdigit() else None
            if (value is not None and call.max_penalty is not None
                    and value > call.max_penalty and call.answered_by is None):
                # Set by Asterisk's queue rule while the caller waits: lower levels now.
                await self.emit("widened", call, e.received_at, step="level", queue=call.queue,
                                max_penalty=value, previous_max_penalty=call.max_penalty)
            call.max_penalty = value

    async def _on_QueueCallerJoin(self, e: ev.QueueCallerJoin) -> None:  # noqa: N802
        call = self._call(e.channel)
        if call is None:
            return
        call.queue = e.queue
        call.queued_at = time.time()
        call.abandon = None  # the last queue timed out: the caller went on to this one
        await self.emit("queued", call, e.received_at, queue=e.queue, position=e.position)

    async def _on_QueueCallerAbandon(self, e: ev.QueueCallerAbandon) -> None:  # noqa: N802
        call = self._call(e.channel)
        if call is None:
            return
        call.abandon = (e.received_at, e.queue, e.hold_time)

    async def _on_AgentCalled(self, e: ev.AgentCalled) -> None:  # noqa: N802
        call = self._call(e.channel)
        if call is None or e.agent_channel is None:
            return
        agent = e.member_name if e.member_name.isdigit() else agent_of(e.interface)
        leg = AgentLeg(agent or e.member_name, e.agent_channel.uniqueid, e.agent_channel.name,
                       e.received_at)
        call.agents[leg.uniqueid] = leg
        await self.emit("ringing", call, e.received_at, agent=leg.agent_id, queue=e.queue,
                        uniqueid=leg.uniqueid, channel=leg.channel)

    async def _on_AgentRingNoAnswer(self, e: ev.AgentRingNoAnswer) -> None:  # noqa: N802
        call = self._call(e.channel)
        if call is None or e.agent_channel is None:
            return
        leg = call.agents.get(e.agent_channel.uniqueid)
        await self.emit("ring_noanswer", call, e.received_at,
                        agent=leg.agent_id if leg else e.member_name,
                        uniqueid=e.agent_channel.uniqueid, ring_time=e.ring_time)

    async def _on_AgentConnect(self, e: ev.AgentConnect) -> None:  # noqa: N802
        call = self._call(e.channel)
        if call is None or e.agent_channel is None:
            return
        leg = call.agents.get(e.agent_channel.uniqueid)
        agent = leg.agent_id if leg else (agent_of(e.interface) or e.member_name)
        if leg is not None:
            leg.answered_at = e.received_at
        call.answered_by = agent
        call.abandon = None
        await self.emit("answered", call, e.received_at, agent=agent, queue=e.queue,
                        uniqueid=e.agent_channel.uniqueid, channel=e.agent_channel.name,
                        hold_time=e.hold_time, ring_time=e.ring_time)

    async def _on_AgentComplete(self, e: ev.AgentComplete) -> None:  # noqa: N802
        call = self._call(e.channel) if e.channel.linkedid else self._answered_by(
            e.member_name if e.member_name.isdigit() else agent_of(e.interface))
        if call is None:
            return
        call.completed_reason = e.reason
        await self.emit("completed", call, e.received_at, agent=call.answered_by,
                        talk_time=e.talk_time, hold_time=e.hold_time, reason=e.reason)

    def _answered_by(self, agent: str | None) -> Call | None:
        """The latest call this agent answered and has not completed (for an AgentComplete
        that came without any channel of the call)."""
        calls = [c for c in self.calls.values()
                 if agent and c.answered_by == agent and c.completed_reason is None]
        return max(calls, key=lambda c: c.arrived_at, default=None)

    # -- after a (re)connect ---------------------------------------------------------------

    async def _resync(self, e: ev.Connected) -> None:
        """Reconcile with Asterisk's own state after a (re)connect.

        First the resync hook finishes from CEL the calls that ended while we were away and
        backfills, with exact times, the history of every call still up (events may have been
        missed in the gap). Then the snapshot brings our picture of live calls up to date:
        unknown calls are adopted, missed answers and queue joins are applied. All of it as
        facts with natural keys, so nothing already recorded is counted twice.
        """
        snap = e.snapshot
        if snap is None:
            return
        now = snap.taken_at
        by_linked: dict[str, list[ev.ChannelStatus]] = {}
        for cs in snap.channels:
            by_linked.setdefault(cs.channel.linkedid, []).append(cs)
        inbound: dict[str, ev.ChannelStatus] = {}
        for linked, chans in by_linked.items():
            caller = next((c for c in chans if c.channel.uniqueid == linked
                           and trunk_of(c.channel.name) is not None), None)
            if caller is not None:
                inbound[linked] = caller
        # A call we first heard of after the snapshot began may be missing from it: it is
        # new, not gone (its events came in while the lists were being read).
        fresh = {cid for cid, c in self.calls.items() if c.heard_after(snap)}
        gone = {cid for cid, c in self.calls.items()
                if c.linkedid not in inbound and not c.ended and cid not in fresh}
        adopted = {lk for lk in inbound if call_id_of(self.node, lk) not in self.calls}
        if self.on_resync is not None:
            await self.on_resync(e, gone, set(inbound))
        for linked, caller in inbound.items():
            call = await self._arrived(caller.channel, now - caller.duration_s,
                                       source="resync", dialed="")
            if call.ended:
                # Its hang-up reached us before a snapshot that still lists it (Asterisk's
                # channel list can lag its events): the end stands.
                continue
            call.resynced = True
            if caller.application == "Queue" and caller.application_data and not call.queue:
                call.queue = caller.application_data.split(",", 1)[0]
            for cs in by_linked[linked]:
                agent = agent_of(cs.channel.name)
                if not (agent and cs.bridge_id and caller.bridge_id == cs.bridge_id):
                    continue
                leg = call.agents.setdefault(cs.channel.uniqueid, AgentLeg(
                    agent, cs.channel.uniqueid, cs.channel.name, now - cs.duration_s))
                if leg.answered_at is None:
                    leg.answered_at = now - cs.duration_s
                if call.answered_by is None:
                    call.answered_by = agent
                    await self.emit("answered", call, now - cs.duration_s, "resync",
                                    agent=agent, uniqueid=cs.channel.uniqueid,
                                    channel=cs.channel.name, queue=call.queue)
        for entry in snap.entries:
            queued = self.calls.get(call_id_of(self.node, entry.channel.linkedid))
            if queued is not None and not queued.ended and queued.queue != entry.queue:
                queued.queue = entry.queue
                await self.emit("queued", queued, now - entry.wait_s, "resync", queue=entry.queue,
                                position=entry.position)
        for cid in [cid for cid, c in self.calls.items()
                    if c.linkedid not in inbound and cid not in fresh]:
            self.calls.pop(cid, None)
        log.info("calls resynchronised", extra={
            "node": self.node, "live": len(inbound), "adopted": len(adopted),
            "ended_while_away": len(gone)})

    def seen_since(self, snap: ev.Snapshot) -> SeenSince:
        """What the events told of calls that the snapshot may not show yet."""
        seen = SeenSince()
        for cid, c in self.calls.items():
            if c.ended:
                seen.ended.add(cid)
            elif c.answered_by:
                seen.not_waiting.add(cid)
            elif c.queue and 0 < snap.started_at <= c.queued_at:
                seen.joined[cid] = (c.queue, c.queued_at)
            if not c.ended and c.heard_after(snap):
                seen.up.add(cid)
        return seen

    @property
    def active(self) -> int:
        return sum(1 for c in self.calls.values() if not c.ended)
