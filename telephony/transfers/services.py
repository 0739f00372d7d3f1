"""Call control: an agent brings a branch center (分中心) or an emergency line into a call.

The console API calls these coroutines for an agent's active call, named by its call id
(``"node1:node1-1795315633.0"``) or its case number; each returns the ``TransferLeg`` it
started or changed, and raises ``TransferError`` (with a ``code`` for the console) when the
action does not fit the call's state::

    leg = await control.consult(call, agent_id, "tax")    # caller on hold (music); the agent
                                                          # hears ringback, then talks to 12366
    await leg.settled.wait()                              # answered, or back with the caller
    leg = await control.three_way(call, agent_id)         # caller, agent and 12366 together
    leg = await control.leave(call, agent_id)             # the agent drops out; the caller
                                                          # stays with 12366 (a handoff)
    leg = await control.cancel(call, agent_id)            # 12366 hung up; agent has the caller
    leg = await control.emergency(call, agent_id, "police")  # straight to three-way with 110;
                                                          # if 110 does not answer in N seconds
                                                          # the agent still has the caller and
                                                          # leg.outcome / leg.reason say why
    leg = await control.blind(call, agent_id, "power")    # agent released; caller rings 95598
    await control.transfer(call_id=..., agent_id=..., target="110", mode="three_way")
                                                          # the console's one entry point
    control.legs(call_id)                                 # a call's legs, newest last

Every change of a leg is published on Redis (``<prefix>:events``, type ``transfer``, the leg's
``snapshot()``) and recorded on the case as facts (``transfer_dialing``, ``transfer_ringing``,
``transfer_answered``, ``transfer_three_way``, ``transfer_agent_left``, ``transfer_failed``,
``transfer_ended``) keyed by the leg id, which is the destination channel's uniqueid: this
module gives the channel that id when it dials, so every source reporting the leg names it
alike. Design: docs/transfers.md.

How, in Asterisk: the call's channels leave the queue's bridge by AMI Redirect into the
``hotline-xfer`` dialplan context (the caller to music on hold or to the call's ConfBridge, the
agent to ringback or to the ConfBridge); a destination is dialled by AMI Originate over its own
PJSIP trunk and joins the ConfBridge when it answers. A destination that answers a consultation
pulls the agent into the conference in the dialplan itself (ChannelRedirect), without waiting
for this service. Everything else -- a destination that is busy, does not answer or cannot be
reached, a party hanging up, an agent's softphone dying -- is handled here from AMI events, so
the caller is never left alone on hold or in an empty conference.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from common import events as ev
from common.config import PROVINCE_POOL, Config, DestinationConfig
from common.errors import DomainError
from common.facts import CallFact, Sink, agent_of, call_id_of, trunk_of
from common.logs import call_scope
from common.outcomes import (
    ANSWERED,
    CALLER_HUNG_UP,
    CANCELLED,
    FAILED,
    classify_failure,
)
from common.privacy import mask_number
from common.queues import all_queues, split_queue
from common.tasks import cancel_and_wait
from telephony.ami import AmiActionFailed, AmiClient, AmiError

log = logging.getLogger(__name__)

XFER = "hotline-xfer"  # the dialplan context (asterisk-conf/extensions.conf.j2)
XFER_QUEUE = "hotline-xfer-queue"  # a queue's leg: the Local channel's queue half
HANDOVER_CONTEXT = "from-handover"



class TransferError(DomainError):
    """An action that does not fit the call now (the console answers 409). ``code``: no_call,
    not_your_call, unknown_destination, busy (a leg is already in progress), no_leg,
    not_answered, unavailable (Asterisk could not be asked or refused), bad_mode."""


@dataclass(frozen=True)
class Target:
    """Where a leg is dialled: a branch center or an emergency line (configured), a colleague
    (``agent:1002``, on this node or, over the inter-node trunk, on another), or a skill queue
    (``queue:suzhou-lang_en``: the caller keeps its priority and case; another node's city's
    queue is reached over the inter-node trunk and answered there)."""

    id: str
    kind: str  # branch_center | emergency_line | colleague | queue
    number: str
    name: str
    category: str
    channel: str  # what Originate dials
    ring_timeout_s: int
    present_caller: bool = False
    variables: tuple[tuple[str, str], ...] = ()


@dataclass(eq=False)
class TransferLeg:
    """One destination dialled for one call; what the console shows and the case records."""

    leg_id: str  # the destination channel's uniqueid
    call_id: str
    case_number: str | None
    destination: str  # config id ("tax", "police")
    kind: str  # branch_center | emergency_line
    number: str
    name: str
    category: str
    mode: str  # consult | emergency
    initiator: str  # the agent who started it
    ring_timeout_s: int
    # dialing -> ringing -> consulting | three_way -> handed_off -> ended
    state: str = "dialing"
    outcome: str | None = None  # answered | busy | no_answer | failed | caller_hung_up | ...
    reason: str = ""  # why, in words (for the timeline and logs)
    ended_by: str | None = None  # after an answer: destination | caller | agent | system
    agent_left_how: str | None = None  # left | hung_up | lost
    channel: str = ""
    dialed_at: float = 0.0
    ringing_at: float | None = None
    answered_at: float | None = None
    three_way_at: float | None = None
    agent_left_at: float | None = None
    ended_at: float | None = None
    # Set once the dial is decided (answered or not); ``done`` once the leg has ended.
    settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Internal bookkeeping of the dial.
    channel_seen: bool = field(default=False, repr=False)
    dial_status: str = field(default="", repr=False)
    cause: int | None = field(default=None, repr=False)
    originate_reason: int | None = field(default=None, repr=False)
    cancel_requested: bool = field(default=False, repr=False)
    # A queue's leg: the agent its queue connected (from the queue half's AgentConnect).
    answered_by: str | None = None
    target: Target | None = field(default=None, repr=False)

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    def snapshot(self) -> dict[str, Any]:
        """The leg as JSON-able data (Redis events, the console API)."""
        keys = ("leg_id", "call_id", "case_number", "destination", "kind", "number", "name",
                "category", "mode", "initiator", "state", "outcome", "reason", "ended_by",
                "agent_left_how", "dialed_at", "ringing_at", "answered_at", "three_way_at",
                "agent_left_at", "ended_at", "ring_timeout_s", "answered_by")
        return {k: getattr(self, k) for k in keys}


@dataclass(eq=False)
class _Session:
    """A call under transfer control: where its channels are, and its legs."""

    call_id: str
    node: str
    linkedid: str
    caller_uid: str
    agent_id: str
    agent_uid: str
    # queue (Asterisk's own bridge) | hold | conf | requeue | gone
    caller_place: str = "queue"
    # queue | ringback | conf | gone
    agent_place: str = "queue"
    agent_leaving: bool = False
    handed_off: bool = False
    legs: list[TransferLeg] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def conf(self) -> str:
        return f"hl-{self.linkedid}"

    @property
    def active(self) -> TransferLeg | None:
        return self.legs[-1] if self.legs and not self.legs[-1].ended else None

    @property
    def agent_present(self) -> bool:
        """The agent is on the call (and not on the way out)."""
        return self.agent_place in ("queue", "ringback", "conf") and not self.agent_leaving


class AnsweringAgent(Protocol):
    """An agent's leg of a tracked call, as call control reads it."""

    @property
    def agent_id(self) -> str: ...
    @property
    def uniqueid(self) -> str: ...
    @property
    def answered_at(self) -> float | None: ...


class TrackedCall(Protocol):
    """A call the node's call tracker follows (telephony/calls/tracker.py Call)."""

    @property
    def ended(self) -> bool: ...
    @property
    def linkedid(self) -> str: ...
    @property
    def caller_uniqueid(self) -> str: ...
    @property
    def case(self) -> str | None: ...
    @property
    def agents(self) -> Mapping[str, AnsweringAgent]: ...


class TrackedCalls(Protocol):
    """A node's call tracker: the calls it follows, by call id."""

    @property
    def calls(self) -> Mapping[str, TrackedCall]: ...


class CaseLookup(Protocol):
    async def get(self, number: str) -> Any: ...
    async def by_call(self, call_id: str) -> Any: ...


Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _about_call(
    method: Callable[Concatenate[CallControl, str, _P], Awaitable[_T]],
) -> Callable[Concatenate[CallControl, str, _P], Awaitable[_T]]:
    """A console action on a call: its log lines (and its tasks') carry the call and case."""

    @functools.wraps(method)
    async def wrapper(self: CallControl, call: str, /, *args: _P.args,
                      **kwargs: _P.kwargs) -> _T:
        try:
            call_id = await self._resolve(call)
        except TransferError:
            call_id = None  # the action itself says so
        case = call if call.isdigit() else self._case_of(call_id)
        with call_scope(call_id, case):
            return await method(self, call, *args, **kwargs)

    return wrapper


class CallControl:
    """Transfers for every node's calls. ``on_event`` must see each node's AMI events (after
    the call tracker, so cases exist before transfer facts arrive)."""

    def __init__(self, cfg: Config, *, ami_of: Callable[[str], AmiClient],
                 tracker_of: Callable[[str], TrackedCalls], sinks: Sequence[Sink],
                 cases: CaseLookup | None = None, publish: Publish | None = None,
                 settle_grace_s: float = 3.0):
        self.cfg = cfg
        self.ami_of = ami_of
        self.tracker_of = tracker_of
        self.sinks = sinks
        self.cases = cases
        self.publish = publish
        self.settle_grace_s = settle_grace_s
        self.sessions: dict[str, _Session] = {}
        # Finished calls' sessions, kept a while so the console can still read their legs.
        self._closed: dict[str, tuple[_Session, float]] = {}
        self._by_uid: dict[tuple[str, str], tuple[_Session, str]] = {}
        self._hung_up: dict[tuple[str, str], float] = {}
        # Another node's channel of a queue leg -> the leg id (from its HOTLINE_XFER_LEG).
        self._remote_legs: dict[tuple[str, str], str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.handovers = 0

    # -- the console's actions ----------------------------------------------------------------

    @_about_call
    async def consult(self, call: str, agent_id: str, destination: str) -> TransferLeg:
        """Caller on hold (music); the agent hears ringback and talks to the destination once
        it answers. If it does not answer, the agent gets the caller back (``leg.outcome``)."""
        dest = self._destination(destination, await self._node_of(call), agent_id)
        sess = await self._open(call, agent_id)
        async with sess.lock:
            self._check_idle(sess)
            ami = self.ami_of(sess.node)
            leg = await self._new_leg(sess, dest, "consult", agent_id)
            try:
                await ami.setvar(sess.caller_uid, "HOTLINE_CONF", sess.conf)
                await ami.setvar(sess.caller_uid, "HOTLINE_XFER_AGENT", sess.agent_uid)
                for var, value in (("HOTLINE_CONF", sess.conf),
                                   ("HOTLINE_XFER_CALLER", sess.caller_uid),
                                   # the dialplan's own fallback, far beyond any ring timeout
                                   ("HOTLINE_XFER_WAIT", str(leg.ring_timeout_s + 30))):
                    await ami.setvar(sess.agent_uid, var, value)
                await ami.redirect(sess.caller_uid, XFER, "hold", extra_channel=sess.agent_uid,
                                   extra_context=XFER, extra_exten="ringback")
            except AmiError as exc:
                sess.legs.remove(leg)
                raise TransferError("unavailable", f"could not put the caller on hold: {exc}"
                                    ) from exc
            sess.caller_place, sess.agent_place = "hold", "ringback"
            await self._dial(sess, leg)
        return leg

    @_about_call
    async def emergency(self, call: str, agent_id: str, line: str) -> TransferLeg:
        """Straight to three-way: caller and agent stay together in the call's conference while
        the line rings, and it joins them when it answers. If it is busy, fails or does not
        answer in time, caller and agent simply go on together; ``leg.outcome`` says why."""
        dest = self._destination(line, await self._node_of(call), agent_id)
        sess = await self._open(call, agent_id)
        async with sess.lock:
            self._check_idle(sess)
            ami = self.ami_of(sess.node)
            leg = await self._new_leg(sess, dest, "emergency", agent_id)
            try:
                if not (sess.caller_place == sess.agent_place == "conf"):
                    for uid in (sess.caller_uid, sess.agent_uid):
                        await ami.setvar(uid, "HOTLINE_CONF", sess.conf)
                    await ami.redirect(sess.caller_uid, XFER, "conf",
                                       extra_channel=sess.agent_uid, extra_context=XFER,
                                       extra_exten="conf")
            except AmiError as exc:
                sess.legs.remove(leg)
                raise TransferError("unavailable",
                                    f"could not bring the call into a conference: {exc}") from exc
            sess.caller_place = sess.agent_place = "conf"
            await self._dial(sess, leg)
        return leg

    @_about_call
    async def three_way(self, call: str, agent_id: str) -> TransferLeg:
        """The caller joins the agent and the answered destination."""
        sess = await self._open(call, agent_id, existing=True)
        async with sess.lock:
            leg = self._answered_leg(sess)
            if leg.state != "three_way":
                await self._caller_to_conf(sess)
                await self._three_way(sess, leg, time.time())
        return leg

    @_about_call
    async def leave(self, call: str, agent_id: str) -> TransferLeg:
        """The agent drops out; caller and destination stay connected (a handoff, recorded on
        the case). Not before the destination has answered: the caller is never left alone
        with a line that is still ringing."""
        sess = await self._open(call, agent_id, existing=True)
        async with sess.lock:
            leg = self._answered_leg(sess)
            await self._caller_to_conf(sess)
            sess.agent_leaving = True
            await self._agent_left(sess, leg, "left", time.time())
            try:
                await self.ami_of(sess.node).hangup(sess.agent_uid)
            except AmiActionFailed:
                pass  # the softphone hung up at the same moment
            except AmiError as exc:
                raise TransferError("unavailable", f"could not hang up the agent: {exc}"
                                    ) from exc
        return leg

    @_about_call
    async def cancel(self, call: str, agent_id: str, *, wait_s: float = 10.0) -> TransferLeg:
        """Hang up the destination (ringing or answered); the agent is back with the caller."""
        sess = await self._open(call, agent_id, existing=True)
        async with sess.lock:
            leg = sess.active
            if leg is None:
                raise TransferError("no_leg", "no transfer in progress on this call")
            leg.cancel_requested = True
            if leg.channel_seen:
                try:
                    await self.ami_of(sess.node).hangup(leg.leg_id)
                except AmiActionFailed:
                    pass  # already gone; its end is being handled
                except AmiError as exc:
                    raise TransferError("unavailable", f"could not hang up: {exc}") from exc
            # A channel not created yet is hung up as soon as it appears (on_event).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(leg.done.wait(), wait_s)
        return leg

    @_about_call
    async def blind(self, call: str, agent_id: str, destination: str) -> TransferLeg:
        """The agent is released at once; the caller hears ringback and is connected when the
        destination answers. Not answered: the caller goes back to the queue, ahead."""
        dest = self._destination(destination, await self._node_of(call), agent_id)
        sess = await self._open(call, agent_id)
        async with sess.lock:
            self._check_idle(sess)
            ami = self.ami_of(sess.node)
            leg = await self._new_leg(sess, dest, "blind", agent_id)
            try:
                await ami.setvar(sess.caller_uid, "HOTLINE_CONF", sess.conf)
                await ami.setvar(sess.caller_uid, "HOTLINE_XFER_WAIT",
                                 str(leg.ring_timeout_s + 30))
                await ami.redirect(sess.caller_uid, XFER, "blind")
            except AmiError as exc:
                sess.legs.remove(leg)
                raise TransferError("unavailable", f"could not move the caller: {exc}"
                                    ) from exc
            sess.caller_place = "ringback"
            sess.agent_leaving = True
            leg.agent_left_how, leg.agent_left_at = "left", time.time()
            if sess.agent_place == "conf":  # out of the queue's bridge, the agent stays up
                with contextlib.suppress(AmiError):
                    await ami.hangup(sess.agent_uid)
            await self._dial(sess, leg)
        return leg

    async def transfer(self, *, call_id: str, agent_id: str, target: str,
                       mode: str) -> dict[str, Any]:
        """One entry point for the console's transfer button. ``target``: a destination's id
        or number ("tax", "12366", "119"); ``mode``: consult | three_way (joins the answered
        destination, or dials ``target`` straight into a three-way call) | blind | emergency.
        Returns the leg's ``snapshot()``."""
        if mode == "consult":
            leg = await self.consult(call_id, agent_id, target)
        elif mode == "three_way":
            resolved = await self._resolve(call_id)
            sess = self.sessions.get(resolved)
            active = sess.active if sess is not None else None
            if active is not None and target in (active.destination, active.number):
                leg = await self.three_way(call_id, agent_id)
            else:
                leg = await self.emergency(call_id, agent_id, target)
        elif mode == "blind":
            leg = await self.blind(call_id, agent_id, target)
        elif mode == "emergency":
            leg = await self.emergency(call_id, agent_id, target)
        else:
            raise TransferError("bad_mode", f"unknown transfer mode {mode[:20]!r}")
        return leg.snapshot()

    def legs(self, call_id: str) -> list[TransferLeg]:
        """A call's legs, oldest first (also for a while after the call ended)."""
        sess = self.sessions.get(call_id) or self._closed.get(call_id, (None, 0.0))[0]
        return list(sess.legs) if sess else []

    def leg(self, leg_id: str) -> TransferLeg | None:
        for sess in [*self.sessions.values(), *(s for s, _ in self._closed.values())]:
            for leg in sess.legs:
                if leg.leg_id == leg_id:
                    return leg
        return None

    # -- preparing an action --------------------------------------------------------------------

    def _destination(self, dest_id: str, node: str, agent_id: str = "") -> Target:
        """By id ("police") or by number ("110"); a colleague by ``agent:<id>`` (or the id);
        a skill queue by ``queue:<name>``. ``node``: the call's."""
        for d in self.cfg.destinations:
            if dest_id in (d.id, d.number):
                return self._configured(d)
        kind, _, name = dest_id.partition(":")
        if kind == "queue" and name in all_queues(self.cfg):
            return self._queue_target(name, node)
        agent = name if kind == "agent" else dest_id
        if agent in {a.id for a in self.cfg.agents}:
            if agent == agent_id:
                raise TransferError("unknown_destination", "a transfer to yourself")
            return self._colleague(agent, node)
        raise TransferError("unknown_destination",
                            f"no branch center, emergency line, colleague or queue "
                            f"{dest_id[:32]!r}")

    def _configured(self, d: DestinationConfig) -> Target:
        return Target(d.id, d.kind, d.number, d.name, d.category,
                      f"PJSIP/{d.number}@{d.endpoint}", self.cfg.ring_timeout_of(d),
                      present_caller=d.present == "caller")

    def _colleague(self, agent_id: str, node: str) -> Target:
        """Another agent's phone: on this node, or over the inter-node trunk to theirs."""
        a = self.cfg.agent(agent_id)
        home = self.cfg.city(a.city).node
        channel = f"PJSIP/{a.id}" if home == node else f"PJSIP/{a.id}@node-{home}"
        return Target(f"agent:{a.id}", "colleague", a.id, f"{a.id} {a.name}", "", channel,
                      self.cfg.transfers.ring_timeout_s)

    def _queue_target(self, queue: str, node: str) -> Target:
        """A skill queue. Its city's node answers it: this one, or another over the inter-node
        trunk (the queue half dials it there, [hotline-xfer-queue])."""
        pool, skill = split_queue(queue)
        home = node if pool == PROVINCE_POOL else self.cfg.city(pool).node
        city = "全省" if pool == PROVINCE_POOL else self.cfg.city(pool).name
        return Target(f"queue:{queue}", "queue", "", f"{city} · {self.cfg.skills[skill]}"[:64],
                      self.cfg.skills[skill][:64],
                      f"Local/{queue}@{XFER_QUEUE}/n", self.cfg.transfers.ring_timeout_s,
                      variables=(("HOTLINE_XFER_QUEUE", queue),
                                 ("HOTLINE_XFER_PEER", "" if home == node else f"node-{home}")))

    async def _node_of(self, call: str) -> str:
        return (await self._resolve(call)).split(":", 1)[0]

    async def _resolve(self, call: str) -> str:
        """A call id, or a case number (the console knows cases)."""
        if ":" in call:
            return call
        if self.cases is not None and call.isdigit():
            case = await self.cases.get(call)
            if case is not None and case.call_id:
                return str(case.call_id)
        raise TransferError("no_call", f"no call {call[:40]!r}")

    async def _open(self, call: str, agent_id: str, *, existing: bool = False) -> _Session:
        call_id = await self._resolve(call)
        sess = self.sessions.get(call_id)
        if sess is not None and sess.caller_place == "gone":
            raise TransferError("no_call", "the caller has hung up")
        if sess is not None and sess.agent_present:
            if sess.agent_id != agent_id:
                raise TransferError("not_your_call", f"the call is with agent {sess.agent_id}")
            return sess
        if existing and sess is None:
            raise TransferError("no_leg", "no transfer in progress on this call")
        # A new session, or the caller is with a new agent (requeued after the first left).
        node = call_id.split(":", 1)[0]
        try:
            tracked = self.tracker_of(node).calls.get(call_id)
        except KeyError:
            tracked = None
        if tracked is None or tracked.ended:
            raise TransferError("no_call", "no such call in progress")
        legs = sorted((leg for leg in tracked.agents.values()
                       if leg.answered_at is not None
                       and (node, leg.uniqueid) not in self._hung_up),
                      key=lambda leg: leg.answered_at or 0.0)
        if not legs:
            raise TransferError("not_your_call", "no agent is talking with this caller")
        if legs[-1].agent_id != agent_id:
            raise TransferError("not_your_call", f"the call is with agent {legs[-1].agent_id}")
        if sess is None:
            sess = _Session(call_id, node, tracked.linkedid, tracked.caller_uniqueid, agent_id,
                            legs[-1].uniqueid)
            self.sessions[call_id] = sess
            self._index(sess, sess.caller_uid, "caller")
        elif legs[-1].uniqueid == sess.agent_uid:
            raise TransferError("not_your_call", "you have left this call")
        else:
            sess.agent_id, sess.agent_uid = agent_id, legs[-1].uniqueid
            sess.agent_place, sess.caller_place = "queue", "queue"
            sess.agent_leaving = sess.handed_off = False
        self._index(sess, sess.agent_uid, "agent")
        return sess

    def _index(self, sess: _Session, uid: str, role: str) -> None:
        self._by_uid[(sess.node, uid)] = (sess, role)

    def _check_idle(self, sess: _Session) -> None:
        if sess.active is not None:
            raise TransferError("busy", f"a transfer to {sess.active.number} is in progress")
        if sess.caller_place not in ("queue", "conf") or sess.agent_place not in ("queue",
                                                                                   "conf"):
            raise TransferError("busy", "the call is being moved; try again")

    def _answered_leg(self, sess: _Session) -> TransferLeg:
        leg = sess.active
        if leg is None:
            raise TransferError("no_leg", "no transfer in progress on this call")
        if leg.answered_at is None:
            raise TransferError("not_answered", f"{leg.number} has not answered yet")
        return leg

    async def _new_leg(self, sess: _Session, dest: Target, mode: str,
                       agent_id: str) -> TransferLeg:
        # The router left the case number on the caller's channel; the database otherwise.
        number: str | None = None
        with contextlib.suppress(AmiError):
            number = await self.ami_of(sess.node).getvar(sess.caller_uid, "HOTLINE_CASE")
        if not number and self.cases is not None:
            case = await self.cases.by_call(sess.call_id)
            number = case.number if case is not None else None
        leg = TransferLeg(
            leg_id=f"{sess.linkedid}-x{len(sess.legs) + 1}{secrets.token_hex(2)}",
            call_id=sess.call_id, case_number=number, destination=dest.id, kind=dest.kind,
            number=dest.number, name=dest.name, category=dest.category, mode=mode,
            initiator=agent_id, ring_timeout_s=dest.ring_timeout_s, dialed_at=time.time(),
            target=dest)
        sess.legs.append(leg)
        self._index(sess, leg.leg_id, "leg")
        if dest.kind == "queue":
            self._index(sess, f"{leg.leg_id}q", "queue")  # the Local channel's queue half
        return leg

    async def _dial(self, sess: _Session, leg: TransferLeg) -> None:
        """Originate the destination's channel with the leg id as its uniqueid."""
        dest = leg.target
        assert dest is not None
        ami = self.ami_of(sess.node)
        presented = self.cfg.transfers.hotline_number
        caller_id = f'"{presented}" <{presented}>'
        variables = {"HOTLINE_CONF": sess.conf, "HOTLINE_XFER_MODE": leg.mode,
                     "HOTLINE_XFER_PULL": {"consult": sess.agent_uid,
                                           "blind": sess.caller_uid}.get(leg.mode, ""),
                     "HOTLINE_XFER_LEG": leg.leg_id,
                     "HOTLINE_CASE": leg.case_number or "", **dict(dest.variables)}
        try:
            if dest.present_caller:
                number = await ami.getvar(sess.caller_uid, "CALLERID(num)")
                if number:
                    presented, caller_id = number, f"<{number}>"
            if dest.kind == "colleague":
                # The colleague's phone shows who transfers (the console has the case).
                presented = caller_id = f"<{leg.initiator}>"
            if dest.kind == "queue":
                # The caller keeps the priority the router gave it (or a hand-over's).
                variables["HOTLINE_XFER_PRIO"] = await ami.getvar(sess.caller_uid,
                                                                  "QUEUE_PRIO") or "0"
                variables["HOTLINE_XFER_LINKEDID"] = sess.linkedid
            await ami.originate(
                channel=dest.channel, context=XFER, exten="answered",
                timeout_s=leg.ring_timeout_s, caller_id=caller_id, channel_id=leg.leg_id,
                other_channel_id=f"{leg.leg_id}q" if dest.kind == "queue" else None,
                variables=variables)
        except AmiError as exc:
            await self._dialing(sess, leg)
            await self._failed(sess, leg, FAILED, f"Asterisk did not dial: {exc}", None)
            return
        # Recorded once the line is being dialled (an emergency should not wait for the
        # database); the lock held by the action keeps it ahead of the leg's next facts.
        await self._dialing(sess, leg)
        log.info("transfer dialling", extra={
            "call_id": sess.call_id, "leg": leg.leg_id, "destination": leg.destination,
            "mode": leg.mode, "agent": leg.initiator, "presented": mask_number(presented)})
        self._spawn(self._watchdog(sess, leg, leg.ring_timeout_s + 15.0))
        await self._announce(leg)

    async def _dialing(self, sess: _Session, leg: TransferLeg) -> None:
        await self._fact(sess, "transfer_dialing", leg, leg.dialed_at, destination=leg.destination,
                         kind=leg.kind, number=leg.number, name=leg.name,
                         category=leg.category, mode=leg.mode, initiator=leg.initiator,
                         ring_timeout_s=leg.ring_timeout_s)

    # -- AMI events -----------------------------------------------------------------------------

    async def on_event(self, event: ev.DomainEvent) -> None:
        call_id = self._call_of(event)
        if call_id is None:  # nearly every event: no scope to set up
            await self._guarded(event)
            return
        with call_scope(call_id, self._case_of(call_id)):
            await self._guarded(event)

    async def _guarded(self, event: ev.DomainEvent) -> None:
        try:
            await self._on_event(event)
        except Exception:
            log.exception("call control failed on an event",
                          extra={"event": type(event).__name__})

    def _call_of(self, event: ev.DomainEvent) -> str | None:
        """The call under transfer control an event is about, if any (for the logs)."""
        uid = ""
        if isinstance(event, ev.Newchannel | ev.Hangup):
            uid = event.channel.uniqueid
            if event.channel.context == HANDOVER_CONTEXT:
                return call_id_of(event.node, event.channel.linkedid)
        elif isinstance(event, ev.DialEnd):
            uid = event.dest.uniqueid
        elif isinstance(event, ev.OtherEvent):
            uid = str(event.fields.get("Uniqueid", ""))
        hit = self._by_uid.get((event.node, uid)) if uid else None
        return hit[0].call_id if hit else None

    def _case_of(self, call_id: str | None) -> str | None:
        if not call_id:
            return None
        try:
            call = self.tracker_of(call_id.split(":", 1)[0]).calls.get(call_id)
        except KeyError:
            return None
        return call.case if call is not None else None

    async def _on_event(self, event: ev.DomainEvent) -> None:
        if isinstance(event, ev.Newchannel):
            await self._on_newchannel(event)
        elif isinstance(event, ev.Hangup):
            await self._on_hangup(event.node, event.channel.uniqueid, event.cause,
                                  event.received_at)
        elif isinstance(event, ev.DialEnd):
            hit = self._by_uid.get((event.node, event.dest.uniqueid))
            if hit and hit[1] == "leg":
                leg = self._leg_of(hit[0], event.dest.uniqueid)
                if leg is not None:
                    leg.dial_status = event.status
                    if event.status == "ANSWER":
                        await self._answered(hit[0], leg, event.received_at)
        elif isinstance(event, ev.OtherEvent):
            if event.name == "OriginateResponse":
                await self._on_originate_response(event)
            elif event.name in ("ConfbridgeJoin", "ConfbridgeLeave"):
                await self._on_conference(event)
        elif isinstance(event, ev.AgentConnect):
            await self._queue_answered(event)
        elif isinstance(event, ev.VarSet) and event.variable == "HOTLINE_XFER_LEG" \
                and event.channel.context in ("from-node", "from-node-secure"):
            # Another node's side of a queue leg (the header the queue half sent): its
            # AgentConnect says who answered there.
            leg = self.leg(event.value)
            if leg is not None and leg.kind == "queue":
                sess = self.sessions.get(leg.call_id)
                if sess is not None:
                    key = (event.node, event.channel.uniqueid)  # on the other node
                    self._by_uid[key] = (sess, "queue")
                    self._remote_legs[key] = leg.leg_id
        elif isinstance(event, ev.Connected):
            await self._reconcile(event)

    async def _queue_answered(self, e: ev.AgentConnect) -> None:
        """A queue leg's queue connected an agent: the case's leg names who took the call."""
        uid = e.channel.uniqueid
        hit = self._by_uid.get((e.node, uid))
        if hit is None or hit[1] != "queue":
            return
        sess = hit[0]
        leg_id = self._remote_legs.get((e.node, uid)) or uid.removesuffix("q")
        leg = self._leg_of(sess, leg_id)
        if leg is None or leg.answered_by:
            return
        leg.answered_by = e.member_name if e.member_name.isdigit() else \
            (agent_of(e.interface) or e.member_name)
        await self._fact(sess, "transfer_taken", leg, e.received_at, agent=leg.answered_by,
                         queue=e.queue, node=e.node)
        log.info("transfer leg taken by an agent", extra={
            "call_id": sess.call_id, "leg": leg.leg_id, "agent": leg.answered_by,
            "queue": e.queue, "node": e.node})
        await self._announce(leg)

    def _leg_of(self, sess: _Session, uid: str) -> TransferLeg | None:
        return next((leg for leg in sess.legs if leg.leg_id == uid), None)

    async def _on_newchannel(self, e: ev.Newchannel) -> None:
        ch = e.channel
        if ch.context == HANDOVER_CONTEXT and ch.uniqueid == ch.linkedid:
            await self._handover(e.node, ch, e.received_at)
            return
        hit = self._by_uid.get((e.node, ch.uniqueid))
        if hit is None or hit[1] != "leg":
            return
        sess, _ = hit
        leg = self._leg_of(sess, ch.uniqueid)
        if leg is None:
            return
        leg.channel_seen = True
        leg.channel = ch.name
        # The lock: the action that dialled records the leg first.
        async with sess.lock:
            if leg.cancel_requested or sess.caller_place == "gone":
                with contextlib.suppress(AmiError):
                    await self.ami_of(sess.node).hangup(leg.leg_id)
                return
            if leg.state == "dialing":
                leg.state = "ringing"
                leg.ringing_at = e.received_at
                await self._fact(sess, "transfer_ringing", leg, e.received_at, channel=ch.name)
                await self._announce(leg)

    async def _on_originate_response(self, e: ev.OtherEvent) -> None:
        uid = str(e.fields.get("Uniqueid", ""))
        hit = self._by_uid.get((e.node, uid))
        if hit is None or hit[1] != "leg":
            return
        sess, _ = hit
        leg = self._leg_of(sess, uid)
        if leg is None:
            return
        async with sess.lock:
            if e.fields.get("Response") == "Success":
                await self._answered(sess, leg, e.received_at, locked=True)
                return
            try:
                leg.originate_reason = int(str(e.fields.get("Reason", "0")))
            except ValueError:
                leg.originate_reason = 0
            if leg.channel_seen and leg.cause is None:
                # The channel's hangup (with its cause: busy, declined...) may come after this
                # answer; it settles the leg then.
                self._spawn(self._settle_later(sess, leg, self.settle_grace_s))
                return
            await self._settle_unanswered(sess, leg, e.received_at)

    async def _on_conference(self, e: ev.OtherEvent) -> None:
        uid = str(e.fields.get("Uniqueid", ""))
        hit = self._by_uid.get((e.node, uid))
        if hit is None or e.fields.get("Conference") != hit[0].conf:
            return
        sess, role = hit
        joined = e.name == "ConfbridgeJoin"
        if role == "caller" and joined and sess.caller_place != "gone":
            sess.caller_place = "conf"
        elif role == "agent" and joined and sess.agent_present:
            sess.agent_place = "conf"
        elif role == "leg" and joined:
            leg = self._leg_of(sess, uid)
            if leg is not None:
                await self._answered(sess, leg, e.received_at)

    async def _on_hangup(self, node: str, uid: str, cause: int, at: float) -> None:
        self._forget_hung_up()
        self._hung_up[(node, uid)] = time.monotonic()
        self._remote_legs.pop((node, uid), None)
        hit = self._by_uid.pop((node, uid), None)
        if hit is None:
            return
        sess, role = hit
        async with sess.lock:
            if role == "caller":
                await self._caller_gone(sess, at)
            elif role == "agent" and uid == sess.agent_uid:
                await self._agent_gone(sess, cause, at)
            elif role == "leg":
                leg = self._leg_of(sess, uid)
                if leg is not None:
                    leg.cause = cause
                    await self._leg_hung_up(sess, leg, cause, at)
        self._maybe_close(sess)

    async def _handover(self, node: str, channel: ev.Channel, at: float) -> None:
        """A call an emergency line or a branch center hands over to 12345: record the
        referring line on the case (the dialplan gives it its queue priority)."""
        trunk = trunk_of(channel.name) or ""
        conf = next((t for t in self.cfg.trunks if t.id == trunk), None)
        referring = (conf.referring_line if conf else None) or trunk
        self.handovers += 1
        fact = CallFact("handover", call_id_of(node, channel.linkedid), node, at,
                        {"trunk": trunk, "referring_line": referring,
                         "priority": self.cfg.routing.priority_handover})
        await self._emit(fact)
        log.info("call handed over to the hotline", extra={
            "call_id": fact.call_id, "referring_line": referring, "trunk": trunk})

    # -- what happens to a leg ------------------------------------------------------------------

    async def _answered(self, sess: _Session, leg: TransferLeg, at: float, *,
                        locked: bool = False) -> None:
        if leg.answered_at is not None or leg.ended:
            return
        if not locked:
            async with sess.lock:
                await self._answered(sess, leg, at, locked=True)
            return
        leg.answered_at = at
        leg.outcome = ANSWERED
        leg.channel_seen = True
        await self._fact(sess, "transfer_answered", leg, at, channel=leg.channel)
        if leg.cancel_requested:
            # Answered just as it was given up (cancelled, the agent gone): end it.
            with contextlib.suppress(AmiError):
                await self.ami_of(sess.node).hangup(leg.leg_id)
        if leg.mode in ("emergency", "blind"):
            if leg.mode == "emergency":
                await self._three_way(sess, leg, at)
            if not sess.agent_present and leg.agent_left_how is not None:
                await self._agent_left(sess, leg, leg.agent_left_how, leg.agent_left_at or at)
            if leg.mode == "blind":
                sess.caller_place = "conf"  # the dialplan brought the caller in
        else:
            leg.state = "consulting"
            # The dialplan moved the agent into the conference when the destination answered.
            if sess.agent_place == "ringback":
                sess.agent_place = "conf"
        leg.settled.set()
        log.info("transfer answered", extra={"call_id": sess.call_id, "leg": leg.leg_id,
                                             "destination": leg.destination})
        await self._announce(leg)

    async def _three_way(self, sess: _Session, leg: TransferLeg, at: float) -> None:
        leg.state = "three_way"
        leg.three_way_at = at
        await self._fact(sess, "transfer_three_way", leg, at)
        await self._announce(leg)

    async def _settle_unanswered(self, sess: _Session, leg: TransferLeg, at: float) -> None:
        """The destination did not answer: say why and give the agent the caller back."""
        if leg.answered_at is not None or leg.ended:
            return
        if sess.caller_place == "gone":
            outcome, reason = CALLER_HUNG_UP, "the caller hung up before the destination answered"
        elif leg.cancel_requested:
            outcome, reason = CANCELLED, ("the agent left before the destination answered"
                                          if not sess.agent_present else "cancelled by the agent")
        else:
            outcome, reason = classify_failure(
                channel_seen=leg.channel_seen, dial_status=leg.dial_status, cause=leg.cause,
                originate_reason=leg.originate_reason, timeout_s=leg.ring_timeout_s)
        await self._failed(sess, leg, outcome, reason, leg.cause, at)

    async def _failed(self, sess: _Session, leg: TransferLeg, outcome: str, reason: str,
                      cause: int | None, at: float | None = None) -> None:
        at = at or time.time()
        leg.outcome, leg.reason, leg.state, leg.ended_at = outcome, reason, "ended", at
        await self._fact(sess, "transfer_failed", leg, at, outcome=outcome, reason=reason,
                         cause=cause)
        if leg.agent_left_how is not None:
            await self._fact(sess, "transfer_agent_left", leg, leg.agent_left_at or at,
                             agent=sess.agent_id, how=leg.agent_left_how, handed_off=False)
        log.info("transfer not answered", extra={
            "call_id": sess.call_id, "leg": leg.leg_id, "destination": leg.destination,
            "outcome": outcome, "reason": reason})
        if leg.channel_seen and cause is None:
            with contextlib.suppress(AmiError):
                await self.ami_of(sess.node).hangup(leg.leg_id)
        await self._reunite(sess)
        leg.settled.set()
        leg.done.set()
        await self._announce(leg)

    async def _leg_hung_up(self, sess: _Session, leg: TransferLeg, cause: int,
                           at: float) -> None:
        if leg.ended:
            return
        if leg.answered_at is None:
            if leg.originate_reason is not None or leg.cancel_requested:
                await self._settle_unanswered(sess, leg, at)
            else:
                # The OriginateResponse may still say more; should it be lost, decide anyway.
                self._spawn(self._settle_later(sess, leg, self.settle_grace_s))
            return
        if sess.caller_place == "gone":
            ended_by = "caller"
        elif leg.cancel_requested:
            ended_by = "agent"
        else:
            ended_by = "destination"
        leg.state, leg.ended_at, leg.ended_by = "ended", at, ended_by
        await self._fact(sess, "transfer_ended", leg, at, outcome=leg.outcome,
                         ended_by=ended_by, cause=cause)
        log.info("transfer leg ended", extra={"call_id": sess.call_id, "leg": leg.leg_id,
                                              "ended_by": ended_by})
        if sess.caller_place != "gone":
            if sess.agent_present:
                await self._reunite(sess)
            elif sess.handed_off:
                # Destination and caller finished after the agent left: the call is over.
                await self._hangup_caller(sess, "the destination ended the handed-off call")
            else:
                await self._requeue(sess, "the destination left before anyone took the call")
        leg.done.set()
        await self._announce(leg)

    async def _settle_later(self, sess: _Session, leg: TransferLeg, delay: float) -> None:
        await asyncio.sleep(delay)
        async with sess.lock:
            await self._settle_unanswered(sess, leg, time.time())
        self._maybe_close(sess)

    async def _watchdog(self, sess: _Session, leg: TransferLeg, deadline_s: float) -> None:
        """Should Asterisk's answer about a dial be lost, decide anyway (nothing waits
        forever)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(leg.settled.wait(), deadline_s)
            return
        async with sess.lock:
            if leg.answered_at is None and not leg.ended:
                log.warning("no word from Asterisk on a transfer dial; giving it up",
                            extra={"call_id": sess.call_id, "leg": leg.leg_id})
                if leg.channel_seen:
                    with contextlib.suppress(AmiError):
                        await self.ami_of(sess.node).hangup(leg.leg_id)
                await self._failed(sess, leg, FAILED, "Asterisk never said how the dial ended",
                                   leg.cause)
        self._maybe_close(sess)

    # -- what happens to the caller and the agent -------------------------------------------------

    async def _caller_gone(self, sess: _Session, at: float) -> None:
        sess.caller_place = "gone"
        ami = self.ami_of(sess.node)
        leg = sess.active
        if leg is not None and leg.answered_at is None:
            await self._failed(sess, leg, CALLER_HUNG_UP,
                               "the caller hung up before the destination answered", None, at)
        elif leg is not None:
            with contextlib.suppress(AmiError):
                await ami.hangup(leg.leg_id)  # its Hangup records ended_by=caller
        if sess.agent_place in ("ringback", "conf"):
            # Out of the queue's bridge Asterisk would not end the agent's call by itself.
            with contextlib.suppress(AmiError):
                await ami.hangup(sess.agent_uid)

    async def _agent_gone(self, sess: _Session, cause: int, at: float) -> None:
        how = "left" if sess.agent_leaving else ("hung_up" if cause in (16, 0) else "lost")
        was = sess.agent_place
        sess.agent_place = "gone"
        leg = sess.active
        log.info("agent left a transferred call", extra={
            "call_id": sess.call_id, "agent": sess.agent_id, "how": how, "cause": cause})
        if sess.caller_place == "gone" or was == "queue":
            return
        if leg is not None and leg.answered_at is not None:
            # Consulting or three-way: the caller stays with the destination.
            try:
                await self._caller_to_conf(sess)
            except TransferError as exc:
                log.warning("caller not taken off hold", extra={
                    "call_id": sess.call_id, "error": exc.message})
            if leg.agent_left_how is None:
                await self._agent_left(sess, leg, how, at)
            return
        if leg is not None:
            leg.agent_left_how, leg.agent_left_at = how, at
            if leg.mode == "consult":
                # Nobody has the caller: stop dialling, and put the caller back in the queue.
                leg.cancel_requested = True
                if leg.channel_seen:
                    with contextlib.suppress(AmiError):
                        await self.ami_of(sess.node).hangup(leg.leg_id)
                await self._requeue(sess, "the agent left before the destination answered")
            # Emergency: the caller stays in the conference and the line goes on ringing;
            # whether the caller was handed off is known when it answers, or not.
            return
        # No transfer in progress: the agent ended the call, or the softphone died.
        if how == "lost":
            await self._requeue(sess, "the agent's softphone was lost")
        else:
            await self._hangup_caller(sess, "the agent ended the call")

    async def _agent_left(self, sess: _Session, leg: TransferLeg, how: str, at: float) -> None:
        leg.agent_left_how, leg.agent_left_at = how, at
        leg.state = "handed_off"
        sess.handed_off = True
        await self._fact(sess, "transfer_agent_left", leg, at, agent=sess.agent_id, how=how,
                         handed_off=True)
        log.info("call handed off", extra={"call_id": sess.call_id, "leg": leg.leg_id,
                                           "destination": leg.destination, "how": how})
        await self._announce(leg)

    async def _reunite(self, sess: _Session) -> None:
        """Agent and caller together again in the call's conference (after a consultation
        that failed or ended). Without the agent the caller goes back to the queue."""
        if sess.caller_place == "gone":
            return
        if not sess.agent_present:
            await self._requeue(sess, "the agent left during the transfer")
            return
        ami = self.ami_of(sess.node)
        try:
            if sess.caller_place != "conf" and sess.agent_place != "conf":
                await ami.redirect(sess.caller_uid, XFER, "conf", extra_channel=sess.agent_uid,
                                   extra_context=XFER, extra_exten="conf")
            elif sess.caller_place != "conf":
                await ami.redirect(sess.caller_uid, XFER, "conf")
            elif sess.agent_place != "conf":
                await ami.redirect(sess.agent_uid, XFER, "conf")
        except AmiError as exc:
            log.warning("could not bring agent and caller back together", extra={
                "call_id": sess.call_id, "error": str(exc)})
            return
        sess.caller_place = sess.agent_place = "conf"

    async def _caller_to_conf(self, sess: _Session) -> None:
        if sess.caller_place == "hold":
            try:
                await self.ami_of(sess.node).redirect(sess.caller_uid, XFER, "conf")
            except AmiError as exc:
                raise TransferError("unavailable",
                                    f"could not take the caller off hold: {exc}") from exc
            sess.caller_place = "conf"

    async def _requeue(self, sess: _Session, reason: str) -> None:
        """The caller goes back to the queue, ahead of callers waiting normally."""
        if sess.caller_place in ("gone", "requeue"):
            return
        if await self._requeue_channel(sess.node, sess.call_id, sess.caller_uid, sess.agent_uid,
                                       reason):
            sess.caller_place = "requeue"

    async def _requeue_channel(self, node: str, call_id: str, caller_uid: str, key: str,
                               reason: str) -> bool:
        """``key``: what the requeue answers (the agent's channel that left, the conference
        the caller was found alone in), so the fact is recorded once."""
        ami = self.ami_of(node)
        try:
            await ami.setvar(caller_uid, "HOTLINE_REQUEUE_PRIO",
                             str(self.cfg.routing.priority_handover))
            await ami.redirect(caller_uid, XFER, "requeue")
        except AmiError as exc:
            log.warning("could not put the caller back in the queue", extra={
                "call_id": call_id, "error": str(exc)})
            return False
        await self._emit(CallFact("requeued", call_id, node, time.time(),
                                  {"uniqueid": key, "reason": reason}))
        log.warning("caller back in the queue after a transfer", extra={
            "call_id": call_id, "reason": reason})
        return True

    async def _hangup_caller(self, sess: _Session, reason: str) -> None:
        log.info("ending a transferred call", extra={"call_id": sess.call_id, "reason": reason})
        with contextlib.suppress(AmiError):
            await self.ami_of(sess.node).hangup(sess.caller_uid)

    # -- after a reconnect ------------------------------------------------------------------------

    async def _reconcile(self, e: ev.Connected) -> None:
        """Events lost while AMI was away: whatever vanished is handled as hung up now; a
        destination found in a bridge has answered."""
        if e.snapshot is None:
            return
        live = {c.channel.uniqueid: c for c in e.snapshot.channels}
        handover_trunks = {t.id for t in self.cfg.trunks if t.kind == "handover"}
        for c in e.snapshot.channels:
            ch = c.channel
            if ch.uniqueid == ch.linkedid and trunk_of(ch.name) in handover_trunks:
                await self._handover(e.node, ch, e.snapshot.taken_at)  # once per case
        for sess in [s for s in self.sessions.values() if s.node == e.node]:
            for (node, uid), (s, _role) in list(self._by_uid.items()):
                if s is sess and node == e.node and uid not in live:
                    await self._on_hangup(node, uid, 0, e.snapshot.taken_at)
            leg = sess.active
            if leg is not None and leg.answered_at is None and leg.leg_id in live:
                leg.channel_seen = True
                if live[leg.leg_id].bridge_id:
                    await self._answered(sess, leg, e.snapshot.taken_at)
        # A caller alone in a call's conference (the others left while the service was away,
        # or before it restarted) goes back to the queue rather than wait in silence.
        rooms: dict[str, list[ev.ChannelStatus]] = {}
        for c in e.snapshot.channels:
            if c.application == "ConfBridge" and c.application_data.startswith("hl-") and \
                    c.bridge_id:
                rooms.setdefault(c.bridge_id, []).append(c)
        for bridge_id, members in rooms.items():
            ch = members[0].channel
            if len(members) != 1 or trunk_of(ch.name) is None:
                continue
            owner = self.sessions.get(call_id_of(e.node, ch.linkedid))
            if owner is not None and (owner.active is not None or owner.agent_present):
                continue
            await self._requeue_channel(e.node, call_id_of(e.node, ch.linkedid), ch.uniqueid,
                                        bridge_id, "alone in its conference after an outage")
            if sess is not None:
                sess.caller_place = "requeue"

    # -- plumbing ---------------------------------------------------------------------------------

    async def _fact(self, sess: _Session, fact_kind: str, leg: TransferLeg, at: float,
                    **data: Any) -> None:
        await self._emit(CallFact(fact_kind, sess.call_id, sess.node, at,
                                  {"leg": leg.leg_id, **data}))

    async def _emit(self, fact: CallFact) -> None:
        for sink in self.sinks:
            try:
                await sink(fact)
            except Exception:
                log.exception("transfer fact sink failed",
                              extra={"call_id": fact.call_id, "fact": fact.kind})

    async def _announce(self, leg: TransferLeg) -> None:
        if self.publish is not None:
            try:
                await self.publish("transfer", leg.snapshot())
            except Exception as exc:
                log.warning("transfer state not published", extra={"error": str(exc)})

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget_hung_up(self, keep_s: float = 120.0) -> None:
        # Oldest first (insertion order): amortised O(1) per hang-up, where scanning them all
        # on every Hangup cost a busy node more than any other part of its event handling.
        cutoff = time.monotonic() - keep_s
        hung = self._hung_up
        while hung:
            oldest = next(iter(hung))
            if hung[oldest] >= cutoff:
                break
            del hung[oldest]

    def _maybe_close(self, sess: _Session) -> None:
        """Forget a session once its caller is gone and no leg is open."""
        if sess.caller_place == "gone" and sess.active is None:
            if self.sessions.get(sess.call_id) is sess:
                del self.sessions[sess.call_id]
                now = time.monotonic()
                self._closed[sess.call_id] = (sess, now)
                for cid in [c for c, (_s, t) in self._closed.items() if t < now - 300]:
                    del self._closed[cid]
            for key in [k for k, (s, _r) in self._by_uid.items() if s is sess]:
                del self._by_uid[key]

    async def start(self) -> None:
        """Nothing runs before the first console action (sessions begin with them)."""

    async def stop(self) -> None:
        await cancel_and_wait(list(self._tasks), what="callcontrol")

