"""Rows the case store fills, read and written with Core statements instead of ORM objects.

A live call's case is filled a few columns at a time, by many facts, in many transactions;
under load the ORM's unit of work (identity map, attribute events, flush planning, result
rows made into objects) cost more CPU than the statements themselves. A ``Row`` is a plain
record of one table row with the mapped class's attribute names, so the fill rules read
the same; it remembers which columns changed, and only those are written back: columns
other writers own (the case loop's ``closed_at``, retention's purge) are never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import Update


class Row:
    """One row's columns by name; setting a column to a new value marks it changed."""

    __slots__ = ("_changed", "_values")

    def __init__(self, values: Mapping[Any, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_changed", set())

    @classmethod
    def blank(cls, table: Table, **values: Any) -> Row:
        """A row not in the table yet: every column None but those given."""
        row = cls({c.key: None for c in table.columns})
        row._values.update(values)
        return row

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        values = self._values
        if name not in values:
            raise AttributeError(f"no column {name!r}")  # a typo must not pass silently
        if values[name] != value:
            values[name] = value
            self._changed.add(name)

    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def changes(self) -> dict[str, Any]:
        return {k: self._values[k] for k in self._changed}

    def saved(self) -> None:
        self._changed.clear()


def table_of(mapped: type) -> Table:
    return cast(Table, mapped.__table__)  # type: ignore[attr-defined]


# One UPDATE statement per table, key and set of changed columns: built once, so its cache
# key is computed once and PostgreSQL keeps its prepared statement.
_UPDATES: dict[tuple[str, tuple[str, ...], frozenset[str]], Update] = {}


def _update(table: Table, keys: tuple[str, ...], columns: frozenset[str]) -> Update:
    stmt = _UPDATES.get((table.name, keys, columns))
    if stmt is None:
        # No .values(): the SET clause is the executemany parameters' other names.
        stmt = _UPDATES[(table.name, keys, columns)] = update(table).where(
            *(table.c[k] == bindparam(f"key_{k}") for k in keys))
    return stmt


async def write_changes(conn: AsyncConnection, table: Table, rows: Iterable[Row],
                        keys: tuple[str, ...]) -> int:
    """UPDATE what changed in these rows (found by ``keys``), one executemany per set of
    changed columns; returns the rows written."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        changes = row.changes()
        if not changes:
            continue
        changes.update({f"key_{k}": getattr(row, k) for k in keys})
        groups.setdefault(frozenset(row._changed), []).append(changes)
        row.saved()
    for columns, params in groups.items():
        await conn.execute(_update(table, keys, columns), params)
    return sum(len(p) for p in groups.values())


@dataclass
class CallRecord:
    """What the store holds of a recent call's case between its writes: the case's row, the
    keys of the facts on its timeline, its legs. The store is the only writer of these (a
    call's facts go through one store, in order), so a call's next facts need not read them
    again; a write that fails drops its calls' records, and they are read anew."""

    case: Row
    keys: set[str] = field(default_factory=set)
    legs: dict[str, Row] = field(default_factory=dict)


class OrmWhenNeeded:
    """An ORM session on a write's connection and in its transaction, made only for the few
    facts that need one (transfers, links); the others are written with Core statements,
    without the session's bookkeeping."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._session: AsyncSession | None = None

    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = AsyncSession(bind=self.conn, expire_on_commit=False)
        return self._session

    async def flush(self) -> None:
        """Write what the session holds (before the transaction commits) and close it."""
        if self._session is not None:
            try:
                await self._session.flush()
            finally:
                await self._session.close()
