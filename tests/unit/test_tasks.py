"""Stopping tasks that swallow a cancellation must not hang shutdown."""

from __future__ import annotations

import asyncio

from common.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_is_stopped():
    swallowed = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.append(1)  # as Python 3.11's wait_for can do
        await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await cancel_and_wait([task], wait_s=0.2)
    assert task.cancelled() and swallowed == [1]


async def test_a_task_that_never_stops_is_reported_not_awaited_forever(caplog):
    released = False

    async def immortal() -> None:
        while not released:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass

    task = asyncio.create_task(immortal(), name="immortal")
    await asyncio.sleep(0)
    assert not await cancel_and_wait([task], what="test", rounds=2, wait_s=0.05)
    assert "task would not stop" in caplog.text
    released = True
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.done()
