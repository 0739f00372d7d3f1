"""The router: which queue and priority a call gets, and why.

The dialplan asks over FastAGI after the one-key menu. The decision is a pure function of the
call, what the look-ups found about the caller and the configuration (``decide``); the endpoint
around it does the look-ups, answers with one channel variable and records the decision and its
reasons on the case. Anything that goes wrong leaves the variable unset, and the dialplan takes
its fallback queue: a call is never dropped because of the router.

``HOTLINE_ROUTE`` holds ``|``-separated fields the dialplan cuts apart::

    1 queue  2 priority  3 case number  4 QUEUE_MAX_PENALTY for the first queue  5 queue rule
    6 seconds in the first queue  7 next queue  8 seconds there  9 last queue
    10 preferred agent  11 seconds the preferred agent rings
    12 "1" when the caller may still choose a skill by key while waiting (queue first: the
       prompt is played as the queue's first announcement, docs/caller-side.md)
    13 the caller's number as a callback dials it, when [callbacks] allowed_patterns allow
       one (keep my place is offered only then)

How a waiting call widens, all in Asterisk itself: the first queue starts with
QUEUE_MAX_PENALTY at the configured level, and its queue rule (queuerules.conf, rendered per
skill) raises it to every level after ``lower_level_after_s``; the Queue() timeout then moves
the call to the city's general queue, and the next one to the province's. A caller gains one
priority step per move so a long wait is not sent to the back of the next queue.

A repeat caller first tries the agent who handled the earlier case in that agent's own queue
(``agent-1001``, the agent its only member). Asterisk decides whether the agent is free: the
queue refuses callers when its member is paused, in use, ringing, in wrap-up or not
registered (joinempty), so there is no race with a state read elsewhere, pause and wrap-up are
respected, and the answer is tracked like any queue call (AgentConnect). If the agent is not
free or does not answer in ``preferred_agent_ring_s``, the call goes on to its queue with the
repeat caller's priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeVar

from common.config import PROVINCE_POOL, Config
from common.errors import DomainError
from common.facts import CallFact, call_id_of
from common.logs import call_scope, note_case
from common.metrics import UNSERVED, Metrics
from common.numbers import callback_number
from common.privacy import PersonalData, normalize_number
from common.queues import max_penalty_for, queue_name, relax_rule
from common.tasks import cancel_and_wait
from queueing.routing.model import GREEN_CHANNEL, EarlierCase
from telephony.fastagi import AgiAnswer, AgiRequest

log = logging.getLogger(__name__)

ROUTE_VARIABLE = "HOTLINE_ROUTE"


@dataclass(frozen=True)
class RouteRequest:
    node: str
    call_id: str
    trunk: str
    dialed: str
    key: str
    caller: str
    # From the handover trunk's context (HOTLINE_HANDOVER=1): an emergency line passed it on.
    handover: bool = False
    # What the look-ups found: a registered green-channel caller, an earlier open case.
    profile: str | None = None
    earlier: EarlierCase | None = None


@dataclass(frozen=True)
class RouteDecision:
    queue: str
    city: str
    skill: str
    priority: int = 0
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = field(default_factory=tuple)
    # Widening plan: the first queue's max penalty and rule, then (queue, seconds) steps.
    max_penalty: int | None = None
    rule: str = ""
    first_wait_s: int | None = None
    overflow: tuple[tuple[str, int | None], ...] = ()
    preferred_agent: str | None = None
    preferred_ring_s: int = 0
    # The number offers the menu and no key chose a skill yet.
    menu: bool = False
    # The digits a callback would dial (keep my place), "" when none may be made.
    callback: str = ""

    @property
    def summary(self) -> str:
        return "route: " + ", ".join(self.reasons)

    def channel_value(self, case_number: str = "") -> str:
        """The HOTLINE_ROUTE value (see the module's docstring)."""
        q2, t2 = self.overflow[0] if self.overflow else ("", None)
        q3 = self.overflow[1][0] if len(self.overflow) > 1 else ""
        return "|".join((
            self.queue, str(self.priority), case_number,
            "" if self.max_penalty is None else str(self.max_penalty), self.rule,
            "" if self.first_wait_s is None else str(self.first_wait_s),
            q2, "" if t2 is None else str(t2), q3,
            self.preferred_agent or "", str(self.preferred_ring_s) if self.preferred_agent else "",
            "1" if self.menu else "", self.callback,
        ))

    @property
    def plan(self) -> dict[str, Any]:
        return {"max_penalty": self.max_penalty, "rule": self.rule,
                "first_wait_s": self.first_wait_s,
                "overflow": [[q, t] for q, t in self.overflow],
                "preferred_agent": self.preferred_agent}


class RoutingTable:
    """The configuration as the router reads it: dictionaries built once, so a decision is
    a handful of look-ups."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.general = cfg.queueing.fallback_skill
        self.trunk_city = {t.id: t.city for t in cfg.trunks if t.city}
        self.handover_line = {t.id: t.referring_line or t.id for t in cfg.trunks
                              if t.kind == "handover"}
        self.numbers = {n.number: n for n in cfg.numbers}
        self.menu = dict(cfg.menu.keys)
        self.codes: dict[str, str] = {}
        for c in cfg.cities:
            for code in c.area_codes:
                self.codes[code] = c.id
        self.code_lengths = sorted({len(c) for c in self.codes}, reverse=True)
        city_node = {c.id: c.node for c in cfg.cities}
        self.agent_node = {a.id: city_node[a.city] for a in cfg.agents}
        r = cfg.routing
        self.relax = {s: r.relax_for(s) for s in cfg.skills}
        self.prio_handover = r.priority_handover
        self.prio_green = r.priority_green
        self.prio_repeat = r.priority_repeat
        self.preferred_ring_s = r.preferred_agent_ring_s
        self.keep_place = cfg.keep_place.enabled and cfg.menu.first == "queue"
        self.callback_patterns = tuple(cfg.callbacks.allowed_patterns)
        self.callback_refused = tuple(e.number for e in cfg.emergency_lines)

    def callback_digits(self, caller: str) -> str:
        """What a keep-my-place callback would dial, "" if the number may not be called."""
        if not self.keep_place or not caller:
            return ""
        try:
            return callback_number(caller, self.callback_patterns, self.callback_refused)
        except DomainError:
            return ""

    def city_of(self, trunk: str, dialed: str, caller: str) -> tuple[str, str]:
        city = self.trunk_city.get(trunk)
        if city:
            return city, f"city={city} (trunk {trunk})"
        number = self.numbers.get(dialed)
        if number is not None and number.city:
            return number.city, f"city={number.city} (dialed {dialed})"
        digits = normalize_number(caller)
        # Landlines carry the area code (025...); mobiles (1xx) don't say where the caller is.
        if digits.startswith("0"):
            for n in self.code_lengths:
                city = self.codes.get(digits[:n])
                if city:
                    return city, f"city={city} (area code {digits[:n]})"
        return PROVINCE_POOL, "city=province pool (unknown origin)"


_tables: dict[int, RoutingTable] = {}


def routing_table(cfg: Config | RoutingTable) -> RoutingTable:
    if isinstance(cfg, RoutingTable):
        return cfg
    table = _tables.get(id(cfg))
    if table is None or table.cfg is not cfg:
        if len(_tables) > 64:
            _tables.clear()
        table = _tables[id(cfg)] = RoutingTable(cfg)
    return table


def city_of(cfg: Config, trunk: str, caller: str) -> tuple[str, str]:
    """The caller's city and how we know it: the trunk, else the area code, else the province."""
    return routing_table(cfg).city_of(trunk, "", caller)


def decide(cfg: Config | RoutingTable, req: RouteRequest) -> RouteDecision:
    """Pure decision from the dialed number, the caller's city, the one menu key, the caller's
    profile and earlier case, and whether an emergency line handed the call over."""
    t = routing_table(cfg)
    reasons: list[str] = []
    flags: list[str] = []
    city, why_city = t.city_of(req.trunk, req.dialed, req.caller)
    reasons.append(why_city)
    number = t.numbers.get(req.dialed)
    if number is None:
        skill = t.general
        flags.append("unknown_number")
        reasons.append(f"skill={skill} (unknown number {req.dialed[:20] or '-'})")
    else:
        skill = number.skill
        reasons.append(f"skill={skill} (dialed {number.number})")
    key = req.key if len(req.key) == 1 else ""
    menu = (number is not None and number.skill == t.general and bool(t.menu)
            and not (key and key in t.menu))
    if key and key in t.menu:
        if number is not None and number.skill == t.general:
            skill = t.menu[key]
            reasons.append(f"skill={skill} (key {key})")
        else:
            reasons.append(f"key {key} not used for {req.dialed[:20] or 'this number'}")
    elif req.key:
        # Invalid keys count as no key (a late key never reaches the router).
        flags.append("invalid_key")
        reasons.append(f"key {req.key[:4]!r} ignored")
    queue = queue_name(city, skill)

    # Who goes first: the highest of the caller's claims (ties: hand-over, green, repeat).
    claims: list[tuple[int, str]] = []
    handover_line = t.handover_line.get(req.trunk)
    if req.handover or handover_line is not None:
        flags.append("handover")
        claims.append((t.prio_handover, f"handover (line {handover_line or req.trunk or '-'})"))
    if req.profile in GREEN_CHANNEL:
        flags.append(f"green_{req.profile}")
        claims.append((t.prio_green, str(req.profile)))
    preferred = None
    if req.earlier is not None:
        flags.append("repeat_caller")
        claims.append((t.prio_repeat, "repeat caller"))
    priority = 0
    if claims:
        priority, why = max(claims, key=lambda c: c[0])
        reasons.append(f"priority={why}")
    else:
        reasons.append("priority=normal")
    if req.earlier is not None:
        agent = req.earlier.agent_id
        # Only on the node the call is on: the agent's own queue lives there.
        if agent and t.agent_node.get(agent) == req.node:
            preferred = agent
        reasons.append(f"repeat caller (case {req.earlier.number}"
                       + (f", agent {preferred} first)" if preferred else ")"))

    # Widening: levels in the first queue, then the city's general pool, then the province.
    relax = t.relax[skill]
    max_penalty = max_penalty_for(relax.min_level) if relax.min_level > 1 else None
    steps: list[tuple[str, int]] = []
    if skill != t.general and city != PROVINCE_POOL:
        steps.append((queue_name(city, t.general), relax.city_general_after_s))
    elif skill != t.general:
        steps.append((queue_name(PROVINCE_POOL, t.general), relax.city_general_after_s))
    if city != PROVINCE_POOL:
        steps.append((queue_name(PROVINCE_POOL, t.general), relax.province_after_s))
    overflow: list[tuple[str, int | None]] = []
    first_wait = steps[0][1] if steps else None
    for i, (q, _) in enumerate(steps):
        nxt = steps[i + 1][1] - steps[i][1] if i + 1 < len(steps) else None
        overflow.append((q, nxt))
    return RouteDecision(
        queue=queue, city=city, skill=skill, priority=priority, reasons=tuple(reasons),
        flags=tuple(flags), max_penalty=max_penalty,
        rule=relax_rule(skill) if max_penalty is not None else "",
        first_wait_s=first_wait, overflow=tuple(overflow), preferred_agent=preferred,
        preferred_ring_s=t.preferred_ring_s if preferred else 0,
        menu=menu and not req.handover and req.trunk not in t.handover_line,
        callback=t.callback_digits(req.caller))


# -- the FastAGI endpoint ----------------------------------------------------------------------

T = TypeVar("T", covariant=True)


class Miss(enum.Enum):
    """What a look-up's ``peek`` says when only its ``lookup`` can tell (a sentinel)."""

    MISS = "MISS"

    def __repr__(self) -> str:
        return "MISS"


MISS: Final = Miss.MISS


class CallerLookup(Protocol[T]):
    """A look-up by the caller's keyed hash (never by the number in clear)."""

    def peek(self, caller_hash: str) -> T | Literal[Miss.MISS] | None:
        """Answer from memory if possible; ``MISS`` if only ``lookup`` can tell."""

    async def lookup(self, caller_hash: str) -> T | None: ...


Recorder = Callable[[CallFact], Awaitable[object]]


class RouteEndpoint:
    """The FastAGI ``route`` endpoint.

    The dialplan calls
    ``AGI(agi://host:port/route,<trunk>,<dialed>,<key>,<linkedid>,<handover>)``.

    The common case is answered without any I/O: the look-ups answer from memory (``peek``),
    the case number is the one the case store gave the call when it arrived, and the decision
    is recorded on the case after Asterisk has its answer. Only a cold look-up or a call the
    store has not seen yet makes the decision wait for the database, within the budget.
    """

    def __init__(self, cfg: Config, record: Recorder,
                 decide_fn: Callable[[RouteRequest], Awaitable[RouteDecision]] | None = None, *,
                 personal: PersonalData | None = None,
                 profiles: CallerLookup[str] | None = None,
                 earlier_cases: CallerLookup[EarlierCase] | None = None,
                 case_number: Callable[[str], str | None] | None = None,
                 submit: Recorder | None = None,
                 recorders: int = 4, backlog: int = 100_000, metrics: Metrics = UNSERVED):
        self.cfg = cfg
        # The time from the request to the answer, fast path or slow (common/metrics.py).
        self._decision_time = metrics.route_decision
        self.table = routing_table(cfg)
        self.record = record
        # Queues a fact without waiting for it to be written (CaseStore.submit): a decision on
        # a call whose case exists joins the next group of case writes instead of making a
        # transaction of its own.
        self.submit = submit
        self.decide_fn = decide_fn
        self.personal = personal
        self.profiles = profiles
        self.earlier_cases = earlier_cases
        self.case_number = case_number
        self.budget_s = cfg.fastagi.decision_timeout_ms / 1000
        self.default_node = cfg.nodes[0].id
        self.decisions = 0
        self.fallbacks = 0
        self.slow = 0
        self.unrecorded = 0
        self.unnumbered = 0  # answered before the database gave the case its number
        self._recorders = recorders
        self._backlog: (
            asyncio.Queue[tuple[RouteRequest, RouteDecision | _Recorded, float]] | None
        ) = None
        self._backlog_max = backlog
        self._workers: list[asyncio.Task[None]] = []

    # -- life cycle (recording works in the background) ----------------------------------------

    def start(self) -> None:
        if self._backlog is None:
            self._backlog = asyncio.Queue(self._backlog_max)
            self._workers = [asyncio.create_task(self._record_loop(), name=f"route-record-{i}")
                             for i in range(self._recorders)]

    async def stop(self, timeout: float = 5.0) -> None:
        """Record what is still waiting (bounded), then stop."""
        if self._backlog is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._backlog.join(), timeout)
        await cancel_and_wait(self._workers, what="router-backlog")
        self._workers = []
        self._backlog = None

    async def drain(self, timeout: float = 10.0) -> None:
        if self._backlog is not None:
            await asyncio.wait_for(self._backlog.join(), timeout)

    # -- requests -----------------------------------------------------------------------------

    def _request(self, h: dict[str, str]) -> RouteRequest:
        uniqueid = h.get("agi_uniqueid", "")
        node = uniqueid.rsplit("-", 1)[0] if "-" in uniqueid else self.default_node
        linkedid = h.get("agi_arg_4") or uniqueid
        caller = h.get("agi_callerid", "")
        return RouteRequest(
            node=node, call_id=call_id_of(node, linkedid), trunk=h.get("agi_arg_1", ""),
            dialed=h.get("agi_arg_2") or h.get("agi_dnid", ""), key=h.get("agi_arg_3", ""),
            caller="" if caller == "unknown" else caller,
            handover=h.get("agi_arg_5", "") == "1")

    def _with_facts(self, req: RouteRequest, profile: str | None,
                    earlier: EarlierCase | None) -> RouteRequest:
        if profile is None and earlier is None:
            return req
        return RouteRequest(req.node, req.call_id, req.trunk, req.dialed, req.key, req.caller,
                            req.handover, profile, earlier)

    def answer(self, headers: dict[str, str]) -> AgiAnswer | Awaitable[AgiAnswer | None] | None:
        """The FastAGI answering interface (telephony.fastagi)."""
        started = time.monotonic()
        try:
            req = self._request(headers)
            digest = (self.personal.lookup_hash(req.caller)
                      if self.personal is not None and req.caller else None)
            profile = earlier = None
            if digest is not None:
                profile = self.profiles.peek(digest) if self.profiles is not None else None
                earlier = (self.earlier_cases.peek(digest)
                           if self.earlier_cases is not None else None)
            if profile is MISS or earlier is MISS or self.decide_fn is not None:
                return self._answer_later(req, digest, started)
            req = self._with_facts(req, profile, earlier)
            decision = decide(self.table, req)
            number = self.case_number(req.call_id) if self.case_number is not None else None
            if number is None:
                return self._answer_later(req, digest, started, decision)
        except Exception as exc:
            self._fallback(headers, exc)
            return None
        return self._answered(req, decision, number, started)

    async def _answer_later(self, req: RouteRequest, digest: str | None, started: float,
                            decision: RouteDecision | None = None) -> AgiAnswer | None:
        self.slow += 1
        try:
            if decision is not None:
                # Decided; only the case number is awaited, and that wait is bounded on its
                # own. Under the budget's timer too, a loop stalled past the budget (a disk
                # stall under load) cancelled a made decision and the call took the fallback
                # queue.
                return await self._slow(req, digest, started, decision)
            return await asyncio.wait_for(self._slow(req, digest, started, decision),
                                          self.budget_s)
        except Exception as exc:
            self._fallback({"agi_arg_4": req.call_id}, exc)
            return None

    async def _slow(self, req: RouteRequest, digest: str | None, started: float,
                    decision: RouteDecision | None) -> AgiAnswer:
        if decision is None:
            profile: str | None = None
            earlier: EarlierCase | None = None
            if digest is not None:
                if self.profiles is not None:
                    known_profile = self.profiles.peek(digest)
                    profile = (await self.profiles.lookup(digest) if known_profile is MISS
                               else known_profile)
                if self.earlier_cases is not None:
                    known_earlier = self.earlier_cases.peek(digest)
                    earlier = (await self.earlier_cases.lookup(digest) if known_earlier is MISS
                               else known_earlier)
            req = self._with_facts(req, profile, earlier)
            decision = (await self.decide_fn(req) if self.decide_fn is not None
                        else decide(self.table, req))
        number = self.case_number(req.call_id) if self.case_number is not None else None
        if number is None:
            # The store has not seen this call yet (a hand-over goes straight to routing, or
            # the database is slow): record now, which creates the case and gives its number.
            # A database slower than the budget does not send the call to the fallback queue:
            # the decision is answered without the number (the console finds the case by its
            # call) and the case gets the decision when the database answers.
            recording = asyncio.ensure_future(self.record(self._routed_fact(req, decision)))
            wait = self.budget_s * 0.6 - (time.monotonic() - started)
            try:
                ref = await asyncio.wait_for(asyncio.shield(recording), max(0.01, wait))
                number = getattr(ref, "number", None) or ""
            except TimeoutError:
                self.unnumbered += 1
                recording.add_done_callback(self._recorded_late)
                number = ""
            self._enqueue(req, decision, started, routed_done=True)
            return self._reply(decision, number, started)
        return self._answered(req, decision, number, started)

    def _recorded_late(self, recording: asyncio.Future[object]) -> None:
        if not recording.cancelled() and recording.exception() is not None:
            self.unrecorded += 1
            log.error("routing decision not recorded", exc_info=recording.exception())

    def _answered(self, req: RouteRequest, decision: RouteDecision, number: str,
                  started: float) -> AgiAnswer:
        self._enqueue(req, decision, started)
        return self._reply(decision, number, started)

    def _reply(self, decision: RouteDecision, number: str, started: float) -> AgiAnswer:
        self.decisions += 1
        self._decision_time.observe(time.monotonic() - started)
        return AgiAnswer({ROUTE_VARIABLE: decision.channel_value(number)})

    def _fallback(self, headers: dict[str, str], exc: BaseException) -> None:
        # Leave HOTLINE_ROUTE unset: the dialplan's fallback queue takes the call.
        self.fallbacks += 1
        call_id = headers.get("agi_arg_4") or headers.get("agi_uniqueid", "")
        case = self.case_number(call_id) if self.case_number is not None and call_id else None
        with call_scope(call_id, case):
            log.warning("routing failed; the dialplan falls back", extra={
                "error": str(exc) or type(exc).__name__})

    async def __call__(self, request: AgiRequest) -> None:
        """The stream interface, for callers that drive an AgiRequest themselves."""
        result = self.answer(request.headers)
        if result is not None and not isinstance(result, AgiAnswer):
            result = await result
        if result is not None:
            await request.set_variables(result.variables)

    # -- recording ------------------------------------------------------------------------------

    def _routed_fact(self, req: RouteRequest, d: RouteDecision) -> CallFact:
        data: dict[str, Any] = {
            "queue": d.queue, "reasons": d.summary, "source": "router", "city": d.city,
            "skill": d.skill, "priority": d.priority, "flags": list(d.flags),
            "key": req.key[:4], "plan": d.plan}
        if req.profile:
            data["profile"] = req.profile
        if req.earlier is not None:
            data["repeat_of"] = req.earlier.number
        return CallFact("routed", req.call_id, req.node, time.time(), data, source="router")

    def _enqueue(self, req: RouteRequest, decision: RouteDecision, started: float, *,
                 routed_done: bool = False) -> None:
        if self._backlog is None:
            self.start()
        assert self._backlog is not None
        try:
            self._backlog.put_nowait((req, decision if not routed_done else _Recorded(decision),
                                      started))
        except asyncio.QueueFull:
            self.unrecorded += 1
            log.error("routing decision not recorded: backlog full", extra={
                "call_id": req.call_id, "queue": decision.queue})

    async def _record_loop(self) -> None:
        assert self._backlog is not None
        backlog = self._backlog
        while True:
            req, decision, started = await backlog.get()
            case = self.case_number(req.call_id) if self.case_number is not None else None
            try:
                with call_scope(req.call_id, case):
                    await self._record(req, decision, started)
            finally:
                backlog.task_done()

    async def _record(self, req: RouteRequest, decision: RouteDecision | _Recorded,
                      started: float) -> None:
        try:
            known = self.case_number(req.call_id) if self.case_number is not None else None
            record = self.submit if self.submit is not None and known else self.record
            if isinstance(decision, _Recorded):
                decision = decision.decision
            else:
                ref = await record(self._routed_fact(req, decision))
                note_case(req.call_id, getattr(ref, "number", None) or known)
            if req.earlier is not None:
                await record(CallFact(
                    "linked", req.call_id, req.node, time.time(),
                    {"case": req.earlier.number, "case_id": req.earlier.case_id,
                     "reason": "repeat_caller", "agent": req.earlier.agent_id},
                    source="router"))
            if log.isEnabledFor(logging.DEBUG):  # the case holds the decision and reasons
                log.debug("call routed", extra={
                    "queue": decision.queue, "priority": decision.priority,
                    "preferred": decision.preferred_agent, "flags": list(decision.flags),
                    "ms": round((time.monotonic() - started) * 1000, 2)})
        except Exception:
            self.unrecorded += 1
            log.exception("routing decision not recorded")


@dataclass(frozen=True)
class _Recorded:
    """A marker: the routed fact was recorded before the answer."""

    decision: RouteDecision
