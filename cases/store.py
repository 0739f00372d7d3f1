"""The case store: applies call facts to case records, idempotently, and answers queries.

Facts are applied in order per call, in one transaction per batch (the facts of a call that
queued up while its previous batch was written): get or create the case for the call, add
each fact to the timeline unless its key is already there, and fill the case's columns.
Columns are only *filled* (a value learnt first is kept), so the live view, the resync and CEL
can all report the same call without overwriting each other. Calls are written concurrently,
so the live AMI stream submits its facts without waiting for the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.orm import selectinload

from cases.db import padded
from cases.legs import LegIndex, load_legs
from cases.models import (
    CallEvent,
    Case,
    CaseCounter,
    CaseLink,
    NodeCheckpoint,
    TransferRecord,
)
from cases.rows import CallRecord, OrmWhenNeeded, Row, table_of, write_changes
from cases.transfers import apply_transfer_fact
from common.facts import CallFact
from common.logs import call_scope, note_case
from common.metrics import UNSERVED, Metrics
from common.privacy import PersonalData, mask_number
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


async def next_case_number(session: AsyncSession, at: datetime, tz: ZoneInfo) -> str:
    """The next readable case number of ``at``'s day (in the service's time zone): calls and
    cases that arrive without a call (cases/loop) share the sequence."""
    return (await next_case_numbers(session, at.astimezone(tz).strftime("%Y%m%d"), 1))[0]


async def next_case_numbers(db: AsyncSession | AsyncConnection, day: str, count: int
                            ) -> list[str]:
    """``count`` consecutive case numbers of ``day`` (YYYYMMDD), in one statement."""
    bind = db if isinstance(db, AsyncConnection) else db.bind
    dialect = bind.dialect.name if bind is not None else "sqlite"
    stmt = _COUNTER_UPSERT["postgresql" if dialect == "postgresql" else "sqlite"]
    last = (await db.execute(stmt, {"day": day, "count": count})).scalar_one()
    return [f"{day}{seq:06d}" for seq in range(last - count + 1, last + 1)]


def _counter_upsert(insert_of: Callable[[type], Any]) -> Any:
    count = bindparam("count", type_=Integer)
    return insert_of(CaseCounter).values(day=bindparam("day"), seq=count).on_conflict_do_update(
        index_elements=[CaseCounter.day], set_={"seq": CaseCounter.seq + count}
    ).returning(CaseCounter.seq)


# Built once per dialect (a statement built per call cost more than running it).
_COUNTER_UPSERT = {"postgresql": _counter_upsert(postgresql.insert),
                   "sqlite": _counter_upsert(sqlite.insert)}


def ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True)
class CaseRef:
    id: int
    number: str
    created: bool


CASES = table_of(Case)
EVENTS = table_of(CallEvent)
# Built once: their cache keys are computed once, PostgreSQL keeps their prepared statements.
_CASES_OF_CALLS = select(CASES).where(CASES.c.call_id.in_(bindparam("ids", expanding=True)))
_KEYS_OF_CASES = select(EVENTS.c.case_id, EVENTS.c.key).where(
    EVENTS.c.case_id.in_(bindparam("ids", expanding=True)))
_INSERT_CASES = insert(CASES).returning(*CASES.c, sort_by_parameter_order=True)
_INSERT_EVENTS = insert(EVENTS)


# A fact waiting for its case, with the future of whoever waits for it (``apply``).
Pending = tuple[CallFact, "asyncio.Future[CaseRef] | None"]


@dataclass(frozen=True)
class CallSummary:
    """What the live state shows of a call's case (its replay after Redis lost it)."""

    number: str
    caller_masked: str | None
    dialed_number: str | None
    trunk: str | None
    route_queue: str | None
    city: str | None
    priority: int


# SQLSTATEs of a server going away or not back yet: connection exceptions (08xxx), admin and
# crash shutdown, and "the database system is starting up / not yet accepting connections"
# (57P01-57P03), which asyncpg raises while PostgreSQL recovers after a restart.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03")


def database_unavailable(exc: BaseException) -> bool:
    """A lost or refused connection (worth waiting for), not a wrong statement."""
    if isinstance(exc, OSError | OperationalError | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return bool(state) and str(state).startswith(_UNAVAILABLE_STATES)


class CaseStore:
    """Writes go through one ordered queue per call: every fact of a call, whichever source
    (AMI events, the router, CEL, the console) submits it, is applied in submission order.
    The AMI event stream never waits for the database (``submit``). Facts are written in
    groups (group commit): whatever has queued up, across all calls, goes to the database in
    one transaction, with the group's cases, fact keys and legs each read in one statement; a
    call is in at most one group at a time, so its facts stay in order. A group that fails on
    a wrong fact is written again call by call, so one call's bad fact costs no other call."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData,
                 timezone: str = "Asia/Shanghai", *, writers: int = 2, group_calls: int = 200,
                 linger_s: float = 0.5, metrics: Metrics = UNSERVED):
        self.sessions = sessions
        # Facts are written on a connection of their own (Core statements, no ORM session).
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._write_time = metrics.case_write
        self.personal = personal
        self.tz = ZoneInfo(timezone)
        # The case of each recent call, so the router answers with the case number without
        # asking the database (the case is made when the call arrives, before the menu).
        self._refs: OrderedDict[str, CaseRef] = OrderedDict()
        # The records of the calls written last (least recently written dropped first).
        self._records: OrderedDict[str, CallRecord] = OrderedDict()
        self.records_held = 4096
        self.facts_applied = 0
        self.facts_duplicate = 0
        self.groups_written = 0
        # A database that goes away (a PostgreSQL restart, a network cut) holds facts back
        # until it returns, in order, rather than losing them; for at most this long.
        self.unavailable_wait_s = 300.0
        self.unavailable_retries = 0
        # Called with each fact once it is on its case (the repeat-caller index needs the case).
        self.after_apply: list[Callable[[CallFact], Awaitable[None]]] = []
        self._queues: dict[str, deque[Pending]] = {}
        # Each agent's latest call (for reads of "the agent's own cases": written_for_agent).
        self._agent_calls: dict[str, str] = {}
        # Calls with queued facts and no group in flight, in the order they became ready.
        self._ready: dict[str, None] = {}
        self._inflight: set[str] = set()
        self._groups: set[asyncio.Task[None]] = set()
        self._max_groups = max(1, writers)
        self._group_calls = max(1, group_calls)
        self._written = asyncio.Condition()
        # Facts only submitted (the AMI stream) wait this long for others to share their
        # transaction: a call's facts come seconds apart, so without it nearly every fact was
        # a transaction of its own. A fact someone waits for (``apply``) cuts it short.
        self.linger_s = linger_s
        self._gathering = 0  # writers started or lingering, not yet writing their group
        self._urgent = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- writing ----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Facts submitted and not yet on their case."""
        return sum(len(q) for q in self._queues.values())

    async def submit(self, fact: CallFact) -> None:
        """Queue a fact for its case and return at once (a call-fact sink for the live AMI
        stream: failures are logged, the fact's order within its call is kept)."""
        self._enqueue(fact, None)

    async def apply(self, fact: CallFact) -> CaseRef:
        """Apply one fact (safe to repeat), after the call's facts submitted before it."""
        future: asyncio.Future[CaseRef] = asyncio.get_running_loop().create_future()
        self._enqueue(fact, future)
        ref = await future
        note_case(fact.call_id, ref.number)
        return ref

    def _enqueue(self, fact: CallFact, future: asyncio.Future[CaseRef] | None) -> None:
        queue = self._queues.get(fact.call_id)
        if queue is None:
            queue = self._queues[fact.call_id] = deque()
        queue.append((fact, future))
        agent = fact.data.get("agent")
        if isinstance(agent, str) and agent:
            self._agent_calls[agent] = fact.call_id
        if fact.call_id not in self._inflight:
            self._ready[fact.call_id] = None
        self._idle.clear()
        if future is not None:
            # Someone waits. A new call's case is not urgent: it is written within the
            # linger, while the caller hears the menu, before the router asks for its number
            # (a call routed sooner is recorded by the router, which waits).
            self._urgent.set()
        # A writer still gathering its group takes this fact in it; another starts only while
        # the writers are all busy writing (two gathering at once made twice the transactions).
        if not self._gathering and len(self._groups) < self._max_groups:
            self._gathering += 1
            self._groups.add(asyncio.create_task(self._write_groups(), name="case-writer"))

    async def _write_groups(self) -> None:
        # Started on the event loop's next turn: the facts that arrive meanwhile (one AMI
        # read holds several) join the group.
        gathering = [True]
        try:
            await self._write_ready(gathering)
        finally:
            if gathering[0]:
                self._gathering -= 1
            # Left the set before returning, so a fact queued from now on starts a writer.
            self._groups.discard(asyncio.current_task())
            if not self._groups and not self._ready:
                self._idle.set()

    async def _write_ready(self, gathering: list[bool]) -> None:
        while self._ready:
            if not gathering[0]:
                gathering[0] = True
                self._gathering += 1
            if self.linger_s > 0 and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self.linger_s)
            gathering[0] = False
            self._gathering -= 1
            self._urgent.clear()
            calls = list(itertools.islice(self._ready, self._group_calls))
            batches = {}
            for call_id in calls:
                del self._ready[call_id]
                batches[call_id] = list(self._queues.pop(call_id))
            self._inflight.update(calls)
            try:
                await self._apply_group(batches)
            finally:
                self._inflight.difference_update(calls)
                for call_id in calls:
                    if call_id in self._queues:  # more came while this group was written
                        self._ready[call_id] = None
                async with self._written:
                    self._written.notify_all()

    async def _apply_group(self, batches: dict[str, list[Pending]]) -> None:
        facts = {c: [f for f, _ in b] for c, b in batches.items()}
        try:
            refs = await self._apply_with_retries(facts)
        except asyncio.CancelledError:
            for batch in batches.values():
                for _, fut in batch:
                    if fut is not None and not fut.done():
                        fut.cancel()
            raise
        except Exception as exc:
            if len(batches) == 1 or database_unavailable(exc):
                for call_id, batch in batches.items():
                    with call_scope(call_id, self.cached_number(call_id)):
                        self._failed(batch, exc)
                return
            # One call's fact broke the group: each call again on its own.
            log.warning("case group not written: writing its calls one by one", extra={
                "calls": len(batches), "error": type(exc).__name__})
            for call_id, batch in batches.items():
                await self._apply_group({call_id: batch})
            return
        for call_id, batch in batches.items():
            with call_scope(call_id, self.cached_number(call_id)):
                await self._settle(batch, refs[call_id])

    def _failed(self, batch: list[Pending], exc: Exception) -> None:
        for fact, fut in batch:
            if fut is not None:
                if not fut.done():
                    fut.set_exception(exc)
            else:
                log.error("call fact not recorded", exc_info=exc, extra={
                    "call_id": fact.call_id, "fact": fact.kind})

    async def _settle(self, batch: list[Pending], ref: CaseRef) -> None:
        facts = [f for f, _ in batch]
        self._remember(facts[0].call_id, ref)
        note_case(facts[0].call_id, ref.number)
        if ref.created:
            # Logged here, not where the call was seen: only now is its case number known.
            arrived = next((f for f in facts if f.kind == "arrived"), None)
            extra: dict[str, Any] = {"node": facts[0].node, "source": facts[0].source}
            if arrived is not None:
                extra.update(dialed=arrived.data.get("dialed"), trunk=arrived.data.get("trunk"),
                             caller=arrived.data.get("caller") or "")
            log.info("call arrived", extra=extra)
        for _, fut in batch:
            if fut is not None and not fut.done():
                fut.set_result(ref)
        for fact in facts:
            for hook in self.after_apply:
                try:
                    await hook(fact)
                except Exception:
                    log.exception("after-apply hook failed",
                                  extra={"call_id": fact.call_id, "fact": fact.kind})

    async def _apply_with_retries(self, facts: dict[str, list[CallFact]]
                                  ) -> dict[str, CaseRef]:
        deadline = time.monotonic() + self.unavailable_wait_s
        delays = iter((0.2, 0.5, 1.0, 2.0))
        conflicts = 0
        while True:
            try:
                return await self._apply_once(facts)
            except IntegrityError:
                # Another process created the case (or the event) first: read it again.
                conflicts += 1
                if conflicts == 3:
                    raise
            except (OperationalError, InterfaceError, DBAPIError, OSError) as exc:
                if not database_unavailable(exc) or time.monotonic() > deadline:
                    raise
                self.unavailable_retries += 1
                first = next(iter(facts.values()))[0]
                log.warning("database unavailable: holding the fact", extra={
                    "call_id": first.call_id, "fact": first.kind, "calls": len(facts),
                    "facts": sum(len(f) for f in facts.values()), "error": type(exc).__name__})
                await asyncio.sleep(next(delays, 5.0))

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every fact submitted so far is on its case."""
        self._urgent.set()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def _flushed(self, call_ids: list[str] | None = None) -> None:
        """Reads that must see what was submitted (for these calls, or all) wait for it."""
        waiting = set(self._queues) | self._inflight
        if call_ids is not None:
            waiting &= set(call_ids)

        def written() -> bool:
            return not any(c in self._queues or c in self._inflight for c in waiting)

        if waiting:
            self._urgent.set()  # someone reads: no lingering
            with contextlib.suppress(TimeoutError):
                async with self._written:
                    await asyncio.wait_for(self._written.wait_for(written),
                                           self.unavailable_wait_s)

    async def written_for_agent(self, agent: str) -> None:
        """Wait until the facts submitted for the agent's latest call are on its case (at
        once if none is queued): what the agent may see of it must not lag the linger."""
        call_id = self._agent_calls.get(agent)
        if call_id is not None and (call_id in self._queues or call_id in self._inflight):
            await self._flushed([call_id])

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is still queued (bounded), then stop the writers."""
        with contextlib.suppress(TimeoutError):
            await self.drain(timeout)
        await cancel_and_wait(list(self._groups), what="case-writers")

    def _remember(self, call_id: str, ref: CaseRef) -> None:
        if call_id not in self._refs:
            self._refs[call_id] = ref
            if len(self._refs) > 50_000:
                self._refs.popitem(last=False)

    def cached(self, call_id: str) -> CaseRef | None:
        """The case of a call this store has recorded recently (no database access)."""
        return self._refs.get(call_id)

    def cached_number(self, call_id: str) -> str | None:
        ref = self._refs.get(call_id)
        return ref.number if ref is not None else None

    async def _apply_once(self, facts: dict[str, list[CallFact]]) -> dict[str, CaseRef]:
        """The facts of these calls, each call's in order, in one transaction: what the store
        does not hold of them yet (case, fact keys, legs) read in one statement each, the
        changed columns written in one statement per set of columns, the new timeline rows
        in one."""
        applied = duplicate = 0
        started = time.perf_counter()
        refs: dict[str, CaseRef] = {}
        try:
            async with self._engine.begin() as conn:
                orm = OrmWhenNeeded(conn)
                records, created = await self._records_of(conn, facts)
                legs = LegIndex({r.case.id: r.legs for r in records.values()})
                timeline: list[dict[str, Any]] = []
                for call_id, call_facts in facts.items():
                    record = records[call_id]
                    case = record.case
                    for fact in call_facts:
                        if fact.key in record.keys:
                            duplicate += 1
                            continue
                        record.keys.add(fact.key)
                        timeline.append({"case_id": case.id, "key": fact.key,
                                         "kind": fact.kind, "at": ts(fact.at),
                                         "detail": self._public(fact.data),
                                         "source": fact.source})
                        await self._fill(orm, case, fact, legs)
                        applied += 1
                    if case.cel_pending and any(f.source == "cel"
                                                and f.kind in ("ended", "orphaned")
                                                for f in call_facts):
                        case.cel_pending = False  # CEL has read the call to its end
                    refs[call_id] = CaseRef(case.id, case.number, call_id in created)
                await write_changes(conn, CASES, (r.case for r in records.values()), ("id",))
                await legs.write(conn)
                if timeline:
                    await conn.execute(_INSERT_EVENTS, timeline)
                await orm.flush()
        except BaseException:
            # What these calls' records hold was changed and not written: read them again.
            for call_id in facts:
                self._records.pop(call_id, None)
            raise
        self._write_time.observe(time.perf_counter() - started)  # committed
        self.facts_applied += applied
        self.facts_duplicate += duplicate
        self.groups_written += 1
        return refs

    async def _records_of(self, conn: AsyncConnection, facts: dict[str, list[CallFact]]
                          ) -> tuple[dict[str, CallRecord], set[str]]:
        """The records of these calls: held from their last write, read for the others,
        made for calls that have no case yet (their numbers taken from their day's counter
        in one statement per day)."""
        records = {c: r for c in facts if (r := self._records.get(c)) is not None}
        missing = [c for c in facts if c not in records]
        created: set[str] = set()
        if missing:
            for m in (await conn.execute(_CASES_OF_CALLS, {"ids": padded(missing)})
                      ).mappings():
                records[m["call_id"]] = CallRecord(Row(m))
            old = [records[c].case.id for c in missing if c in records]
            if old:
                by_id = {records[c].case.id: records[c] for c in missing if c in records}
                keys = await conn.execute(_KEYS_OF_CASES, {"ids": padded(old)})
                for case_id, key in keys:
                    by_id[case_id].keys.add(key)
                for case_id, case_legs in (await load_legs(conn, old)).items():
                    by_id[case_id].legs = case_legs
            new = [c for c in missing if c not in records]
            by_day: dict[str, list[str]] = {}
            for call_id in new:
                day = ts(facts[call_id][0].at).astimezone(self.tz).strftime("%Y%m%d")
                by_day.setdefault(day, []).append(call_id)
            rows = []
            for day, call_ids in by_day.items():
                numbers = await next_case_numbers(conn, day, len(call_ids))
                for call_id, number in zip(call_ids, numbers, strict=True):
                    first = facts[call_id][0]
                    rows.append({"number": number, "call_id": call_id, "node": first.node,
                                 "source": first.source, "flags": [], "priority": 0,
                                 "call_state": "active"})
            if rows:
                for m in (await conn.execute(_INSERT_CASES, rows)).mappings():
                    records[m["call_id"]] = CallRecord(Row(m))
                created.update(new)
        for call_id in facts:
            self._records[call_id] = records[call_id]
            self._records.move_to_end(call_id)
        while len(self._records) > self.records_held:
            self._records.popitem(last=False)
        return records, created

    def _public(self, data: dict[str, Any]) -> dict[str, Any]:
        """The timeline's copy of a fact, without personal data in clear."""
        out = {k: v for k, v in data.items() if k not in ("caller", "caller_name")}
        if data.get("caller"):
            out["caller"] = mask_number(data["caller"])
        return out

    @staticmethod
    def _leg(case: Row, legs: LegIndex, uniqueid: str, **values: Any) -> Row:
        leg = legs.get_or_add(case, uniqueid, role=values.get("role", "agent"),
                              channel=values.get("channel", ""))
        for k, v in values.items():
            if v is not None and getattr(leg, k, None) in (None, ""):
                setattr(leg, k, v)
        return leg

    async def _fill(self, orm: OrmWhenNeeded, case: Row, fact: CallFact, legs: LegIndex
                    ) -> None:
        d = fact.data
        at = ts(fact.at)

        def fill(**values: Any) -> None:
            for k, v in values.items():
                if v is not None and v != "" and getattr(case, k) in (None, ""):
                    setattr(case, k, v)

        kind = fact.kind
        if kind == "arrived":
            caller = d.get("caller") or None
            fill(arrived_at=at, dialed_number=d.get("dialed"), trunk=d.get("trunk"),
                 caller_enc=self.personal.encrypt(caller),
                 caller_hash=self.personal.lookup_hash(caller),
                 caller_masked=mask_number(caller) if caller else None)
            if d.get("uniqueid"):
                self._leg(case, legs, d["uniqueid"], channel=d.get("channel", ""),
                          role="caller", party=mask_number(caller), started_at=at)
        elif kind == "menu":
            fill(menu_key=d.get("key"))
        elif kind == "routed":
            if d.get("key") and d.get("queue"):
                # A key chose a skill while the caller waited (queue first): the later decision
                # is the call's route.
                case.route_queue = d["queue"]
                case.route_reasons = d.get("reasons") or case.route_reasons
            fill(route_queue=d.get("queue"), route_reasons=d.get("reasons"),
                 route_source=d.get("source"), city=d.get("city"))
            if d.get("priority"):
                # The highest priority the call was given (a hand-over may have set one first).
                case.priority = max(case.priority or 0, int(d["priority"]))
            if d.get("flags"):
                case.flags = sorted(set(case.flags or []) | set(d["flags"]))
        elif kind == "fallback":
            fill(route_source="fallback")
            case.flags = sorted(set(case.flags or []) | {"router_unavailable"})
        elif kind == "queued":
            fill(queue=d.get("queue"), queued_at=at)
        elif kind == "ringing":
            self._leg(case, legs, d["uniqueid"], channel=d.get("channel", ""),
                      role="agent", party=d.get("agent"), started_at=at)
        elif kind == "ring_noanswer":
            self._leg(case, legs, d["uniqueid"], outcome="no_answer", ended_at=at)
        elif kind == "answered":
            if case.call_state == "ended" and case.outcome != "answered":
                # An answer the live end never heard of (lost in a reconnect's gap; CEL tells
                # it later): what the end inferred from its absence is undone.
                case.outcome = case.wait_seconds = case.hangup_by = None
            first_queue = case.queue
            fill(agent_id=d.get("agent"), answered_at=at, outcome="answered",
                 wait_seconds=_round(d.get("hold_time")))
            if d.get("queue"):
                # The queue that answered (after overflow it is not the one first joined).
                case.queue = d["queue"]
                if first_queue and first_queue != d["queue"] and case.queued_at:
                    # Hold time is per queue: the caller waited since the first one.
                    case.wait_seconds = _round((at - case.queued_at).total_seconds())
            self._leg(case, legs, d["uniqueid"], channel=d.get("channel", ""),
                      role="agent", party=d.get("agent"), answered_at=at,
                      outcome="answered", started_at=at)
        elif kind == "completed":
            fill(talk_seconds=_round(d.get("talk_time")))
            if fact.source == "live" and d.get("reason") in ("caller", "agent"):
                # Asterisk's own word (AgentComplete) on who hung up: it overrides what the end
                # of the call guessed when AgentComplete came after the caller's Hangup.
                case.hangup_by = d["reason"]
            else:
                fill(hangup_by=d.get("reason") or None)
        elif kind == "abandoned":
            fill(outcome="abandoned", wait_seconds=_round(d.get("hold_time")),
                 hangup_by="caller")
        elif kind == "leg_ended":
            self._leg(case, legs, d["uniqueid"], ended_at=at,
                      hangup_cause=d.get("cause"))
        elif kind == "ended":
            fill(ended_at=at, hangup_by=d.get("hangup_by"))
            case.call_state = "ended"
            if d.get("resynced") and fact.source != "cel":
                case.cel_pending = True
            if case.outcome is None:
                case.outcome = "answered" if case.answered_at else (
                    "abandoned" if case.queued_at else "dropped")
            if case.answered_at and case.talk_seconds is None:
                case.talk_seconds = _round((at - case.answered_at).total_seconds())
            if case.queued_at and case.wait_seconds is None:
                until = case.answered_at or at
                case.wait_seconds = _round((until - case.queued_at).total_seconds())
            caller_leg = legs.caller(case)
            if caller_leg is not None and caller_leg.ended_at is None:
                caller_leg.ended_at = at
                caller_leg.hangup_cause = d.get("cause")
        elif kind in ("message", "callback_requested"):
            # Nobody there: the caller left a message or asked to be called back.
            fill(outcome=kind)
            case.flags = sorted(set(case.flags or []) | {kind})
        elif kind == "keep_place":
            # Keep my place: a placeholder waits for the caller, who hung up.
            fill(outcome="keep_place")
            case.flags = sorted(set(case.flags or []) | {"keep_place"})
        elif kind in ("keep_place_reached", "keep_place_failed"):
            case.flags = sorted(set(case.flags or []) | {kind})
        elif kind == "nobody":
            case.flags = sorted(set(case.flags or []) | {"nobody_there"})
        elif kind == "rated":
            fill(rating=d.get("rating") or None, rated_at=at)
        elif kind == "widened":
            case.flags = sorted(set(case.flags or []) | {"widened"})
        elif kind == "linked":
            await self._link(orm.session(), case, d)
        elif kind.startswith("transfer_") or kind in ("handover", "requeued"):
            await apply_transfer_fact(orm.session(), case, fact, legs)
        elif kind == "orphaned":
            # The call vanished with no record of its end (Asterisk killed): close it honestly.
            fill(ended_at=at, hangup_by="system")
            case.call_state = "ended"
            case.outcome = case.outcome or "unknown"
            case.flags = sorted(set(case.flags or []) | {"end_unknown"})

    async def _link(self, session: AsyncSession, case: Row, d: dict[str, Any]) -> None:
        other_id = d.get("case_id")
        if other_id is None and d.get("case"):
            other_id = (await session.execute(
                select(Case.id).where(Case.number == d["case"]))).scalar_one_or_none()
        if other_id is None or other_id == case.id:
            return
        exists = (await session.execute(select(CaseLink.id).where(
            CaseLink.case_id == case.id, CaseLink.linked_case_id == other_id))).first()
        if exists is None:
            session.add(CaseLink(case_id=case.id, linked_case_id=int(other_id),
                                 reason=str(d.get("reason") or "related")[:32]))

    async def links(self, number: str) -> list[tuple[str, str]]:
        """Cases linked to this one, either way: (case number, reason)."""
        async with self.sessions() as session:
            case_id = (await session.execute(
                select(Case.id).where(Case.number == number))).scalar_one_or_none()
            if case_id is None:
                return []
            rows = (await session.execute(
                select(Case.number, CaseLink.reason).join(
                    CaseLink, (CaseLink.linked_case_id == Case.id) | (CaseLink.case_id == Case.id))
                .where(((CaseLink.case_id == case_id) | (CaseLink.linked_case_id == case_id))
                       & (Case.id != case_id)))).all()
            return sorted({(r[0], r[1]) for r in rows})

    # -- reading ------------------------------------------------------------------------------

    async def get(self, number: str) -> Case | None:
        await self._flushed()
        async with self.sessions() as session:
            return (await session.execute(
                select(Case).where(Case.number == number)
                .options(selectinload(Case.events), selectinload(Case.legs))
            )).scalar_one_or_none()

    async def by_call(self, call_id: str) -> Case | None:
        await self._flushed([call_id])
        async with self.sessions() as session:
            return (await session.execute(
                select(Case).where(Case.call_id == call_id)
                .options(selectinload(Case.events), selectinload(Case.legs))
            )).scalar_one_or_none()

    async def recent(self, limit: int = 50, *, since: datetime | None = None) -> list[Case]:
        await self._flushed()
        async with self.sessions() as session:
            q = select(Case).order_by(Case.id.desc()).limit(limit).options(
                selectinload(Case.events), selectinload(Case.legs))
            if since is not None:
                q = q.where(Case.created_at >= since)
            return list((await session.execute(q)).scalars())

    async def count(self) -> int:
        async with self.sessions() as session:
            return int((await session.execute(select(func.count(Case.id)))).scalar_one())

    def caller_number(self, case: Case) -> str | None:
        """The caller's number in clear, for roles allowed to see it."""
        return self.personal.decrypt(case.caller_enc)

    # -- CEL checkpoints (telephony.calls.cel.CheckpointStore) -----------------------------

    async def get_checkpoint(self, node: str) -> int:
        async with self.sessions() as session:
            row = await session.get(NodeCheckpoint, node)
            return row.cel_id if row else 0

    async def set_checkpoint(self, node: str, cel_id: int) -> None:
        async with self.sessions() as session, session.begin():
            row = await session.get(NodeCheckpoint, node)
            if row is None:
                session.add(NodeCheckpoint(node=node, cel_id=cel_id))
            else:
                row.cel_id = cel_id

    async def calls_needing_cel(self, call_ids: list[str]) -> set[str]:
        if not call_ids:
            return set()
        await self._flushed(call_ids)
        async with self.sessions() as session:
            complete = set((await session.execute(
                select(Case.call_id).where(Case.call_id.in_(call_ids),
                                           Case.call_state == "ended",
                                           Case.cel_pending.is_(False))
            )).scalars())
        return set(call_ids) - complete

    async def legs_needing_cel(self, leg_ids: list[str]) -> set[str]:
        """Transfer legs (by leg id) whose end the case does not know yet."""
        if not leg_ids:
            return set()
        async with self.sessions() as session:
            complete = set((await session.execute(
                select(TransferRecord.leg_id).where(TransferRecord.leg_id.in_(leg_ids),
                                                    TransferRecord.ended_at.is_not(None))
            )).scalars())
        return set(leg_ids) - complete

    async def stale_active(self, node: str, live_call_ids: set[str],
                           older_than: timedelta = timedelta(seconds=0)) -> list[str]:
        await self._flushed()  # an end still queued is not a call gone missing
        cutoff = datetime.now(UTC) - older_than
        async with self.sessions() as session:
            rows = (await session.execute(
                select(Case.call_id).where(Case.node == node, Case.call_state == "active",
                                           Case.created_at <= cutoff)
            )).scalars()
            return [r for r in rows if r and r not in live_call_ids]

    async def calls_summary(self, call_ids: Sequence[str]) -> dict[str, CallSummary]:
        """The cases of these calls, by call id, as the live state shows them."""
        await self._flushed(list(call_ids))
        async with self.sessions() as session:
            rows = (await session.execute(select(Case).where(Case.call_id.in_(call_ids))
                                          )).scalars()
            return {c.call_id: CallSummary(c.number, c.caller_masked, c.dialed_number, c.trunk,
                                           c.route_queue, c.city, c.priority)
                    for c in rows if c.call_id is not None}


def _round(v: Any) -> float | None:
    if v is None:
        return None
    try:
        return round(float(v), 2)
    except (TypeError, ValueError):
        return None
