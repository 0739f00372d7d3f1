"""The legs of the cases a write touches, read once per write instead of once per fact."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cases.db import padded
from cases.models import CallLeg, Case


class LegIndex:
    """Each case's legs by uniqueid: loaded for all the cases of a write in one statement;
    legs added during the write are added here too, so a later fact of the same write finds
    them (no SELECT, and no second row for one channel)."""

    def __init__(self) -> None:
        self._legs: dict[int, dict[str, CallLeg]] = {}

    async def load(self, session: AsyncSession, case_ids: Iterable[int]) -> None:
        ids = [i for i in case_ids if i not in self._legs]
        for i in ids:
            self._legs[i] = {}
        if ids:
            for leg in (await session.execute(
                    select(CallLeg).where(CallLeg.case_id.in_(padded(ids))))).scalars():
                self._legs[leg.case_id][leg.uniqueid] = leg

    def get_or_add(self, session: AsyncSession, case: Case, uniqueid: str, *, role: str,
                   channel: str = "") -> CallLeg:
        legs = self._legs.setdefault(case.id, {})
        leg = legs.get(uniqueid)
        if leg is None:
            leg = legs[uniqueid] = CallLeg(case_id=case.id, uniqueid=uniqueid, channel=channel,
                                           role=role)
            session.add(leg)
        return leg

    def caller(self, case: Case) -> CallLeg | None:
        return next((leg for leg in self._legs.get(case.id, {}).values()
                     if leg.role == "caller"), None)
