"""Database engine and migrations. SQLite by default (one machine), PostgreSQL by URL."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy import exc as exc_module
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the web console read while calls are written; foreign keys keep the
            # timeline tied to its case.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Deleted personal data (a purge, a re-encrypted row) is overwritten with zeros,
            # not left readable in the file's free pages.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    engine = create_async_engine(url, **{"pool_size": 10, "max_overflow": 20, **kwargs})
    _ping_when_idle(engine)
    return engine


# A pooled connection is pinged before use only when it sat idle this long. SQLAlchemy's own
# pre-ping checks every checkout, and on asyncpg a ping is three round trips (BEGIN, a query,
# ROLLBACK): more than the case store's writes of a group. A connection used a moment ago is
# almost surely alive; if the server restarted within that moment, the statement fails as a
# lost connection, SQLAlchemy drops the pool's connections, and the case store writes again.
PING_IDLE_S = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connected(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_IDLE_S:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:
            # The pool throws this connection away and checks out another (or a new one).
            raise exc_module.DisconnectionError(str(exc)) from exc


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Any = None, url: str | None = None,
                   personal: Any = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["connection"] = connection
    # Data migrations that encrypt existing rows (0007_privacy) need the data key.
    cfg.attributes["personal"] = personal
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head", *, personal: Any = None
                  ) -> None:
    """Bring the schema to ``revision`` (runs at every start; a no-op when up to date).
    ``personal``: the service's common.privacy.PersonalData, for migrations that encrypt."""

    def upgrade(sync_conn: Any) -> None:
        command.upgrade(alembic_config(sync_conn, personal=personal), revision)

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
    log.info("database schema up to date", extra={"backend": engine.dialect.name})


T = TypeVar("T")


def padded(values: Sequence[T]) -> list[T]:
    """An IN list's values padded (the last repeated) to a power of two: each length is its
    own SQL text, so its own prepared statement on PostgreSQL; a handful of lengths keep the
    statement cache warm instead of preparing anew for every group size."""
    out = list(values)
    if out:
        out.extend(out[-1:] * ((1 << (len(out) - 1).bit_length()) - len(out)))
    return out
