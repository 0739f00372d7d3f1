"""Database engine and migrations. SQLite by default (one machine), PostgreSQL by URL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
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
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


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
