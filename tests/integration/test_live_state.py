"""Live state in Redis follows the calls, and every change is published for the consoles."""

from __future__ import annotations

import asyncio
import json

import pytest

from common.tasks import cancel_and_wait
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk


async def test_waiting_caller_then_answered_is_published(lab, phones, services, sounds, redis,
                                                         tmp_path):
    service = await services.start()
    live = service.live
    pubsub = redis.pubsub()
    await pubsub.subscribe(live.channel)
    messages: list[dict] = []

    async def collect():
        async for m in pubsub.listen():
            if m["type"] == "message":
                messages.append(json.loads(m["data"]))

    collector = asyncio.create_task(collect())
    # Nobody of Nanjing's general pool is logged on: the caller waits.
    party = await lab.caller("13600006666", play=sounds["caller_speech"])
    call = await lab.dial(party)
    waiting = await eventually(lambda: live.waiting("nanjing-general"),
                               what="the caller to wait in nanjing-general")
    call_id = waiting[0][0]
    assert (await live.call(call_id))["state"] == "queued"
    assert (await live.call(call_id))["caller"] == "136****6666"

    agent = await lab.agent("1002", play=sounds["tone_agent"])
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 10)
    await eventually(lambda: _state(live, call_id, "talking"), what="talking")
    assert await live.waiting("nanjing-general") == []
    assert (await live.agent("1002"))["state"] in ("on_call", "busy")

    await party.hangup(call)
    await asyncio.wait_for(incoming.disconnected.wait(), 10)
    await eventually(lambda: _state(live, call_id, "ended"), what="ended")
    assert call_id not in await live.active_calls(lab.node.id)
    await eventually(lambda: _agent_ready(live, "1002"), what="agent ready again")

    facts = [m["fact"] for m in messages if m["type"] == "call" and m["call_id"] == call_id]
    for a, b in [("arrived", "queued"), ("queued", "answered"), ("answered", "ended")]:
        assert facts.index(a) < facts.index(b), facts
    assert all("13600006666" not in json.dumps(m) for m in messages)
    assert any(m["type"] == "agent" and m["agent"] == "1002" for m in messages)
    await cancel_and_wait([collector], what="collector")
    await pubsub.aclose()


async def _state(live, call_id, state):
    return (await live.call(call_id)).get("state") == state


async def _agent_ready(live, agent):
    return (await live.agent(agent)).get("state") == "ready"
