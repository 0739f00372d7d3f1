"""PostgreSQL connections in the pool: a connection that sat idle is pinged before use (and
replaced when the server dropped it); one used a moment ago is not, and if the server dropped
it all the same, the statement fails as a lost connection once and the pool starts afresh."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cases import db
from cases.store import database_unavailable
from tests.support.servers import make_pg_database


async def _backend_pid(engine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(admin: str, pid: int) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_an_idle_connection_is_pinged_and_a_fresh_one_is_not(pg_admin, monkeypatch):
    url, drop = await make_pg_database(pg_admin)
    engine = db.make_engine(url, pool_size=1, max_overflow=0)
    try:
        monkeypatch.setattr(db, "PING_IDLE_S", 0.3)
        first = await _backend_pid(engine)
        await _terminate(pg_admin, first)
        await asyncio.sleep(0.5)  # idle past the limit: pinged, found dead, replaced
        second = await _backend_pid(engine)
        assert second != first

        monkeypatch.setattr(db, "PING_IDLE_S", 60.0)
        await _terminate(pg_admin, second)
        await asyncio.sleep(0.2)
        with pytest.raises(DBAPIError) as lost:  # used a moment ago: not pinged
            await _backend_pid(engine)
        assert database_unavailable(lost.value)  # what the case store waits out and retries
        third = await _backend_pid(engine)
        assert third not in (first, second)
    finally:
        await engine.dispose()
        await drop()
