"""The life cycle every feature room offers the composition root: built with its collaborators,
then started and stopped. The root keeps one list of plugins, starts them in order and stops
them in reverse, so what one plugin needs is running before it and after it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

log = logging.getLogger(__name__)
SLOW_STOP_S = 2.0


class Plugin(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


Step = Callable[[], Awaitable[object]]


class Steps:
    """A plugin made of two steps, for a resource the root holds itself (the database engine,
    the Redis connection): what to do at start, what at stop."""

    def __init__(self, name: str, *, start: Step | None = None, stop: Step | None = None):
        self.name = name
        self._start = start
        self._stop = stop

    async def start(self) -> None:
        if self._start is not None:
            await self._start()

    async def stop(self) -> None:
        if self._stop is not None:
            await self._stop()

    def __repr__(self) -> str:
        return f"Steps({self.name})"


async def start_all(plugins: Sequence[Plugin]) -> None:
    """Start in order: a plugin starts once all before it run."""
    for plugin in plugins:
        await plugin.start()


async def stop_all(plugins: Sequence[Plugin]) -> None:
    """Stop in reverse order. One that fails to stop is logged and the others still stop
    (shutdown must not leave the rest running)."""
    for plugin in reversed(plugins):
        began = time.monotonic()
        try:
            await plugin.stop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("plugin did not stop cleanly", extra={"plugin": repr(plugin)})
        took = time.monotonic() - began
        if took > SLOW_STOP_S:  # what an operator reads when a stop outlasts its supervisor's
            log.warning("plugin slow to stop", extra={"plugin": repr(plugin),
                                                      "seconds": round(took, 1)})
