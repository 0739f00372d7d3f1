"""The agent desk's share of retention and key rotation: what the agent wrote on a case (the
form's subject, address and content), the notes of callback attempts, and the audit entries
every purge writes (user ``system``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desk.audit import SYSTEM, Audit
from agent_desk.models import CallbackTask, CaseForm, CaseFormVersion
from common.privacy import PersonalData
from common.rekey import RekeyTable
from common.retention import PurgeReport


class SystemAudit:
    """The audit log as the retention job writes it (common.retention.AuditTrail)."""

    def add(self, session: AsyncSession, action: str, case: str | None,
            detail: dict[str, Any]) -> None:
        Audit.add(session, SYSTEM, action, case, detail)


class DeskCaseEraser:
    """Forms and callback notes of cases whose personal fields are blanked
    (cases.retention.CaseDataEraser); the category and department stay for the statistics."""

    async def forget(self, session: AsyncSession, case_ids: list[int], now: datetime,
                     why: dict[str, Any]) -> PurgeReport:
        for form in (await session.execute(select(CaseForm).where(
                CaseForm.case_id.in_(case_ids)))).scalars().all():
            form.subject_enc = form.address_enc = form.content_enc = None
        # The form's history is append-only, except for this: its text is due too.
        for version in (await session.execute(select(CaseFormVersion).where(
                CaseFormVersion.case_id.in_(case_ids)))).scalars().all():
            version.values_enc = None
        for task in (await session.execute(select(CallbackTask).where(
                CallbackTask.case_id.in_(case_ids)))).scalars().all():
            task.log = [{k: v for k, v in e.items() if k not in ("note", "note_enc")}
                        for e in (task.log or [])]
        return PurgeReport()


def rekey_tables(pd: PersonalData) -> list[RekeyTable]:
    """Forms, their versions and callback notes under the current key."""
    re = pd.reencrypt

    def form(f: CaseForm) -> bool:
        f.subject_enc, f.address_enc, f.content_enc = (
            re(f.subject_enc), re(f.address_enc), re(f.content_enc))
        return True

    def task(t: CallbackTask) -> bool:
        if not any("note_enc" in e for e in (t.log or [])):
            return False
        t.log = [{**e, "note_enc": re(e["note_enc"])} if "note_enc" in e else e
                 for e in t.log]
        return True

    def version(v: CaseFormVersion) -> bool:
        v.values_enc = re(v.values_enc)
        return True

    return [RekeyTable("case_forms", CaseForm, form),
            RekeyTable("case_form_versions", CaseFormVersion, version,
                       CaseFormVersion.values_enc.is_not(None)),
            RekeyTable("callback_tasks", CallbackTask, task)]
