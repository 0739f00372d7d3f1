"""Data key rotation: re-encrypt every personal field with the current key and recompute the
callers' look-up hashes (``hotline privacy rekey``).

Each feature says which of its tables hold personal data and how to re-encrypt a row
(``rekey_tables`` in cases/, asr/ and agent_desk/ retention.py); this runs them. Run it with
the services stopped, the new key in HOTLINE_DATA_KEY and the old one(s) in
HOTLINE_DATA_KEY_PREVIOUS; then start the services with the new key only. Each batch is one
transaction, and a value already under the current key is re-encrypted harmlessly, so an
interrupted run is simply run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

BATCH = 500


@dataclass(frozen=True)
class RekeyTable:
    """One table's personal fields: ``fix`` re-encrypts a row in place and says whether it
    changed it; ``where`` narrows the rows worth reading."""

    name: str
    model: type[Any]  # an ORM model with an integer key (``key``: its attribute)
    fix: Callable[[Any], bool]
    where: ColumnElement[bool] | None = None
    key: str = "id"


async def _each(sessions: async_sessionmaker[AsyncSession], table: RekeyTable) -> int:
    """Apply the table's fix to every row, in batches by id; returns how many rows changed."""
    model = table.model
    key = getattr(model, table.key)
    changed = 0
    last = 0
    while True:
        async with sessions() as s, s.begin():
            q = select(model).where(key > last)
            if table.where is not None:
                q = q.where(table.where)
            rows = list((await s.execute(q.order_by(key).limit(BATCH))).scalars())
            if not rows:
                return changed
            for r in rows:
                changed += bool(table.fix(r))
            last = getattr(rows[-1], table.key)


async def rekey(sessions: async_sessionmaker[AsyncSession], tables: Sequence[RekeyTable],
                progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Re-encrypt every table in turn; returns the rows changed by table name."""
    out: dict[str, int] = {}
    for table in tables:
        out[table.name] = await _each(sessions, table)
        if progress is not None:
            progress(table.name, out[table.name])
    return out
