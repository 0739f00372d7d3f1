"""The intake's share of retention and key rotation: the name a citizen gave (the form's
text is the console's, agent_desk/retention.py; the number is the case's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desk.intake.models import IntakeRecord
from common.privacy import PersonalData
from common.rekey import RekeyTable
from common.retention import PurgeReport


class IntakeCaseEraser:
    """The names of cases whose personal fields are blanked (cases.retention
    CaseDataEraser); the channel, reference and classification stay for the statistics."""

    async def forget(self, session: AsyncSession, case_ids: list[int], now: datetime,
                     why: dict[str, Any]) -> PurgeReport:
        for rec in (await session.execute(select(IntakeRecord).where(
                IntakeRecord.case_id.in_(case_ids)))).scalars().all():
            rec.name_enc = None
        return PurgeReport()


def rekey_tables(pd: PersonalData) -> list[RekeyTable]:
    def record(r: IntakeRecord) -> bool:
        r.name_enc = pd.reencrypt(r.name_enc)
        return True

    return [RekeyTable("intake_records", IntakeRecord, record,
                       IntakeRecord.name_enc.is_not(None))]
