"""Missed-call callbacks and timed wrap-up are workers on call facts: they run in a service
started without the web console (``hotline serve --no-web``), against the real Asterisk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent_desk.access import Scope
from agent_desk.cases.store import ConsoleStore
from cases.models import CallEvent, Case
from common.tasks import cancel_and_wait
from hotline.service import HotlineService
from lab.harness import Lab
from tests.support.asterisk import wait_no_channels
from tests.support.service import ServiceFactory
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


async def test_a_caller_who_gives_up_in_the_queue_gets_a_callback_without_the_console(
        lab: Lab, phones: Any, services: ServiceFactory, sounds: dict[str, Path]) -> None:
    service = await services.start()
    # No agent registered: the caller waits in the queue, then hangs up.
    caller = await lab.caller("13912340001", play=sounds["caller_speech"])
    call = await lab.dial(caller, trunk="nanjing")
    await eventually(lambda: _waiting(service), 30, what="the caller queued")
    await caller.hangup(call)
    await asyncio.wait_for(call.disconnected.wait(), 15)
    task = await eventually(lambda: _pending(service, "139****0001"), 30,
                            what="a callback task")
    assert task["city"] == "nanjing" and task["attempts"] == 0
    assert task["max_attempts"] == service.cfg.web.callback_attempts
    assert service.callbacks.callbacks_created == 1
    # The same facts again (a CEL sweep repeats them): still one task.
    await service.drain()
    assert len(await _store(service).callbacks(Scope.everything(), status="pending")) == 1
    await caller.close()


async def test_a_call_abandoned_while_the_service_was_down_gets_its_callback_from_cel(
        lab: Lab, phones: Any, services: ServiceFactory, sounds: dict[str, Path]) -> None:
    first = await services.start()
    await services.stop(first)
    # The service is away: the dialplan falls back to a queue by itself; the caller gives up.
    caller = await lab.caller("13912340002", play=sounds["caller_speech"])
    call = await lab.dial(caller, trunk="nanjing")
    await eventually(lambda: _queued_in_asterisk(lab), 30, what="the caller queued")
    await caller.hangup(call)
    await asyncio.wait_for(call.disconnected.wait(), 15)
    assert await wait_no_channels(lab) == 0
    # Back: the call is rebuilt from Asterisk's CEL, and its callback task made.
    service = await services.start()
    task = await eventually(lambda: _pending(service, "139****0002"), 30,
                            what="a callback task for the call rebuilt from CEL")
    async with service.store.sessions() as s:
        source = (await s.execute(select(CallEvent.source).join(Case).where(
            Case.number == task["case"], CallEvent.kind == "abandoned"))).scalar_one()
    assert source == "cel"
    await caller.close()


async def test_an_answered_calls_agent_gets_the_timed_wrap_up_without_the_console(
        lab: Lab, phones: Any, services: ServiceFactory, sounds: dict[str, Path]) -> None:
    service = await services.start()
    service.wrapup.seconds = 2
    messages: list[dict[str, Any]] = []
    pubsub = service.redis.pubsub()
    await pubsub.subscribe(service.live.keys.events)

    async def listen() -> None:
        async for m in pubsub.listen():
            if m["type"] == "message":
                messages.append(json.loads(m["data"]))

    listener = asyncio.create_task(listen())
    agent = await lab.agent("1001", play=sounds["tone_agent"])
    caller = await lab.caller("13912340003", play=sounds["caller_speech"])
    try:
        call = await lab.dial(caller, trunk="nanjing")
        incoming = await asyncio.wait_for(agent.incoming.get(), 30)
        await asyncio.wait_for(incoming.answered.wait(), 10)
        await caller.hangup(call)
        await asyncio.wait_for(incoming.disconnected.wait(), 15)

        def wrapped_up() -> bool:
            # Paused for after-call work, then ready again by itself.
            pauses = [m for m in messages if m.get("type") == "agent"
                      and m.get("agent") == "1001"]
            began = next((i for i, m in enumerate(pauses)
                          if m.get("paused") == 1 and m.get("reason") == "after_call_work"),
                         None)
            return began is not None and any(m.get("paused") == 0
                                             for m in pauses[began + 1:])

        async def check() -> bool:
            return wrapped_up()

        await eventually(check, 30, what="1001 in wrap-up, then ready")
        assert service.wrapup.wrapups == 1
        assert (await service.live.agent("1001")).get("paused") == "0"
    finally:
        await cancel_and_wait([listener], what="events listener")
        await pubsub.aclose()
        await caller.close()
        await agent.close()


def _store(service: HotlineService) -> ConsoleStore:
    return ConsoleStore(service.store.sessions, service.personal, service.cfg.service.timezone)


async def _pending(service: HotlineService, caller: str) -> dict[str, Any] | None:
    tasks = await _store(service).callbacks(Scope.everything(), status="pending")
    return next((t for t in tasks if t["caller"] == caller), None)


async def _waiting(service: HotlineService) -> bool:
    return bool(await service.live.waiting("nanjing-general"))


async def _queued_in_asterisk(lab: Lab) -> bool:
    return "wait:" in await asyncio.to_thread(lab.instance.cli, "queue show")
