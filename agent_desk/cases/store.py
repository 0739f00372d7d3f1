"""The console's reads and writes on cases: the case form, search, detail, export, callback
tasks. Personal fields are encrypted here on the way in and decrypted on the way out
(common.privacy.PersonalData); every change is written with its audit entry in one
transaction (agent_desk/audit.py). Every read and change is limited to the asker's
``Scope`` (agent_desk/access.py): a case outside it is "not found"."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from agent_desk.access import Scope
from agent_desk.audit import Actor, Audit
from agent_desk.models import (
    CATEGORIES,
    CallbackTask,
    CaseForm,
    CaseFormVersion,
    FollowUpTask,
)
from cases.models import Case
from common.errors import DomainError
from common.privacy import PersonalData


class NotFound(DomainError):
    def __init__(self, message: str) -> None:
        super().__init__("not_found", message)


class Conflict(DomainError):
    """A change that does not fit the case or task now (stale, closed, busy, ...)."""


# Cases called back another way: keep my place (排队回呼) keeps the caller's own place.
NO_CALLBACK = ("keep_place",)


def iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


FORM_FIELDS = {"category": 16, "subject": 128, "address": 256, "content": 8000,
               "department": 64}
# Free text about the caller and the matter: encrypted. Category and department: clear.
PERSONAL_FORM_FIELDS = ("subject", "address", "content")
EXPORT_LIMIT = 10_000
EXPORT_COLUMNS = ("number", "created_at", "city", "dialed_number", "queue", "agent_id",
                  "outcome", "wait_seconds", "talk_seconds", "status", "closed_at", "caller",
                  "category", "subject", "address", "content", "department")


class ConsoleStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData,
                 timezone: str = "Asia/Shanghai"):
        self.sessions = sessions
        self.personal = personal
        self.tz = ZoneInfo(timezone)

    # -- finding cases ----------------------------------------------------------------------

    async def case_by(self, *, number: str | None, call_id: str | None = None) -> Case | None:
        """A case by its number, else by its call."""
        async with self.sessions() as s:
            if number:
                c = (await s.execute(select(Case).where(Case.number == number))
                     ).scalar_one_or_none()
                if c is not None:
                    return c
            if call_id:
                return (await s.execute(select(Case).where(Case.call_id == call_id))
                        ).scalar_one_or_none()
        return None

    async def earlier(self, case: Case, scope: Scope) -> list[dict[str, Any]]:
        """The same caller's five latest other cases the asker may see (the repeat-caller
        panel)."""
        if not case.caller_hash:
            return []
        async with self.sessions() as s:
            rows = (await s.execute(select(Case).where(
                Case.caller_hash == case.caller_hash, Case.id != case.id, scope.condition()
            ).order_by(Case.id.desc()).limit(5))).scalars().all()
        return [{"case": c.number, "created_at": c.created_at.isoformat(),
                 "status": "closed" if c.closed_at else "open", "outcome": c.outcome}
                for c in rows]

    # -- the case form ----------------------------------------------------------------------

    async def _case(self, s: AsyncSession, number: str, scope: Scope, *,
                    for_update: bool = False) -> Case:
        """The case if the asker may see it; "not found" either way otherwise (case numbers
        are sequential: a refusal must not tell that one exists)."""
        q = select(Case).where(Case.number == number, scope.condition())
        if for_update:
            q = q.with_for_update()
        case = (await s.execute(q)).scalar_one_or_none()
        if case is None:
            raise NotFound(f"no case {number}")
        return case

    async def visible(self, number: str, scope: Scope) -> Case:
        """The case, if the asker may see it (else NotFound)."""
        async with self.sessions() as s:
            return await self._case(s, number, scope)

    async def save_form(self, number: str, values: dict[str, str], *, by: str, scope: Scope,
                        version: int | None = None, actor: Actor | None = None
                        ) -> dict[str, Any]:
        """Save (part of) the form. ``version``: the version the agent edited; a newer one in
        the database means someone else saved in between (Conflict). A closed case's form is
        frozen (Conflict "closed"). Each save appends the whole form, encrypted, to
        case_form_versions (the earlier text stays). The audit entry (which fields, not their
        values) commits with the change."""
        if "category" in values and values["category"] not in CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
        async with self.sessions() as s, s.begin():
            # Locked: a close and a save of the same case do not interleave.
            case = await self._case(s, number, scope, for_update=True)
            if case.closed_at is not None:
                raise Conflict("closed", f"case {number} is closed: its form can no longer "
                                         f"be changed")
            form = (await s.execute(select(CaseForm).where(CaseForm.case_id == case.id))
                    ).scalar_one_or_none()
            if form is None:
                form = CaseForm(case_id=case.id, department="", version=0)
                s.add(form)
            if version is not None and version != form.version:
                raise Conflict("stale", f"the case was saved by {form.updated_by} in the "
                                        f"meantime (version {form.version}); reload it")
            if form.version and (await s.execute(select(CaseFormVersion.id).where(
                    CaseFormVersion.case_id == case.id,
                    CaseFormVersion.version == form.version))).first() is None:
                # A form saved before versions were kept (0008_access): its state first.
                s.add(self._version(case.id, form, [], form.updated_by or "",
                                    form.updated_at))
            for k, v in values.items():
                if k in PERSONAL_FORM_FIELDS:
                    setattr(form, f"{k}_enc", self.personal.encrypt(v))
                else:
                    setattr(form, k, v)
            form.updated_by = by
            form.version = (form.version or 0) + 1
            form.updated_at = datetime.now(UTC)
            s.add(self._version(case.id, form, sorted(values), by, form.updated_at))
            if actor is not None:
                Audit.add(s, actor, "case.form", number,
                          {"fields": sorted(values), "version": form.version})
            await s.flush()
            return self._form(form)

    def _version(self, case_id: int, form: CaseForm, fields: list[str], by: str,
                 at: datetime | None) -> CaseFormVersion:
        """The form as it is now, as an appended, encrypted version."""
        state = {k: v for k, v in self._form(form).items()
                 if k in ("category", *PERSONAL_FORM_FIELDS, "department")}
        return CaseFormVersion(
            case_id=case_id, version=form.version, fields=fields, saved_by=by,
            saved_at=at or datetime.now(UTC),
            values_enc=self.personal.encrypt(json.dumps(state, ensure_ascii=False)))

    async def form_versions(self, number: str, scope: Scope) -> list[dict[str, Any]]:
        """Every saved state of the case's form, oldest first (blank once purged)."""
        async with self.sessions() as s:
            case = await self._case(s, number, scope)
            rows = (await s.execute(select(CaseFormVersion).where(
                CaseFormVersion.case_id == case.id).order_by(CaseFormVersion.version))
                    ).scalars().all()
        out = []
        for v in rows:
            text = self.personal.decrypt_text(v.values_enc)
            values: dict[str, Any] = json.loads(text) if text else {}
            out.append({"version": v.version, "saved_by": v.saved_by,
                        "saved_at": iso(v.saved_at), "fields": list(v.fields or []),
                        "values": values, "purged": v.values_enc is None})
        return out

    def _form(self, form: CaseForm | None) -> dict[str, Any]:
        if form is None:
            return {"category": None, "subject": "", "address": "", "content": "",
                    "department": "", "version": 0, "updated_by": "", "updated_at": None}
        dec = self.personal.decrypt_text
        return {"category": form.category, "subject": dec(form.subject_enc),
                "address": dec(form.address_enc), "content": dec(form.content_enc),
                "department": form.department, "version": form.version,
                "updated_by": form.updated_by, "updated_at": iso(form.updated_at)}

    async def close(self, number: str, actor: Actor, scope: Scope
                    ) -> tuple[Case, str | None]:
        """办结, with its audit entry in the same transaction. Returns the case and the
        caller's look-up hash (the repeat-caller look-up forgets it)."""
        async with self.sessions() as s, s.begin():
            case = await self._case(s, number, scope, for_update=True)
            if case.closed_at is not None:
                raise Conflict("closed", f"case {number} is already closed")
            case.closed_at = datetime.now(UTC)
            Audit.add(s, actor, "case.close", number)
            return case, case.caller_hash

    # -- reading ----------------------------------------------------------------------------

    def caller_of(self, case: Case, *, clear: bool) -> str:
        return ((self.personal.decrypt(case.caller_enc) if clear else None)
                or case.caller_masked or "")

    def summary(self, case: Case, form: CaseForm | None, *, clear: bool) -> dict[str, Any]:
        return {
            "number": case.number, "call_id": case.call_id,
            "caller": self.caller_of(case, clear=clear),
            "city": case.city, "dialed_number": case.dialed_number, "queue": case.queue,
            "agent_id": case.agent_id, "route_reasons": case.route_reasons,
            "priority": case.priority, "flags": case.flags or [],
            "outcome": case.outcome, "call_state": case.call_state,
            "status": "closed" if case.closed_at else "open",
            "created_at": iso(case.created_at), "answered_at": iso(case.answered_at),
            "ended_at": iso(case.ended_at), "wait_seconds": case.wait_seconds,
            "talk_seconds": case.talk_seconds, "closed_at": iso(case.closed_at),
            "rating": case.rating,
            "category": form.category if form else None,
            "subject": self.personal.decrypt_text(form.subject_enc) if form else "",
        }

    def _query(self, scope: Scope, *, caller_hash: str | None = None,
               day_from: date | None = None, day_to: date | None = None,
               city: str | None = None, category: str | None = None,
               status: str | None = None) -> Any:
        q = select(Case, CaseForm).outerjoin(CaseForm, CaseForm.case_id == Case.id).where(
            scope.condition())
        if caller_hash:
            q = q.where(Case.caller_hash == caller_hash)
        if day_from:
            q = q.where(Case.created_at >= datetime.combine(day_from, time(), self.tz))
        if day_to:
            q = q.where(Case.created_at < datetime.combine(day_to + timedelta(days=1), time(),
                                                           self.tz))
        if city:
            q = q.where(Case.city == city)
        if category:
            q = q.where(CaseForm.category == category)
        if status == "open":
            q = q.where(Case.closed_at.is_(None))
        elif status == "closed":
            q = q.where(Case.closed_at.is_not(None))
        return q

    async def search(self, scope: Scope, *, caller_hash: str | None = None,
                     day_from: date | None = None, day_to: date | None = None,
                     city: str | None = None, category: str | None = None,
                     status: str | None = None, limit: int = 50, offset: int = 0,
                     clear: bool = False) -> dict[str, Any]:
        q = self._query(scope, caller_hash=caller_hash, day_from=day_from, day_to=day_to, city=city,
                        category=category, status=status)
        async with self.sessions() as s:
            total = (await s.execute(select(func.count()).select_from(q.subquery()))
                     ).scalar_one()
            rows = (await s.execute(q.order_by(Case.id.desc()).limit(limit).offset(offset))
                    ).all()
        return {"total": int(total),
                "cases": [self.summary(c, f, clear=clear) for c, f in rows]}

    async def export(self, actor: Actor, scope: Scope, *, clear: bool, fmt: str,
                     **filters: Any) -> tuple[list[dict[str, Any]], str]:
        """Cases for an export (at most EXPORT_LIMIT), the caller masked unless ``clear``.
        Each exported case gets an audit entry (one export id), written before the data
        leaves."""
        q = self._query(scope, **filters)
        async with self.sessions() as s:
            total = (await s.execute(select(func.count()).select_from(q.subquery()))
                     ).scalar_one()
            if total > EXPORT_LIMIT:
                raise Conflict("too_many", f"{total} cases match; narrow the export to at most "
                                           f"{EXPORT_LIMIT} (from, to, city, category, status)")
            rows = (await s.execute(q.order_by(Case.id))).all()
        out = []
        for c, f in rows:
            form = self._form(f)
            out.append({"number": c.number, "created_at": iso(c.created_at), "city": c.city,
                        "dialed_number": c.dialed_number, "queue": c.queue,
                        "agent_id": c.agent_id, "outcome": c.outcome,
                        "wait_seconds": c.wait_seconds, "talk_seconds": c.talk_seconds,
                        "status": "closed" if c.closed_at else "open",
                        "closed_at": iso(c.closed_at), "caller": self.caller_of(c, clear=clear),
                        **{k: form[k] for k in ("category", "subject", "address", "content",
                                                "department")}})
        export_id = secrets.token_hex(6)
        await Audit(self.sessions).record_many(
            actor, "case.export", [r["number"] for r in out],
            {"export": export_id, "format": fmt, "clear": clear,
             "filters": {k: str(v) for k, v in filters.items()
                         if v is not None and k != "caller_hash"},
             "by_number": bool(filters.get("caller_hash"))})
        return out, export_id

    def _timeline_detail(self, detail: dict[str, Any] | None) -> dict[str, Any]:
        d = dict(detail or {})
        if "note_enc" in d:
            d["note"] = self.personal.decrypt_text(d.pop("note_enc"))
        return d

    async def detail(self, number: str, *, clear: bool, scope: Scope) -> dict[str, Any]:
        async with self.sessions() as s:
            case = (await s.execute(select(Case).where(
                    Case.number == number, scope.condition()).options(
                selectinload(Case.events), selectinload(Case.legs)))).scalar_one_or_none()
            if case is None:
                raise NotFound(f"no case {number}")
            form = (await s.execute(select(CaseForm).where(CaseForm.case_id == case.id))
                    ).scalar_one_or_none()
            cb = (await s.execute(select(CallbackTask).where(CallbackTask.case_id == case.id))
                  ).scalar_one_or_none()
        out = self.summary(case, form, clear=clear)
        out.update(
            form=self._form(form),
            timeline=[{"kind": e.kind, "at": iso(e.at),
                       "detail": self._timeline_detail(e.detail),
                       "source": e.source} for e in case.events],
            legs=[{"role": leg.role, "party": leg.party, "started_at": iso(leg.started_at),
                   "answered_at": iso(leg.answered_at), "ended_at": iso(leg.ended_at),
                   "outcome": leg.outcome} for leg in case.legs],
            transfers=[{"destination": t.destination, "name": t.name, "kind": t.kind,
                        "mode": t.mode, "outcome": t.outcome, "dialed_at": iso(t.dialed_at),
                        "answered_at": iso(t.answered_at), "ended_at": iso(t.ended_at),
                        "handed_off": t.handed_off, "reason": t.reason}
                       for t in case.transfers],
            callback=self._task(cb) if cb else None,
        )
        return out

    # -- callbacks --------------------------------------------------------------------------

    def _task(self, t: CallbackTask, case: Case | None = None) -> dict[str, Any]:
        out = {"id": t.id, "status": t.status, "attempts": t.attempts,
               "max_attempts": t.max_attempts, "outcome": t.outcome, "city": t.city,
               "reason": t.reason or "abandoned",
               "queue": t.queue, "log": [self._timeline_detail(e) for e in (t.log or [])],
               "created_at": iso(t.created_at)}
        if case is not None:
            out.update(case=case.number, caller=case.caller_masked or "")
        return out

    async def callback_for_call(self, call_id: str, max_attempts: int, reason: str = "abandoned"
                                ) -> dict[str, Any] | None:
        """A callback task for the case of a call nobody answered (once per case): the caller
        gave up in the queue, left a message, asked for a callback, or hung up before the
        queue. ``reason`` is the task's first log entry."""
        try:
            async with self.sessions() as s, s.begin():
                case = (await s.execute(select(Case).where(Case.call_id == call_id))
                        ).scalar_one_or_none()
                if case is None or not case.caller_enc:
                    return None
                if case.answered_at is not None or (
                        case.outcome in NO_CALLBACK and reason != "keep_place_failed"):
                    return None  # answered, or called back another way (keep my place)
                if (await s.execute(select(CallbackTask.id).where(
                        CallbackTask.case_id == case.id))).first() is not None:
                    return {}  # made already (another web process, a repeated event)
                task = CallbackTask(case_id=case.id, city=case.city, queue=case.queue,
                                    status="pending", attempts=0, log=[], reason=reason,
                                    max_attempts=max_attempts)
                s.add(task)
                await s.flush()
                return self._task(task, case)
        except IntegrityError:
            return {}

    async def callback_for_case(self, case_id: int, max_attempts: int, reason: str
                                ) -> dict[str, Any] | None:
        """A callback task for a case whatever its call (a 回访 that reached nobody): once per
        case, like every callback task."""
        try:
            async with self.sessions() as s, s.begin():
                case = (await s.execute(select(Case).where(Case.id == case_id))
                        ).scalar_one_or_none()
                if case is None or not case.caller_enc:
                    return None
                if (await s.execute(select(CallbackTask.id).where(
                        CallbackTask.case_id == case.id))).first() is not None:
                    return {}
                task = CallbackTask(case_id=case.id, city=case.city, queue=case.queue,
                                    status="pending", attempts=0, log=[], reason=reason,
                                    max_attempts=max_attempts)
                s.add(task)
                await s.flush()
                return self._task(task, case)
        except IntegrityError:
            return {}

    async def unreached_follow_ups(self, since: datetime, limit: int = 500) -> list[int]:
        """Cases whose 回访 reached nobody since ``since`` and have no callback task yet."""
        q = (select(FollowUpTask.case_id)
             .outerjoin(CallbackTask, CallbackTask.case_id == FollowUpTask.case_id)
             .where(FollowUpTask.outcome == "unreached", FollowUpTask.updated_at >= since,
                    CallbackTask.id.is_(None))
             .distinct().limit(limit))
        async with self.sessions() as s:
            return [int(c) for c in (await s.execute(q)).scalars()]

    async def calls_without_callback(self, since: datetime, limit: int = 1000) -> list[str]:
        """Calls ended unanswered since ``since`` whose case has no callback task (what a
        worker stopped between the end and the task missed): oldest first."""
        q = (select(Case.call_id).outerjoin(CallbackTask, CallbackTask.case_id == Case.id)
             .where(Case.call_id.is_not(None), Case.call_state == "ended",
                    Case.answered_at.is_(None), Case.caller_enc.is_not(None),
                    Case.ended_at >= since, CallbackTask.id.is_(None),
                    or_(Case.outcome.is_(None), Case.outcome.not_in(NO_CALLBACK)))
             .order_by(Case.ended_at).limit(limit))
        async with self.sessions() as s:
            return [str(c) for c in (await s.execute(q)).scalars()]

    async def callbacks(self, scope: Scope, *, status: str | None = None,
                        city: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        q = select(CallbackTask, Case).join(Case, Case.id == CallbackTask.case_id).where(
            scope.task_condition())
        if status:
            q = q.where(CallbackTask.status == status)
        if city:
            q = q.where(CallbackTask.city == city)
        async with self.sessions() as s:
            rows = (await s.execute(q.order_by(CallbackTask.id.desc()).limit(limit))).all()
        return [self._task(t, c) for t, c in rows]

    async def _task_row(self, s: AsyncSession, task_id: int, scope: Scope) -> CallbackTask:
        task = (await s.execute(select(CallbackTask).where(
            CallbackTask.id == task_id, scope.task_condition()).with_for_update())
                ).scalar_one_or_none()
        if task is None:
            raise NotFound(f"no callback task {task_id}")
        return task

    async def begin_callback(self, task_id: int, agent_id: str, scope: Scope,
                             actor: Actor | None = None) -> tuple[dict[str, Any], str]:
        """Count an attempt (bounded) and return the task and the number to dial (decrypted
        for the dial only: the agent's page never gets it). Audited with the attempt."""
        async with self.sessions() as s, s.begin():
            task = await self._task_row(s, task_id, scope)
            case = await s.get(Case, task.case_id)
            assert case is not None
            if task.status == "calling":
                raise Conflict("busy", "this callback is being made right now")
            if task.status in ("done", "failed", "cancelled"):
                raise Conflict("finished", f"this callback is already {task.status}")
            if task.attempts >= task.max_attempts:
                raise Conflict("exhausted", "no attempts left")
            number = self.personal.decrypt(case.caller_enc)
            if not number:
                raise Conflict("no_number", "the case has no caller number")
            task.attempts += 1
            task.status = "calling"
            task.log = [*(task.log or []), {"at": datetime.now(UTC).isoformat(),
                                            "agent": agent_id, "attempt": task.attempts,
                                            "event": "dialing"}]
            if actor is not None:
                Audit.add(s, actor, "callback.call", case.number,
                          {"task": task.id, "attempt": task.attempts})
            await s.flush()
            return self._task(task, case), number

    async def finish_callback(self, task_id: int, outcome: str, *, by: str, scope: Scope,
                              note: str = "", actor: Actor | None = None) -> dict[str, Any]:
        """Record an attempt's outcome: reached closes the task; otherwise it stays pending
        until the attempts are used up."""
        async with self.sessions() as s, s.begin():
            task = await self._task_row(s, task_id, scope)
            case = await s.get(Case, task.case_id)
            if task.status in ("done", "failed", "cancelled"):
                raise Conflict("finished", f"this callback is already {task.status}")
            task.outcome = outcome
            if outcome == "reached":
                task.status = "done"
            elif outcome == "cancelled":
                task.status = "cancelled"
            else:
                task.status = "failed" if task.attempts >= task.max_attempts else "pending"
            entry = {"at": datetime.now(UTC).isoformat(), "agent": by,
                     "attempt": task.attempts, "event": outcome}
            if note:
                entry["note_enc"] = self.personal.encrypt(note[:200])
            task.log = [*(task.log or []), entry]
            if actor is not None and case is not None:
                Audit.add(s, actor, "callback.outcome", case.number,
                          {"task": task.id, "attempt": task.attempts, "outcome": outcome})
            await s.flush()
            return self._task(task, case)
