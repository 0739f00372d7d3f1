"""One node's live state: kept from its AMI events, rebuilt from every snapshot, and after
Redis lost it, the calls still up put back from what the call tracker and their cases know."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from common import events as ev
from common.facts import CallFact, SeenSince
from telephony.ami import AmiError
from telephony.live.state import LiveState

log = logging.getLogger(__name__)


class AnsweredLeg(Protocol):
    @property
    def answered_at(self) -> float | None: ...


class UpCall(Protocol):
    """A call the node's tracker follows (telephony/calls/tracker.py Call)."""

    @property
    def call_id(self) -> str: ...
    @property
    def ended(self) -> bool: ...
    @property
    def arrived_at(self) -> float: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def answered_by(self) -> str | None: ...
    @property
    def agents(self) -> Mapping[str, AnsweredLeg]: ...


class NodeCalls(Protocol):
    """The node's call tracker: its calls, and what its events say beyond a snapshot."""

    @property
    def calls(self) -> Mapping[str, UpCall]: ...
    def seen_since(self, snap: ev.Snapshot) -> SeenSince: ...


class CaseSummary(Protocol):
    """What the live state shows of a call's case (cases/store.py CallSummary)."""

    @property
    def number(self) -> str: ...
    @property
    def caller_masked(self) -> str | None: ...
    @property
    def dialed_number(self) -> str | None: ...
    @property
    def trunk(self) -> str | None: ...
    @property
    def route_queue(self) -> str | None: ...
    @property
    def city(self) -> str | None: ...
    @property
    def priority(self) -> int: ...


class CallSummaries(Protocol):
    """The case store, as the replay reads it."""

    async def calls_summary(self, call_ids: Sequence[str]) -> Mapping[str, CaseSummary]: ...


class Resync(Protocol):
    """The node's AMI client: a fresh snapshot into its ordered event stream."""

    async def request_resync(self) -> bool: ...


class NodeLive:
    """The live-state handler of one node's AMI events (after the call tracker, whose view of
    the snapshot corrects it). ``resync()`` is what the Redis guard asks after an outage."""

    def __init__(self, node: str, live: LiveState, calls: NodeCalls, cases: CallSummaries,
                 ami: Resync):
        self.node = node
        self.live = live
        self.calls = calls
        self.cases = cases
        self.ami = ami
        # Redis lost what it held about this node: after the next resync, put the live calls
        # back from the tracker, the cases and the snapshot.
        self.lost = False

    async def on_event(self, event: ev.DomainEvent) -> None:
        if not (isinstance(event, ev.Connected) and event.snapshot is not None):
            await self.live.on_event(event)
            return
        # The tracker has handled this snapshot already (calls come before live).
        seen = self.calls.seen_since(event.snapshot)
        await self.live.rebuild(self.node, event.snapshot, seen)
        if self.lost:
            await self.replay(event.snapshot, seen)
            self.lost = False

    async def resync(self) -> None:
        self.lost = True
        try:
            await self.ami.request_resync()
        except AmiError as exc:  # not connected: the next connection resyncs anyway
            log.warning("live state resync deferred", extra={"node": self.node,
                                                             "error": str(exc)})

    async def replay(self, snap: ev.Snapshot, seen: SeenSince) -> None:
        """After Redis lost the live state: the calls still up, as the tracker, their cases
        and Asterisk's snapshot know them (the snapshot has just rebuilt agents and queues).
        Only the live state hears these facts; the cases have them already."""
        calls = [c for c in self.calls.calls.values() if not c.ended]
        if not calls:
            return
        cases: Mapping[str, CaseSummary] = {}
        with contextlib.suppress(Exception):  # without the database: fewer details, same calls
            cases = await self.cases.calls_summary([c.call_id for c in calls])
        waiting = seen.waiting(self.node, snap)
        node = self.node
        for call in calls:
            case = cases.get(call.call_id)
            facts = [CallFact("arrived", call.call_id, node, call.arrived_at, {
                "caller": case.caller_masked if case else "",
                "dialed": case.dialed_number if case else "",
                "trunk": case.trunk if case else ""}, source="resync")]
            if case is not None and case.route_queue:
                facts.append(CallFact("routed", call.call_id, node, call.arrived_at, {
                    "queue": case.route_queue, "city": case.city, "priority": case.priority,
                    "case": case.number}, source="resync"))
            if call.call_id in waiting:
                queue, since = waiting[call.call_id]
                facts.append(CallFact("queued", call.call_id, node, since, {"queue": queue},
                                      source="resync"))
            if call.answered_by:
                leg = next((g for g in call.agents.values() if g.answered_at), None)
                facts.append(CallFact("answered", call.call_id, node,
                                      leg.answered_at if leg and leg.answered_at
                                      else snap.taken_at,
                                      {"agent": call.answered_by, "queue": call.queue or ""},
                                      source="resync"))
            for fact in facts:
                await self.live.on_fact(fact)
        log.info("live calls put back", extra={"node": node, "calls": len(calls)})
