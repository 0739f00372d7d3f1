"""The department's side of the case loop, and the 承办单位 directory's administration.

A department (its staff in the console, or its own system by API token) sees the cases
dispatched to it — the latest round of each, overdue first — and what it needs to work on
one: the 事项, the 诉求类型, the text of the form, its own dispatch (due dates, its replies,
the reasons it gave), the hotline's instructions (派单, 退回 of a reply, 重办), and the caller's
number masked unless it must call the caller back (rules.py). It signs for a case (签收),
returns it (退单), notes its work, answers (答复) and asks for more time (延期申请), all through
the case loop's store (cases/loop/store.py ``CaseLoop.act``), whose ``decide()`` says what may
happen. Every read and change is limited to the department's ``Scope`` (a case not dispatched
to it does not exist: 404) and audited as whoever did it: the user, or ``api:<dept>#<token>``.

Admins keep the directory: departments (levels, functional unit, parent, city) created,
edited and deactivated one by one or from CSV (cases/loop/directory.py), the default
department per 事项 and city, each change audited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.access import Scope
from agent_desk.audit import Actor, Audit
from agent_desk.departments import rules
from agent_desk.models import CaseForm, WebUser
from agent_desk.web.deps import CaseLoopDesk
from agent_desk.web.routes import FORMULA_START
from cases.loop import states as st
from cases.loop.directory import DirectoryError, parse_csv, to_csv
from cases.loop.models import LEVELS, CaseWork, Department, DepartmentDefault, Dispatch
from cases.loop.store import DepartmentEntry, Details, LoopChange
from cases.models import Case
from common.db import utcnow
from common.errors import DomainError
from common.privacy import PersonalData

# The lists a department works from (the page's tabs): what is to do (待签收 and 办理中), each
# dispatch state, or everything.
TABS = ("todo", "pending", "signed", "replied", "returned", "all")
# What a department does, and the loop's command for each.
ACTIONS = {"sign": "sign", "return": "return", "note": "note", "reply": "reply",
           "extension": "request_extension"}
# Facts whose reason the department is told although the hotline wrote it: the dispatch's
# instructions, why a reply was sent back, why the case was reopened, the extension decision.
HOTLINE_WORDS = ("loop.dispatch", "loop.review", "loop.reopen", "loop.decide_extension")


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None


def _dept_dict(d: Department, names: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "level": d.level, "city": d.city,
            "parent": d.parent_id, "parent_name": (names or {}).get(d.parent_id or "", ""),
            "unit": d.unit, "webhook_url": d.webhook_url, "active": bool(d.active)}


def _entry(d: Department) -> DepartmentEntry:
    return DepartmentEntry(d.id, d.name, d.level, d.city, d.parent_id, d.unit, d.webhook_url,
                           bool(d.active))


class DepartmentDesk:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData,
                 loop: CaseLoopDesk, audit: Audit, cities: Mapping[str, str], *,
                 yellow_share: float = 0.8, clock: Callable[[], datetime] = utcnow):
        self.sessions = sessions
        self.personal = personal
        self.loop = loop
        self.audit = audit
        self.cities = dict(cities)  # id: display name
        self.yellow_share = yellow_share
        self.clock = clock

    # -- the department's cases --------------------------------------------------------------

    async def department(self, department: str | None) -> dict[str, Any]:
        async with self.sessions() as s:
            d = await s.get(Department, department or "")
        if d is None:
            raise DomainError("not_found", f"no department {department}")
        return _dept_dict(d)

    @staticmethod
    def _need_department(scope: Scope) -> str:
        if scope.role != st.DEPARTMENT or not scope.department:
            raise DomainError("forbidden", "for a department's staff or system only")
        return scope.department

    def _latest(self, department: str) -> Any:
        """The latest round of each case in which the department has a live dispatch."""
        return select(Dispatch.case_id, func.max(Dispatch.round).label("round")).where(
            Dispatch.department_id == department, Dispatch.state != st.CANCELLED
        ).group_by(Dispatch.case_id).subquery()

    async def cases(self, scope: Scope, who: Actor, *, tab: str = "todo", limit: int = 50,
                    offset: int = 0, via: str = "console") -> dict[str, Any]:
        """The department's cases in ``tab``, overdue first, then by the nearest time limit;
        the number in each tab; the department."""
        dept = self._need_department(scope)
        if tab not in TABS:
            raise DomainError("invalid", f"tab: one of {', '.join(TABS)}")
        now = self.clock()
        latest = self._latest(dept)

        def joined(*cols: Any) -> Any:
            return select(*cols).join(
                latest, and_(latest.c.case_id == Dispatch.case_id,
                             latest.c.round == Dispatch.round)
            ).join(CaseWork, CaseWork.case_id == Dispatch.case_id).join(
                Case, Case.id == Dispatch.case_id
            ).where(Dispatch.department_id == dept, scope.condition())

        overdue = case((and_(Dispatch.state == st.PENDING, Dispatch.sign_due_at < now), 0),
                       (and_(Dispatch.state == st.SIGNED, Dispatch.due_at < now), 0),
                       else_=1)
        limit_at = case((Dispatch.state == st.PENDING, Dispatch.sign_due_at),
                        (Dispatch.state == st.SIGNED, Dispatch.due_at), else_=None)
        q = joined(Dispatch, CaseWork, Case, CaseForm.subject_enc).outerjoin(
            CaseForm, CaseForm.case_id == Dispatch.case_id)
        if tab == "todo":
            q = q.where(Dispatch.state.in_((st.PENDING, st.SIGNED)))
        elif tab != "all":
            q = q.where(Dispatch.state == tab)
        async with self.sessions() as s:
            counted = (await s.execute(joined(Dispatch.state, overdue, func.count())
                                       .group_by(Dispatch.state, overdue))).all()
            rows = (await s.execute(q.order_by(
                overdue, limit_at.asc().nulls_last(), Dispatch.dispatched_at.desc(),
                Dispatch.id.desc()).limit(limit).offset(offset))).all()
            info = await s.get(Department, dept)
        await self.audit.record(who, "cases.search", None, {
            "department": dept, "tab": tab, "via": via, "cases": len(rows)})
        return {"department": _dept_dict(info) if info else {"id": dept, "name": dept},
                "tab": tab, "counts": self._counts(counted),
                "cases": [self._item(d, w, c, subject, now) for d, w, c, subject in rows]}

    @staticmethod
    def _counts(rows: Sequence[Any]) -> dict[str, int]:
        out = {k: 0 for k in ("pending", "signed", "replied", "returned", "overdue")}
        for state, late, n in rows:
            if state in out:
                out[state] += int(n)
            if late == 0:
                out["overdue"] += int(n)
        out["todo"] = out["pending"] + out["signed"]
        return out

    def _light(self, d: Dispatch, w: CaseWork, now: datetime) -> str:
        return rules.light(d.state, d.dispatched_at, d.sign_due_at, d.due_at, now,
                           yellow_share=self.yellow_share,
                           swept=w.light if d.role == st.LEAD else "none")

    def _item(self, d: Dispatch, w: CaseWork, c: Case, subject: str | None, now: datetime
              ) -> dict[str, Any]:
        tax = self.loop.taxonomy
        limit = rules.deadline(d.state, d.sign_due_at, d.due_at)
        return {
            "number": c.number, "state": w.state, "dispatch_state": d.state, "role": d.role,
            "round": d.round, "city": c.city, "city_name": self.cities.get(c.city or "", ""),
            "district": w.district,
            "district_name": self.loop.district_name(c.city, w.district), "channel": w.channel,
            "appeal_type": w.appeal_type,
            "appeal_type_name": tax.appeal_types.get(w.appeal_type or "", ""),
            "matter": w.matter, "matter_name": tax.path_names(w.matter),
            "subject": self.personal.decrypt_text(subject),
            "dispatched_at": _iso(d.dispatched_at), "sign_due_at": _iso(d.sign_due_at),
            "due_at": _iso(d.due_at), "signed_at": _iso(d.signed_at),
            "replied_at": _iso(d.replied_at), "returned_at": _iso(d.returned_at),
            "deadline": _iso(limit), "overdue": bool(limit and now > limit),
            "light": self._light(d, w, now), "supervised": bool(w.supervised),
            "extension_state": d.extension_state,
        }

    async def case(self, number: str, scope: Scope, who: Actor, *, via: str = "console",
                   record: bool = True) -> dict[str, Any]:
        """One case as the department needs it (``record``: audit the reading)."""
        dept = self._need_department(scope)
        now = self.clock()
        async with self.sessions() as s:
            c = (await s.execute(select(Case).where(Case.number == number, scope.condition()))
                 ).scalar_one_or_none()
            if c is None:
                raise DomainError("not_found", f"no case {number}")
            w = await s.get(CaseWork, c.id)
            mine = list((await s.execute(select(Dispatch).where(
                Dispatch.case_id == c.id, Dispatch.department_id == dept,
                Dispatch.state != st.CANCELLED).order_by(Dispatch.round.desc()))).scalars())
            form = (await s.execute(select(CaseForm).where(CaseForm.case_id == c.id))
                    ).scalar_one_or_none()
        if w is None or not mine:
            raise DomainError("not_found", f"no case {number}")
        current = mine[0]
        view = await self.loop.view(number, visible=scope.condition())
        clear = rules.caller_in_clear(role=current.role, dispatch_state=current.state,
                                      appeal_type=w.appeal_type)
        caller = (self.personal.decrypt(c.caller_enc) if clear else None) or c.caller_masked
        if record:
            await self.audit.record(who, "case.view", number, {
                "department": dept, "via": via, "caller": "clear" if clear else "masked"})
        dec = self.personal.decrypt_text
        this_round = [x for x in view["dispatches"] if x["round"] == w.round]
        return {
            **self._item(current, w, c, form.subject_enc if form else None, now),
            "department": dept, "accepted_at": _iso(w.accepted_at),
            "caller": caller or "", "caller_clear": bool(clear and caller),
            "form": {"subject": dec(form.subject_enc) if form else "",
                     "address": dec(form.address_enc) if form else "",
                     "content": dec(form.content_enc) if form else ""},
            "dispatches": [x for x in view["dispatches"] if x["department"] == dept],
            "others": [{"department": x["department"], "department_name": x["department_name"],
                        "role": x["role"], "state": x["state"]}
                       for x in this_round if x["department"] != dept],
            "timeline": [self._fact(f, dept) for f in view["timeline"]],
            "actions": self.allowed(view, dept, w.round),
        }

    @staticmethod
    def _fact(f: dict[str, Any], dept: str) -> dict[str, Any]:
        """A fact of the case's loop, as far as the department is concerned: what happened
        and when; who and why only for its own acts and the hotline's words to it."""
        own = f.get("department") == dept and f.get("role") == st.DEPARTMENT
        out = {"kind": f["kind"], "at": f["at"], "own": own}
        if own:
            out["by"] = f.get("by", "")
        if (own or f["kind"] in HOTLINE_WORDS) and f.get("reason"):
            out["reason"] = f["reason"]
        for k in ("days", "contacted", "accept"):
            if own and k in f:
                out[k] = f[k]
        return out

    @staticmethod
    def allowed(view: dict[str, Any], dept: str, round_: int) -> list[str]:
        """What the department may do now (the loop's ``decide()`` asked for each)."""
        work = st.WorkView(
            state=view["state"], classified=bool(view["appeal_type"] and view["matter"]),
            round=round_, dispatches=tuple(
                st.DispatchView(x["department"], x["role"], x["state"],
                                x["extension"]["state"])
                for x in view["dispatches"] if x["round"] == round_))
        actor = st.Actor("-", st.DEPARTMENT, dept)
        out = []
        for name, action in ACTIONS.items():
            try:
                st.decide(work, actor, st.Command(action, reason="-", days=1))
            except DomainError:
                continue
            out.append(name)
        return out

    async def act(self, number: str, action: str, scope: Scope, who: Actor, *,
                  text: str = "", contacted: bool | None = None, days: int = 0,
                  idempotency_key: str | None = None, via: str = "console"
                  ) -> dict[str, Any]:
        """签收 (sign), 退单 (return, text: why), 办理备注 (note), 答复 (reply, text and whether
        the caller was contacted), 延期申请 (extension: days and why). A retry with the same
        ``idempotency_key`` changes nothing and answers the case as it is."""
        dept = self._need_department(scope)
        if action not in ACTIONS:
            raise DomainError("invalid", f"action: one of {', '.join(ACTIONS)}")
        cmd = st.Command(ACTIONS[action], reason=text, days=days)
        details = Details(contacted=contacted) if action == "reply" else None
        # Keys are the department's own: two departments' "1" are different requests. The
        # store keeps 100 characters of a key: a longer one goes by its hash.
        key = None
        if idempotency_key:
            key = f"{dept}:{idempotency_key}"
            if len(key) > 100:
                key = f"{dept}:sha256:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"[:100]
        changed: list[LoopChange] = []

        def witness(session: AsyncSession, change: LoopChange) -> None:
            # In the change's own transaction: no change without its audit entry.
            detail: dict[str, Any] = {"action": action, "department": dept, "via": via,
                                      "state": change.state}
            if idempotency_key:
                detail["idempotency_key"] = idempotency_key
            self.audit.add(session, who, "case.loop", number, detail)
            changed.append(change)

        await self.loop.act(number, st.Actor(who.user, st.DEPARTMENT, dept), cmd, details,
                            visible=scope.condition(), idempotency_key=key, witness=witness)
        view = await self.case(number, scope, who, via=via, record=False)
        # The case it answers with is a reading too: audited, saying whether the caller's
        # number was shown in clear (a retry that changed nothing is only this).
        await self.audit.record(who, "case.view", number, {
            "after": action, "changed": bool(changed), "via": via,
            "caller": "clear" if view["caller_clear"] else "masked"})
        return view

    # -- the directory (admins) ---------------------------------------------------------------

    async def directory(self, *, city: str | None = None, include_inactive: bool = False
                        ) -> list[dict[str, Any]]:
        rows = await self.loop.departments(city=city, active_only=not include_inactive)
        names = {d.id: d.name for d in await self.loop.departments(active_only=False)}
        return [{**_dept_dict(d, names), "city_name": self.cities.get(d.city or "", "")}
                for d in rows]

    def city_names(self) -> dict[str, str]:
        return dict(self.cities)

    async def _check(self, entries: Sequence[DepartmentEntry]) -> None:
        """What the directory's own rules need beyond an entry's: known cities, parents that
        exist (in the directory or among the entries) and no department its own ancestor."""
        problems = [p for e in entries for p in e.problems()]
        parents = {d.id: d.parent_id for d in await self.loop.departments(active_only=False)}
        parents.update({e.id: e.parent_id for e in entries})
        for e in entries:
            if e.name.startswith(FORMULA_START) or e.unit.startswith(FORMULA_START):
                # The directory goes to spreadsheets as CSV, verbatim (a round trip).
                problems.append(f"{e.id}.name: may not start with = + - @")
            if e.city is not None and e.city not in self.cities:
                problems.append(f"{e.id}.city: unknown city {e.city!r}")
            if e.parent_id is not None and e.parent_id not in parents:
                problems.append(f"{e.id}.parent: unknown department {e.parent_id!r}")
            seen, cur = {e.id}, e.parent_id
            while cur is not None and cur in parents:
                if cur in seen:
                    problems.append(f"{e.id}.parent: {e.parent_id!r} would make a loop")
                    break
                seen.add(cur)
                cur = parents[cur]
        if problems:
            raise DomainError("invalid", "; ".join(problems))

    async def save(self, entry: DepartmentEntry, who: Actor, *, keep_webhook: bool = True
                   ) -> dict[str, Any]:
        """Create or edit one department. ``keep_webhook``: an edit that does not name the
        webhook keeps the one set (agent_desk/webhooks manages it)."""
        async with self.sessions() as s:
            old = await s.get(Department, entry.id)
        if old is not None and keep_webhook:
            entry = replace(entry, webhook_url=old.webhook_url)
        await self._check([entry])
        await self.loop.upsert_departments([entry])
        changed = sorted(k for k, v in (
            ("name", entry.name), ("level", entry.level), ("city", entry.city),
            ("parent", entry.parent_id), ("unit", entry.unit), ("active", entry.active),
            ("webhook_url", entry.webhook_url)) if old is None or v != {
            "name": old.name, "level": old.level, "city": old.city, "parent": old.parent_id,
            "unit": old.unit, "active": bool(old.active), "webhook_url": old.webhook_url}[k])
        await self.audit.record(who, "directory.change", None, {
            "department": entry.id, "created": old is None, "fields": changed})
        return await self._one(entry.id)

    async def _one(self, department: str) -> dict[str, Any]:
        async with self.sessions() as s:
            d = await s.get(Department, department)
            if d is None:
                raise DomainError("not_found", f"no department {department}")
            parent = await s.get(Department, d.parent_id) if d.parent_id else None
        return _dept_dict(d, {parent.id: parent.name} if parent else {})

    async def set_active(self, department: str, active: bool, who: Actor) -> dict[str, Any]:
        """Deactivate (no new dispatches, its API tokens refused) or activate again."""
        async with self.sessions() as s:
            d = await s.get(Department, department)
        if d is None:
            raise DomainError("not_found", f"no department {department}")
        if bool(d.active) != active:
            await self.loop.upsert_departments([replace(_entry(d), active=active)])
            await self.audit.record(who, "directory.change", None, {
                "department": department, "created": False, "fields": ["active"],
                "active": active})
        return await self._one(department)

    async def import_csv(self, text: str, who: Actor, *, dry_run: bool = False
                         ) -> dict[str, Any]:
        """Departments from CSV (id,name,level,city,parent,unit,webhook_url): new ones
        created, known ones updated (and active); none removed. ``dry_run``: check only."""
        try:
            entries = parse_csv(text, "csv")
        except DirectoryError as exc:
            raise DomainError("invalid", str(exc)) from None
        ids = [e.id for e in entries]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise DomainError("invalid", f"csv: ids listed twice: {', '.join(twice)}")
        await self._check(entries)
        known = {d.id for d in await self.loop.departments(active_only=False)}
        created = sum(1 for e in entries if e.id not in known)
        if not dry_run and entries:
            await self.loop.upsert_departments(entries)
            await self.audit.record(who, "directory.import", None, {
                "count": len(entries), "created": created,
                "departments": ids[:200]})
        return {"ok": True, "count": len(entries), "created": created,
                "updated": len(entries) - created, "dry_run": dry_run}

    async def export_csv(self, who: Actor) -> str:
        """The active departments as CSV (what ``import_csv`` reads back)."""
        rows = await self.loop.departments(active_only=True)
        await self.audit.record(who, "directory.export", None, {"count": len(rows)})
        return to_csv([_entry(d) for d in rows])

    async def defaults(self) -> dict[str, Any]:
        """The default department per 事项 and city, and the 事项 one may choose from."""
        tax = self.loop.taxonomy
        async with self.sessions() as s:
            rows = (await s.execute(select(DepartmentDefault, Department.name).join(
                Department, Department.id == DepartmentDefault.department_id).order_by(
                DepartmentDefault.matter, DepartmentDefault.city))).all()
        return {"defaults": [{"matter": r.matter, "matter_name": tax.path_names(r.matter),
                              "city": r.city or None, "department": r.department_id,
                              "department_name": name} for r, name in rows],
                "matters": [{"code": m, "name": tax.path_names(m)} for m in tax.leaves()]}

    async def set_default(self, matter: str, city: str | None, department: str, who: Actor
                          ) -> None:
        problems = [p for p in self.loop.taxonomy.check("complaint", matter)
                    if p.startswith("matter")]
        if city is not None and city not in self.cities:
            problems.append(f"city: unknown city {city!r}")
        if problems:
            raise DomainError("invalid", "; ".join(problems))
        await self.loop.set_default(matter, city, department)
        await self.audit.record(who, "directory.default", None, {
            "matter": matter, "city": city, "department": department})

    async def delete_default(self, matter: str, city: str | None, who: Actor) -> None:
        if not await self.loop.delete_default(matter, city):
            raise DomainError("not_found", f"no default department for {matter!r} in "
                                           f"{city or 'the province'}")
        await self.audit.record(who, "directory.default", None, {
            "matter": matter, "city": city, "department": None})

    async def users(self, department: str) -> list[dict[str, Any]]:
        """The department's console users (made with POST /api/users, role department)."""
        async with self.sessions() as s:
            rows = (await s.execute(select(WebUser).where(
                WebUser.department_id == department).order_by(WebUser.username))
            ).scalars().all()
        return [{"user": u.username, "name": u.display_name, "disabled": bool(u.disabled)}
                for u in rows]

    @staticmethod
    def levels() -> tuple[str, ...]:
        return LEVELS
