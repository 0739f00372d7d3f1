"""The shared PostgreSQL and Redis the tests use (``make test`` starts them), and a throwaway
PostgreSQL database per test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable

import asyncpg

PG_ADMIN = os.environ.get("HOTLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HOTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def make_pg_database(admin: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A new empty database: its SQLAlchemy URL, and how to drop it."""
    name = f"hotline_test_{secrets.token_hex(5)}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    host_part = admin.split("@", 1)[1].rsplit("/", 1)[0]
    user = admin.split("://", 1)[1].split("@", 1)[0]
    url = f"postgresql+asyncpg://{user}@{host_part}/{name}"

    async def drop() -> None:
        c = await asyncpg.connect(admin)
        try:
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await c.close()

    return url, drop
