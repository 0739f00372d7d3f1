"""回访 tasks in the database (``follow_up_tasks``, agent_desk/models.py) and their facts on
the case's timeline.

Every change of a task is a conditional update (``WHERE state = … AND attempts = …``): a
worker restarted mid-way, or a report that comes twice (Asterisk's and a retry), changes it
once. Tasks have a natural key (case, loop round), so finding the same case again makes no
second task. Each attempt is on the case's timeline as facts ``followup.<event>`` keyed
``followup:<task>:<attempt>:<event>``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.followup.schedule import (
    ACTIVE,
    ANSWERED,
    CALLING,
    CANCELLED,
    DONE,
    FOLLOW_UP,
    PENDING,
    REFUSED,
    TaskView,
)
from agent_desk.models import FollowUpTask
from cases.loop.models import CaseWork
from cases.models import CallEvent, Case
from common.errors import DomainError
from common.privacy import PersonalData


@dataclass(frozen=True)
class DueTask:
    id: int
    case: str
    view: TaskView


@dataclass(frozen=True)
class DialInfo:
    """What one attempt needs: who to call and what to say."""

    task: int
    case: str
    round: int
    city: str | None
    caller: str | None  # in clear: only ever passed to the number check and Asterisk
    matter: str | None


def iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None


class FollowUpStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData,
                 matter_name: Callable[[str | None], str]):
        self.sessions = sessions
        self.personal = personal
        self.matter_name = matter_name

    # -- making tasks -----------------------------------------------------------------------

    async def sync(self, now: datetime, max_attempts: int) -> int:
        """A task for every case waiting for 回访 in a round that has none yet."""
        async with self.sessions() as s, s.begin():
            rows = (await s.execute(
                select(CaseWork.case_id, CaseWork.round, CaseWork.city)
                .outerjoin(FollowUpTask, and_(FollowUpTask.case_id == CaseWork.case_id,
                                              FollowUpTask.round == CaseWork.round))
                .where(CaseWork.state == FOLLOW_UP, FollowUpTask.id.is_(None)).limit(500)
            )).all()
            made = 0
            for case_id, round_, city in rows:
                made += await self._insert(s, case_id, round_, city, "loop", "", now,
                                           max_attempts)
        return made

    async def _insert(self, s: AsyncSession, case_id: int, round_: int, city: str | None,
                      origin: str, by: str, now: datetime, max_attempts: int) -> int:
        dialect = s.bind.dialect.name if s.bind else "sqlite"
        ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(FollowUpTask)
        res = await s.execute(ins.values(
            case_id=case_id, round=round_, city=city, origin=origin, requested_by=by,
            state=PENDING, attempts=0, max_attempts=max_attempts, next_at=now, reason="",
            created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["case_id", "round"]))
        return int(getattr(res, "rowcount", 0) or 0)

    async def request(self, number: str, *, by: str, now: datetime, max_attempts: int
                      ) -> dict[str, Any]:
        """An operator's 回访 of a case (any state): the task of its current round, made now
        unless there is one; a finished one is not made again."""
        async with self.sessions() as s, s.begin():
            case = (await s.execute(select(Case).where(Case.number == number))
                    ).scalar_one_or_none()
            if case is None:
                raise DomainError("not_found", f"no case {number}")
            work = await s.get(CaseWork, case.id)
            round_ = work.round if work is not None else 0
            await self._insert(s, case.id, round_, case.city, "operator", by, now,
                               max_attempts)
            task = (await s.execute(select(FollowUpTask).where(
                FollowUpTask.case_id == case.id, FollowUpTask.round == round_))).scalar_one()
            if task.state not in ACTIVE:
                raise DomainError("conflict", f"case {number} was followed up already this "
                                              f"round ({task.state}: {task.outcome or ''})")
            return self._view(task, number)

    # -- reading ----------------------------------------------------------------------------

    async def active(self, limit: int = 200) -> list[DueTask]:
        async with self.sessions() as s:
            rows = (await s.execute(
                select(FollowUpTask, Case.number, CaseWork.state)
                .join(Case, Case.id == FollowUpTask.case_id)
                .outerjoin(CaseWork, CaseWork.case_id == FollowUpTask.case_id)
                .where(FollowUpTask.state.in_(ACTIVE))
                .order_by(FollowUpTask.next_at, FollowUpTask.id).limit(limit))).all()
        return [DueTask(t.id, number, TaskView(
            t.state, t.attempts, t.max_attempts, t.next_at, t.attempt_at, state, t.origin))
            for t, number, state in rows]

    async def calling(self) -> int:
        async with self.sessions() as s:
            return len((await s.execute(select(FollowUpTask.id).where(
                FollowUpTask.state == CALLING))).all())

    async def dial_info(self, task_id: int) -> DialInfo | None:
        async with self.sessions() as s:
            row = (await s.execute(
                select(FollowUpTask, Case, CaseWork.matter)
                .join(Case, Case.id == FollowUpTask.case_id)
                .outerjoin(CaseWork, CaseWork.case_id == FollowUpTask.case_id)
                .where(FollowUpTask.id == task_id))).first()
        if row is None:
            return None
        task, case, matter = row
        return DialInfo(task.id, case.number, task.round, task.city or case.city,
                        self.personal.decrypt(case.caller_enc), self.matter_name(matter))

    async def tasks(self, *, state: str | None = None, visible: Any = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            q = (select(FollowUpTask, Case.number).join(Case, Case.id == FollowUpTask.case_id)
                 .order_by(FollowUpTask.id.desc()).limit(limit))
            if state:
                q = q.where(FollowUpTask.state == state)
            if visible is not None:
                q = q.where(visible)
            rows = (await s.execute(q)).all()
        return [self._view(t, number) for t, number in rows]

    async def task(self, task_id: int) -> dict[str, Any] | None:
        async with self.sessions() as s:
            row = (await s.execute(select(FollowUpTask, Case.number).join(
                Case, Case.id == FollowUpTask.case_id).where(FollowUpTask.id == task_id))
            ).first()
        return self._view(row[0], row[1]) if row else None

    @staticmethod
    def _view(t: FollowUpTask, number: str) -> dict[str, Any]:
        return {"id": t.id, "case": number, "round": t.round, "city": t.city,
                "origin": t.origin, "requested_by": t.requested_by, "state": t.state,
                "attempts": t.attempts, "max_attempts": t.max_attempts,
                "next_at": iso(t.next_at), "attempt_at": iso(t.attempt_at),
                "last_outcome": t.last_outcome, "resolved": t.resolved,
                "satisfaction": t.satisfaction, "outcome": t.outcome, "reason": t.reason,
                "created_at": iso(t.created_at)}

    # -- changes ------------------------------------------------------------------------------

    async def _change(self, s: AsyncSession, task_id: int, where: list[Any],
                      values: dict[str, Any]) -> FollowUpTask | None:
        res = await s.execute(update(FollowUpTask).where(FollowUpTask.id == task_id, *where)
                              .values(**values).execution_options(synchronize_session=False))
        if not getattr(res, "rowcount", 0):
            return None
        return (await s.execute(select(FollowUpTask).where(FollowUpTask.id == task_id))
                ).scalar_one()

    async def _fact(self, s: AsyncSession, task: FollowUpTask, attempt: int, event: str,
                    at: datetime, **detail: Any) -> None:
        key = f"followup:{task.id}:{attempt}:{event}"
        seen = (await s.execute(select(CallEvent.id).where(
            CallEvent.case_id == task.case_id, CallEvent.key == key))).first()
        if seen is None:
            s.add(CallEvent(case_id=task.case_id, key=key, kind=f"followup.{event}"[:32],
                            at=at, source="followup",
                            detail={"task": task.id, "attempt": attempt, **detail}))

    async def begin_attempt(self, task_id: int, attempts: int, now: datetime) -> int | None:
        """Claim the next attempt (``attempts`` made so far); None: someone else did, or the
        task changed meanwhile. The claim is written before Asterisk is asked to dial: a
        worker that dies in between leaves an attempt that times out, never a second call."""
        async with self.sessions() as s, s.begin():
            task = await self._change(s, task_id, [
                FollowUpTask.state == PENDING, FollowUpTask.attempts == attempts],
                {"state": CALLING, "attempts": attempts + 1, "attempt_at": now,
                 "updated_at": now})
            if task is None:
                return None
            await self._fact(s, task, task.attempts, "dialing", now,
                             max_attempts=task.max_attempts)
            return task.attempts

    async def attempt_event(self, task_id: int, attempt: int, event: str, now: datetime,
                            **detail: Any) -> bool:
        """A moment of an attempt under way (the caller answered): a fact, nothing else."""
        async with self.sessions() as s, s.begin():
            task = await s.get(FollowUpTask, task_id)
            if task is None or task.attempts != attempt or task.state != CALLING:
                return False
            await self._fact(s, task, attempt, event, now, **detail)
            return True

    async def finish_attempt(self, task_id: int, attempt: int, outcome: str, now: datetime,
                             next_at: datetime | None, **detail: Any) -> bool:
        """An attempt that did not get both answers: back to pending (``next_at``: when the
        next may go; None: no more, the task gives up at its next look)."""
        async with self.sessions() as s, s.begin():
            task = await self._change(s, task_id, [
                FollowUpTask.state == CALLING, FollowUpTask.attempts == attempt],
                {"state": PENDING, "last_outcome": outcome, "next_at": next_at or now,
                 "updated_at": now})
            if task is None:
                return False
            await self._fact(s, task, attempt, outcome, now, next_at=iso(next_at), **detail)
            return True

    async def answers(self, task_id: int, attempt: int, resolved: bool, satisfaction: str,
                      now: datetime) -> bool:
        async with self.sessions() as s, s.begin():
            task = await self._change(s, task_id, [
                FollowUpTask.state == CALLING, FollowUpTask.attempts == attempt],
                {"state": ANSWERED, "last_outcome": "answered", "resolved": resolved,
                 "satisfaction": satisfaction, "updated_at": now})
            if task is None:
                return False
            await self._fact(s, task, attempt, "answers", now, resolved=resolved,
                             satisfaction=satisfaction)
            return True

    async def finish(self, task_id: int, *, state: str, outcome: str, now: datetime,
                     reason: str = "", expect: tuple[str, ...] = ACTIVE) -> bool:
        """The task ends: done (closed | reopened | recorded | unreached), refused (never
        dialled, ``reason`` says why) or cancelled."""
        assert state in (DONE, REFUSED, CANCELLED)
        async with self.sessions() as s, s.begin():
            task = await self._change(s, task_id, [FollowUpTask.state.in_(expect)], {
                "state": state, "outcome": outcome, "reason": reason[:256],
                "next_at": None, "updated_at": now})
            if task is None:
                return False
            await self._fact(s, task, task.attempts, outcome, now, reason=reason[:256])
            return True

    async def answered_task(self, task_id: int) -> tuple[str, bool, str] | None:
        """An answered task's case number and answers."""
        async with self.sessions() as s:
            row = (await s.execute(select(FollowUpTask, Case.number).join(
                Case, Case.id == FollowUpTask.case_id).where(
                FollowUpTask.id == task_id, FollowUpTask.state == ANSWERED))).first()
        if row is None or row[0].resolved is None or row[0].satisfaction is None:
            return None
        return row[1], bool(row[0].resolved), str(row[0].satisfaction)
