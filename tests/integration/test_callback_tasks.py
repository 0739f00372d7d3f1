"""Callback tasks from facts (issue 17 item 7): a 回访 that reached nobody becomes a callback
task (a person tries instead), made by the callbacks worker with or without the console; a
restarted worker makes what it missed and nothing twice."""

from __future__ import annotations

import asyncio

import pytest

from agent_desk.access import Scope
from agent_desk.cases.store import ConsoleStore
from tests.integration.test_follow_up_calls import start, state_of, waiting_for_follow_up
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


async def _tasks(service, number: str) -> list[dict]:
    store = ConsoleStore(service.store.sessions, service.personal, service.cfg.service.timezone)
    return [t for t in await store.callbacks(Scope.everything()) if t["case"] == number]


async def test_a_follow_up_that_reaches_nobody_becomes_a_callback_task(lab, services, phones,
                                                                       sounds):
    line = await lab.caller("13900000000")  # rings, never answers
    dial = f"PJSIP/trunk-{{trunk}}/sip:{{number}}@127.0.0.1:{line.port}"
    svc = await start(services, "sqlite", dial=dial, max_attempts=1, ring_s=5)
    number = await waiting_for_follow_up(svc, "13900001901")
    await asyncio.wait_for(line.incoming.get(), 30)
    await eventually(lambda: state_of(svc, number, "closed"), 60,
                     what="the case closed as 回访 not reached")

    async def one_task():
        tasks = await _tasks(svc, number)
        return tasks if tasks else None

    [task] = await eventually(one_task, 30, what="a callback task for the case")
    assert task["reason"] == "followup_failed" and task["status"] == "pending"
    # A restarted worker looks again and makes nothing twice.
    await services.stop(svc)
    svc = await start(services, "sqlite", dial=dial, max_attempts=1, ring_s=5)
    assert await svc.callbacks.follow_ups_once() == 0
    assert len(await _tasks(svc, number)) == 1
    await line.close()
