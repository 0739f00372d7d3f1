"""The case loop's share of retention and key rotation: what departments wrote (replies,
reasons for returns and extensions), the reasons on the loop's timeline facts, and the
address behind the repeat-by-place hash."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cases.loop.models import CaseWork, Dispatch
from cases.models import CallEvent
from common.privacy import PersonalData
from common.rekey import RekeyTable
from common.retention import PurgeReport

TEXT_FIELDS = ("reply_enc", "return_reason_enc", "extension_reason_enc")


class LoopCaseEraser:
    """Blanks the loop's personal text on cases whose personal fields are due
    (cases.retention.CaseDataEraser); states, dates and departments stay for the reports."""

    async def forget(self, session: AsyncSession, case_ids: list[int], now: datetime,
                     why: dict[str, Any]) -> PurgeReport:
        for d in (await session.execute(select(Dispatch).where(
                Dispatch.case_id.in_(case_ids)))).scalars().all():
            for f in TEXT_FIELDS:
                setattr(d, f, None)
        for w in (await session.execute(select(CaseWork).where(
                CaseWork.case_id.in_(case_ids)))).scalars().all():
            w.address_enc = w.address_hash = None
        for ev in (await session.execute(select(CallEvent).where(
                CallEvent.case_id.in_(case_ids), CallEvent.kind.like("loop.%")))
                ).scalars().all():
            if ev.detail and "reason_enc" in ev.detail:
                ev.detail = {k: v for k, v in ev.detail.items() if k != "reason_enc"}
        return PurgeReport()


def rekey_tables(pd: PersonalData) -> list[RekeyTable]:
    """The loop's encrypted text under the current key, and the place hashes recomputed."""
    re = pd.reencrypt

    def work(w: CaseWork) -> bool:
        place = pd.decrypt(w.address_enc)
        w.address_enc = re(w.address_enc)
        w.address_hash = pd.text_hash(place)
        return True

    def dispatch(d: Dispatch) -> bool:
        for f in TEXT_FIELDS:
            setattr(d, f, re(getattr(d, f)))
        return True

    def fact(e: CallEvent) -> bool:
        if not e.detail or "reason_enc" not in e.detail:
            return False
        e.detail = {**e.detail, "reason_enc": re(e.detail["reason_enc"])}
        return True

    return [RekeyTable("case_work", CaseWork, work, CaseWork.address_enc.is_not(None),
                       key="case_id"),
            RekeyTable("case_dispatches", Dispatch, dispatch),
            RekeyTable("call_events (loop)", CallEvent, fact, CallEvent.kind.like("loop.%"))]
