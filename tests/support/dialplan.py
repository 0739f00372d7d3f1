"""Where a channel is in Asterisk's dialplan, as its CLI shows it: tests wait until a prompt
that takes keys is playing before a party presses one (a key pressed during a prompt that
takes none is lost, as for a real caller)."""

from __future__ import annotations

import asyncio

from lab.harness import Lab
from tests.support.waiting import eventually


async def channels(lab: Lab) -> list[list[str]]:
    """``core show channels concise``: channel!context!exten!prio!state!app!data!..."""
    out = await asyncio.to_thread(lab.instance.cli, "core show channels concise")
    return [line.split("!") for line in out.splitlines() if "!" in line]


async def wait_reading(lab: Lab, prompt: str, *, context: str | None = None,
                       timeout: float = 30) -> str:
    """Wait until some channel runs Read() with ``prompt`` (a sound's name); its name."""

    async def check() -> str | None:
        for c in await channels(lab):
            if len(c) > 6 and c[5] == "Read" and f"/{prompt}," in c[6] + "," and (
                    context is None or c[1] == context):
                return c[0]
        return None

    found: str = await eventually(check, timeout, 0.1, what=f"a channel reading {prompt}")
    return found
