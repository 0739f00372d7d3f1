"""The legs of the cases a write touches: read once per call, not once per fact."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cases.db import padded
from cases.models import CallLeg
from cases.rows import Row, table_of, write_changes

LEGS = table_of(CallLeg)
_LEGS_OF = select(LEGS).where(LEGS.c.case_id.in_(bindparam("ids", expanding=True)))
_INSERT = insert(LEGS)


async def load_legs(conn: AsyncConnection, case_ids: Sequence[int]
                    ) -> dict[int, dict[str, Row]]:
    """Each case's legs by uniqueid, in one statement."""
    out: dict[int, dict[str, Row]] = {i: {} for i in case_ids}
    if case_ids:
        for m in (await conn.execute(_LEGS_OF, {"ids": padded(list(case_ids))})).mappings():
            out[m["case_id"]][m["uniqueid"]] = Row(m)
    return out


class LegIndex:
    """Each case's legs by uniqueid (the dicts are the store's, kept between writes); legs
    added during the write are found by a later fact of the same write (no second row for
    one channel), and written with the others by ``write``."""

    def __init__(self, by_case: dict[int, dict[str, Row]]) -> None:
        self._legs = by_case
        self._added: list[Row] = []

    def get_or_add(self, case: Row, uniqueid: str, *, role: str, channel: str = "") -> Row:
        legs = self._legs.setdefault(case.id, {})
        leg = legs.get(uniqueid)
        if leg is None:
            leg = legs[uniqueid] = Row.blank(LEGS, case_id=case.id, uniqueid=uniqueid,
                                             channel=channel, role=role)
            self._added.append(leg)
        return leg

    def caller(self, case: Row) -> Row | None:
        return next((leg for leg in self._legs.get(case.id, {}).values()
                     if leg.role == "caller"), None)

    async def write(self, conn: AsyncConnection) -> None:
        """INSERT the legs added, UPDATE the others' changes (by their natural key)."""
        if self._added:
            rows = []
            for leg in self._added:
                values = leg.values()
                del values["id"]
                rows.append(values)
                leg.saved()
            await conn.execute(_INSERT, rows)
            self._added = []
        await write_changes(conn, LEGS, (leg for legs in self._legs.values()
                                         for leg in legs.values()), ("case_id", "uniqueid"))
