"""Asterisk's own call records destroyed when due.

CEL is one SQLite file per node with callers' numbers in clear (Asterisk writes them). Rows
older than ``[privacy] cel_retention_days`` are deleted once the service has read them (at or
below the node's checkpoint): a call still being reconciled after an outage keeps its records.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from common.retention import PurgeReport


class ReadCheckpoints(Protocol):
    """How far the service has read each node's CEL (telephony.calls.cel.CheckpointStore)."""

    async def get_checkpoint(self, node: str) -> int: ...


def purge_cel_file(path: Path, before: float, up_to_id: int, dry_run: bool) -> int:
    """Delete (or count) the rows older than ``before`` with ids up to ``up_to_id``; sync, run
    it in a thread. A missing file or table means nothing to delete."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(str(path), timeout=10)
    try:
        # Deleted rows are overwritten, not left readable in free pages.
        conn.execute("PRAGMA secure_delete=ON")
        where = "eventtime < ? AND AcctId <= ?"
        if dry_run:
            return int(conn.execute(f"SELECT count(*) FROM cel WHERE {where}",
                                    (before, up_to_id)).fetchone()[0])
        with conn:
            return conn.execute(f"DELETE FROM cel WHERE {where}", (before, up_to_id)).rowcount
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        conn.close()


class CelPurger:
    """CEL rows past their period on every node (node id -> its CEL database)."""

    def __init__(self, cel_paths: dict[str, Path], checkpoints: ReadCheckpoints, *,
                 retention_days: int):
        self.cel_paths = cel_paths
        self.checkpoints = checkpoints
        self.retention_days = retention_days

    async def purge(self, now: datetime, *, dry_run: bool) -> PurgeReport:
        before = (now - timedelta(days=self.retention_days)).timestamp()
        out = PurgeReport(dry_run=dry_run)
        for node, path in self.cel_paths.items():
            up_to = await self.checkpoints.get_checkpoint(node)
            if up_to:
                out.cel_rows += await asyncio.to_thread(purge_cel_file, path, before, up_to,
                                                        dry_run)
        return out
