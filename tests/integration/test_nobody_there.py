"""Nobody there (issue 17 item 4), with the default ``[nobody] when_empty = "offer"``, on an
Asterisk of its own: with no agent signed in the caller does not wait in empty queues but is
offered a callback (1) or a message (2); a message is the case's recording and transcript and
a callback task, also when the call ended while the service was away (rebuilt from CEL); and
with every agent busy, nobody waits longer than ``max_wait_s`` before the offer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_desk.access import Scope
from agent_desk.cases.store import ConsoleStore
from agent_desk.softphone.phones import SipPhones
from lab.harness import Lab
from tests.support.dialplan import channels, wait_reading
from tests.support.own_lab import service_factory, sip_parties, started_lab
from tests.support.service import ServiceFactory, lab_test_config
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


@pytest.fixture(scope="module")
async def nlab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    cfg = lab_test_config(tmp_path_factory.mktemp("nobody-lab"), **{
        "nobody.when_empty": "offer", "nobody.offer_timeout_s": 3.0,
        "nobody.message_silence_s": 3, "nobody.message_max_s": 30,
        "nobody.max_wait_s": 30})
    async with started_lab(cfg) as the_lab:
        yield the_lab


@pytest.fixture
async def services(nlab: Lab, tmp_path: Path, pg_admin: str) -> AsyncIterator[ServiceFactory]:
    async with service_factory(nlab, tmp_path, pg_admin) as factory:
        yield factory


@pytest.fixture
async def phones(nlab: Lab, tmp_path: Path, request: pytest.FixtureRequest
                 ) -> AsyncIterator[SipPhones]:
    async with sip_parties(nlab, tmp_path,
                           passed=lambda: getattr(request.node, "rep_call_passed", True)) as p:
        yield p


async def _task(service, number: str):
    store = ConsoleStore(service.store.sessions, service.personal, service.cfg.service.timezone)
    for t in await store.callbacks(Scope.everything()):
        if t["case"] == number:
            return t
    return None


async def _case(service, caller: str):
    digest = service.personal.lookup_hash(caller)
    for c in await service.store.recent(20):
        if c.caller_hash == digest and c.call_state == "ended":
            return c
    return None


async def _recording(nlab: Lab) -> None:
    async def recording() -> bool:
        return any(len(c) > 5 and c[5] == "Record" for c in await channels(nlab))

    await eventually(recording, 20, 0.1, what="the caller recording a message")


async def _leave_message(nlab: Lab, sounds, caller: str, *, speak_s: float = 4.0) -> None:
    party = await nlab.caller(caller, play=sounds["caller_speech"])
    call = await nlab.dial(party, trunk="nanjing")
    await wait_reading(nlab, "nobody_offer", context="hotline-nobody")
    await party.dtmf(call, "2")
    await _recording(nlab)
    await asyncio.sleep(speak_s)  # the caller speaks (the recording's content)
    await party.hangup(call)
    await party.close()


async def test_nobody_signed_in_the_caller_leaves_a_message_that_becomes_the_case(
        nlab, services, phones, sounds, asr_service):
    service = await asr_service()
    await _leave_message(nlab, sounds, "13800001801")
    case = await eventually(lambda: _case(service, "13800001801"), 30, what="the case")
    assert case.outcome == "message" and case.answered_at is None
    assert {"message", "nobody_there"} <= set(case.flags)
    kinds = [e.kind for e in case.events]
    assert "nobody" in kinds and "message" in kinds and "abandoned" not in kinds
    # Every queue was empty: the city's, then the province's (no wait in an empty queue).
    nobody = next(e for e in case.events if e.kind == "nobody")
    assert nobody.detail["status"] == "JOINEMPTY", nobody.detail
    # The message: the case's recording, transcribed; and a callback task.
    t = await eventually(lambda: _transcript(service, case.number), 120,
                         what="the message's transcript")
    assert t["segments"] and {g["speaker"] for g in t["segments"]} == {"caller"}, t
    task = await eventually(lambda: _task(service, case.number), 30, what="a callback task")
    assert task["status"] == "pending" and task["reason"] == "message"


async def _transcript(service, number: str):
    t = await service.transcripts.for_case(number)
    return t if t["status"] == "done" else None


async def test_key_1_asks_for_a_callback(nlab, services, phones, sounds):
    service = await services.start()
    party = await nlab.caller("13800001802", play=sounds["tone_caller"])
    call = await nlab.dial(party, trunk="nanjing")
    await wait_reading(nlab, "nobody_offer", context="hotline-nobody")
    await party.dtmf(call, "1")
    await asyncio.wait_for(call.disconnected.wait(), 30)  # thanked, then hung up by Asterisk
    await party.close()
    case = await eventually(lambda: _case(service, "13800001802"), 30, what="the case")
    assert case.outcome == "callback_requested"
    task = await eventually(lambda: _task(service, case.number), 30, what="a callback task")
    assert task["reason"] == "callback_requested"


async def test_a_message_left_while_the_service_was_away_is_rebuilt_from_cel(
        nlab, services, phones, sounds):
    service = await services.start()
    await services.stop(service)
    # The service is away: the router does not answer, the fallback queue is empty too.
    await _leave_message(nlab, sounds, "13800001803", speak_s=2.0)
    service = await services.start(cel_from_now=False)
    case = await eventually(lambda: _case(service, "13800001803"), 60,
                            what="the case rebuilt from CEL")
    assert case.outcome == "message" and "router_unavailable" in case.flags
    message = next(e for e in case.events if e.kind == "message")
    assert message.source == "cel"
    task = await eventually(lambda: _task(service, case.number), 30, what="a callback task")
    assert task["reason"] == "message"
    # Restarted again: CEL and the worker's own look at start make no second task.
    await services.stop(service)
    service = await services.start(cel_from_now=False)
    await service.drain()
    store = ConsoleStore(service.store.sessions, service.personal, service.cfg.service.timezone)
    mine = [t for t in await store.callbacks(Scope.everything()) if t["case"] == case.number]
    assert [t["id"] for t in mine] == [task["id"]]


async def test_an_empty_city_overflows_to_the_province_pool_at_once(nlab, services, phones,
                                                                    sounds):
    """Suzhou's agent is not signed in: a Suzhou caller does not wait in the empty city queue
    but goes on to the province's pool, where Nanjing's agent answers."""
    service = await services.start()
    agent = await nlab.agent("1001", play=sounds["tone_agent"])
    party = await nlab.caller("13800001804", play=sounds["tone_caller"])
    call = await nlab.dial(party, trunk="suzhou")
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 10)
    await party.hangup(call)
    await asyncio.wait_for(incoming.disconnected.wait(), 10)
    await party.close()
    await agent.close()
    case = await eventually(lambda: _case(service, "13800001804"), 30, what="the case")
    assert case.route_queue == "suzhou-general" and case.queue == "province-general"
    assert case.agent_id == "1001" and "widened" in case.flags
    # Straight through: the empty city queue did not keep the caller the plan's time there.
    plan = service.cfg.routing.relax_for("general").province_after_s
    assert case.wait_seconds is not None and case.wait_seconds < plan


async def test_with_every_agent_busy_the_offer_comes_after_max_wait_s(nlab, services, phones,
                                                                      sounds):
    """1001 talks to a first caller the whole time: the second waits through the queues' plan
    (the city's, then the province's), never longer than [nobody] max_wait_s (30 s here) in
    all, then hears the offer; key 1 makes a callback task."""
    service = await services.start()
    agent = await nlab.agent("1001", play=sounds["tone_agent"])
    first = await nlab.caller("13800001805", play=sounds["tone_caller"])
    talking = await nlab.dial(first, trunk="nanjing")
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 10)
    second = await nlab.caller("13800001806", play=sounds["tone_caller"])
    waiting = await nlab.dial(second, trunk="nanjing")
    max_wait = service.cfg.nobody.max_wait_s
    await wait_reading(nlab, "nobody_offer", context="hotline-nobody", timeout=max_wait + 60)
    await second.dtmf(waiting, "1")
    await asyncio.wait_for(waiting.disconnected.wait(), 30)
    await second.close()
    await first.hangup(talking)
    await asyncio.wait_for(incoming.disconnected.wait(), 10)
    await first.close()
    await agent.close()
    case = await eventually(lambda: _case(service, "13800001806"), 30, what="the case")
    assert case.outcome == "callback_requested" and case.answered_at is None
    # Each queue's time out is no abandon (Asterisk reports one): the caller never hung up.
    assert "abandoned" not in [e.kind for e in case.events]
    nobody = next(e for e in case.events if e.kind == "nobody")
    assert nobody.detail["status"] == "TIMEOUT", nobody.detail  # not an empty queue
    # Asterisk's own times: queued, then offered no sooner than max_wait_s later.
    assert case.queued_at is not None
    assert (nobody.at - case.queued_at).total_seconds() >= max_wait - 1
    task = await eventually(lambda: _task(service, case.number), 30, what="a callback task")
    assert task["reason"] == "callback_requested"
