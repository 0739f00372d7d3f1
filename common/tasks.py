"""Stopping background tasks without hanging.

On Python 3.11 a task can swallow a cancellation (``asyncio.wait_for`` returning its inner
result at the moment it is cancelled, or a loop that catches broad exceptions), so
``task.cancel(); await task`` may wait forever: a CI run once hung for 90 minutes on exactly
that. ``cancel_and_wait`` cancels again until the tasks are gone, and gives up loudly after a
bounded time instead of blocking shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], *, what: str = "tasks",
                          rounds: int = 5, wait_s: float = 1.0) -> bool:
    """Cancel ``tasks`` and wait for them; True if all finished, False if some would not."""
    pending = {t for t in tasks if not t.done()}
    for _ in range(rounds):
        if not pending:
            break
        for t in pending:
            t.cancel()
        _done, pending = await asyncio.wait(pending, timeout=wait_s)
    for t in pending:
        log.error("task would not stop", extra={"what": what, "task": t.get_name()})
    return not pending
