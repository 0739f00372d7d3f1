"""The caller's side (issue 17): queue first, the menu while waiting. Real calls through the
session's Asterisk (its dialplan renders ``[menu] first = "queue"``, the default).

A no-key caller is in the queue straight after the answer: Asterisk's own record of the call
(CEL, microsecond times) shows the Queue() application starting after the ANSWER with only the
router's AGI between them (no prompt, no key window). The bound asserted is the design's: the
router's budget (``fastagi.dialplan_timeout_s``), the only wait there is on that path; the
earlier dialplan spent the whole prompt and the key window there (about 7.5 s with the
production prompt). The time measured is printed; bench/caller_entry.py measures both
dialplans side by side."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_desk.access import Scope
from agent_desk.cases.store import ConsoleStore
from lab.harness import Lab
from queueing.announce.plugin import wav_seconds
from telephony.calls.cel import read_cel
from tests.support.audio import duration, speech_like
from tests.support.dialplan import channels
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


async def waiting_in(lab: Lab, count: int = 1, timeout: float = 30) -> list[str]:
    """Wait until ``count`` channels run Queue() (callers waiting); their names."""

    async def check() -> list[str] | None:
        waiting = [c[0] for c in await channels(lab) if len(c) > 5 and c[5] == "Queue"]
        return waiting if len(waiting) >= count else None

    found: list[str] = await eventually(check, timeout, 0.1,
                                        what=f"{count} caller(s) waiting in a queue")
    return found


async def case_of(service, caller: str, state: str = "ended"):
    digest = service.personal.lookup_hash(caller)

    async def check():
        for c in await service.store.recent(30):
            if c.caller_hash == digest and c.call_state == state:
                return c
        return None

    return await eventually(check, 30, what=f"the case of {caller} ({state})")


async def queued_case(service, caller: str):
    """The active case of a caller waiting in a queue, once it says since when: the queue's
    word (AMI) may reach the case a moment after Asterisk shows the caller waiting."""
    async def check():
        case = await case_of(service, caller, state="active")
        return case if case.queued_at is not None else None

    return await eventually(check, 30, what=f"the queued case of {caller}")


async def routed(lab: Lab, service, sounds) -> None:
    """Keep my place needs the router's answer (the number it checked). Right after a start on
    a loaded machine the router may miss its budget and the call takes the fallback queue: a
    first caller is routed (again if it fell back) before the test's callers dial."""
    for i in range(5):
        number = f"1380000999{i}"
        party = await lab.caller(number, play=sounds["tone_caller"])
        call = await lab.dial(party, trunk="nanjing")
        case = await case_of(service, number, state="active")
        await eventually(lambda c=case: _queued(service, c.number), 20,
                         what="the warm-up caller queued")
        await party.hangup(call)
        await party.close()
        done = await case_of(service, number)
        if done.route_source == "router":
            return
    raise AssertionError("the router never answered in time")


async def _queued(service, number: str):
    case = await service.store.get(number)
    return case if case is not None and case.queued_at is not None else None


async def no_task_for(service, number: str) -> bool:
    store = ConsoleStore(service.store.sessions, service.personal, service.cfg.service.timezone)
    await service.callbacks.drain()
    return all(t["case"] != number for t in await store.callbacks(Scope.everything()))


def cel_rows(lab: Lab, linkedid: str):
    return read_cel(lab.instance.cel_db, 0, linkedid=linkedid)


async def test_a_no_key_caller_is_in_the_queue_straight_after_the_answer(lab, services, phones,
                                                                         sounds):
    service = await services.start()
    party = await lab.caller("13800001701", play=sounds["tone_caller"])
    call = await lab.dial(party, trunk="nanjing")
    await waiting_in(lab)
    await party.hangup(call)
    await party.close()
    case = await case_of(service, "13800001701")
    # (The city's queue; the fallback queue if the router, cold after its start on a loaded
    # machine, missed its budget: the path is the same.)
    assert case.queue in ("nanjing-general", "province-general") and case.outcome == "abandoned"
    linkedid = case.call_id.split(":", 1)[1]
    rows = await asyncio.to_thread(cel_rows, lab, linkedid)
    mine = [r for r in rows if r.uniqueid == linkedid]
    answer = next(r for r in mine if r.event == "ANSWER")
    queue = next(r for r in mine if r.event == "APP_START" and r.app == "Queue")
    between = {r.app for r in mine
               if r.event == "APP_START" and answer.at <= r.at <= queue.at}
    # Only the router between the answer and the queue: no prompt, no key window.
    assert between <= {"AGI", "Queue"}, between
    took = queue.at - answer.at
    print(f"answer -> queue entry: {took * 1000:.0f} ms")
    assert 0 <= took < lab.cfg.fastagi.dialplan_timeout_s, took


async def test_key_1_while_waiting_reaches_the_enterprise_queue(lab, services, phones, sounds):
    """Nobody free: the caller waits in the city's general queue, hearing the prompt, presses
    1 and waits in the enterprise queue; the agent who signs in answers there, and the wait
    counts from the first queue."""
    service = await services.start()
    party = await lab.caller("13800001702", play=sounds["tone_caller"])
    call = await lab.dial(party, trunk="nanjing")
    await waiting_in(lab)
    await party.dtmf(call, "1")

    async def moved():
        out = await asyncio.to_thread(lab.instance.cli, "queue show nanjing-enterprise_policy")
        return "(wait:" in out

    await eventually(moved, 20, what="the caller in nanjing-enterprise_policy")
    agent = await lab.agent("1001", play=sounds["tone_agent"])
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 10)
    await party.hangup(call)
    await asyncio.wait_for(incoming.disconnected.wait(), 10)
    await party.close()
    await agent.close()

    case = await case_of(service, "13800001702")
    assert case.route_queue == "nanjing-enterprise_policy", case.route_reasons
    assert "skill=enterprise_policy (key 1)" in case.route_reasons
    assert case.queue == "nanjing-enterprise_policy" and case.agent_id == "1001"
    assert case.menu_key == "1"
    queued = [e.detail["queue"] for e in case.events if e.kind == "queued"]
    assert queued == ["nanjing-general", "nanjing-enterprise_policy"], queued
    # The wait counts from the first queue.
    answered = next(e for e in case.events if e.kind == "answered")
    assert case.wait_seconds == pytest.approx(
        (answered.at - case.queued_at).total_seconds(), abs=1.0)


async def test_a_key_keeps_the_place_of_the_first_arrival(lab, services, phones, sounds):
    """A arrives first, B later; B presses 1 first, then A: in the enterprise queue A is still
    ahead of B, and is answered first."""
    service = await services.start()
    a = await lab.caller("13800001703", play=sounds["tone_caller"])
    call_a = await lab.dial(a, trunk="nanjing")
    await waiting_in(lab, 1)
    b = await lab.caller("13800001704", play=sounds["tone_caller"])
    call_b = await lab.dial(b, trunk="nanjing")
    await waiting_in(lab, 2)
    await b.dtmf(call_b, "1")

    async def in_enterprise(n: int):
        out = await asyncio.to_thread(lab.instance.cli, "queue show nanjing-enterprise_policy")
        return out if out.count("(wait:") >= n else None

    await eventually(lambda: in_enterprise(1), 20, what="B in the enterprise queue")
    await a.dtmf(call_a, "1")
    shown = await eventually(lambda: in_enterprise(2), 20, what="A in the enterprise queue")
    lines = [line for line in shown.splitlines() if "(wait:" in line]
    # Asterisk lists callers in their order; A's channel joined the call first.
    names = await asyncio.to_thread(lab.instance.cli, "core show channels concise")
    a_chan = next(line.split("!")[0] for line in names.splitlines()
                  if "!Queue!" in line and "13800001703" in line)
    assert a_chan in lines[0], shown

    agent = await lab.agent("1001", play=sounds["tone_agent"])
    first = await asyncio.wait_for(agent.incoming.get(), 30)
    assert "1703" in first.record.remote_uri, first.record.remote_uri
    await asyncio.wait_for(first.answered.wait(), 10)
    await a.hangup(call_a)
    await asyncio.wait_for(first.disconnected.wait(), 10)
    await b.hangup(call_b)
    for p in (a, b, agent):
        await p.close()
    case_a = await case_of(service, "13800001703")
    case_b = await case_of(service, "13800001704")
    assert case_a.agent_id == "1001" and case_b.outcome == "abandoned"
    assert case_a.queued_at < case_b.queued_at


async def test_position_and_expected_wait_are_heard_while_waiting(lab, services, phones,
                                                                   sounds, tmp_path):
    """Agent 1001 talks with A; B waits: B hears where they stand (position 1, one agent
    able to answer, the default talk time: over the threshold) at entry and again later,
    whispered over the music; the case has each announcement."""
    service = await services.start(sections={"announce": {"every_s": 4.0}})
    agent = await lab.agent("1001", play=sounds["tone_agent"])
    a = await lab.caller("13800001705", play=sounds["tone_caller"])
    call_a = await lab.dial(a, trunk="nanjing")
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 10)
    b = await lab.caller("13800001706", play=sounds["tone_caller"], record_dir=tmp_path / "rec")
    call_b = await lab.dial(b, trunk="nanjing")

    case_b = await case_of(service, "13800001706", state="active")

    async def told(n: int):
        case = await service.store.get(case_b.number)
        said = [e for e in case.events if e.kind == "announced"]
        return said if len(said) >= n else None

    # (Each sentence is made by espeak-ng first: slower on a loaded machine.)
    said = await eventually(lambda: told(2), 90, what="two announcements to B")
    first = said[0].detail
    # Position 1; the wait: 1 × the queue's talk time (Asterisk's, from earlier calls of the
    # session, else aht_s) / 1 agent able to answer.
    assert first["position"] == 1 and first["queue"] in ("nanjing-general", "province-general")
    assert first["expected_s"] > 0
    await b.hangup(call_b)
    await b.close()  # its recording is complete once its process has ended
    await a.hangup(call_a)
    await asyncio.wait_for(incoming.disconnected.wait(), 10)
    await a.close()
    await agent.close()

    # B's recording is what B heard: after the prompt only the music (chimes, not speech) and
    # the sentences. Speech in it after the prompt is the announcement.
    recording = await call_b.recording()
    after = wav_seconds(lab.instance.dir / "sounds" / "welcome.wav") + 0.5
    total = duration(recording)
    spoken = [t / 4 for t in range(int(after * 4), int((total - 0.5) * 4))
              if speech_like(recording, t / 4, t / 4 + 0.5)]
    print(f"speech heard after the prompt: {len(spoken) / 4:.2f} s of {total - after:.2f} s")
    assert len(spoken) / 4 >= 2.0, spoken


async def test_keep_my_place_calls_back_ahead_of_a_later_caller_who_stayed(lab, services,
                                                                           phones, sounds):
    """A waits, B arrives later; A presses the keep-my-place key and hangs up; B stays on the
    line. When the agent signs in, A's place comes first: the agent hears the case and A is
    dialled back and answers; B is answered next. Every step is on A's case."""
    service = await services.start()
    await routed(lab, service, sounds)
    a = await lab.caller("13800001707", play=sounds["tone_caller"])
    call_a = await lab.dial(a, trunk="nanjing")
    await waiting_in(lab, 1)
    b = await lab.caller("13800001708", play=sounds["tone_caller"])
    call_b = await lab.dial(b, trunk="nanjing")
    await waiting_in(lab, 2)
    # The callback reaches A's phone where it listens (the lab's carrier side).
    dial = f"PJSIP/trunk-${{HOTLINE_KEEP_TRUNK}}/sip:${{HOTLINE_KEEP_DIGITS}}@127.0.0.1:{a.port}"
    await asyncio.to_thread(lab.instance.cli, f"dialplan set global HOTLINE_KEEP_DIAL {dial}")

    case_a = await queued_case(service, "13800001707")

    async def offered() -> bool:
        # The key is taken once the caller has waited [keep_place] offer_after_s.
        return (time.time() - case_a.queued_at.timestamp()
                >= lab.cfg.keep_place.offer_after_s + 0.5)

    await eventually(offered, 20, what="the keep-my-place offer to stand")
    await a.dtmf(call_a, lab.cfg.keep_place.key)
    await asyncio.wait_for(call_a.disconnected.wait(), 30)  # confirmed, then hung up
    kept = await case_of(service, "13800001707")
    assert kept.outcome == "keep_place" and "keep_place" in kept.flags

    agent = await lab.agent("1001", play=sounds["tone_agent"])
    first = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(first.answered.wait(), 10)
    back = await asyncio.wait_for(a.incoming.get(), 30)  # A's place came first
    await a.answer(back)
    await asyncio.wait_for(back.answered.wait(), 10)
    await a.hangup(back)
    await asyncio.wait_for(first.disconnected.wait(), 15)
    second = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(second.answered.wait(), 10)
    assert "1708" in second.record.remote_uri, second.record.remote_uri
    await b.hangup(call_b)
    await asyncio.wait_for(second.disconnected.wait(), 15)
    for p in (a, b, agent):
        await p.close()

    async def steps():
        case = await service.store.get(kept.number)
        kinds = [e.kind for e in case.events]
        return kinds if "keep_place_reached" in kinds else None

    kinds = await eventually(steps, 30, what="the callback's steps on A's case")
    assert kinds.index("keep_place") < kinds.index("keep_place_1_taken") < kinds.index(
        "keep_place_1_answer") <= kinds.index("keep_place_reached"), kinds
    case_b = await case_of(service, "13800001708")
    assert case_b.agent_id == "1001"
    # No missed-call task for a caller called back in their place.
    assert await no_task_for(service, kept.number)


async def test_a_kept_place_survives_a_restart_and_a_busy_caller_is_tried_again(
        lab, services, phones, sounds):
    """The place is Asterisk's: the service is away while it waits and while the first callback
    finds the caller busy (those steps reach the case from CEL); the next comes after the
    spacing, at the head of the queue, and is answered. Every attempt is on the case, and no
    missed-call task is made."""
    service = await services.start()
    await routed(lab, service, sounds)
    a = await lab.caller("13800001709", play=sounds["tone_caller"])
    call_a = await lab.dial(a, trunk="nanjing")
    await waiting_in(lab, 1)
    dial = f"PJSIP/trunk-${{HOTLINE_KEEP_TRUNK}}/sip:${{HOTLINE_KEEP_DIGITS}}@127.0.0.1:{a.port}"
    await asyncio.to_thread(lab.instance.cli, f"dialplan set global HOTLINE_KEEP_DIAL {dial}")
    case_a = await queued_case(service, "13800001709")

    async def offered() -> bool:
        return (time.time() - case_a.queued_at.timestamp()
                >= lab.cfg.keep_place.offer_after_s + 0.5)

    await eventually(offered, 20, what="the keep-my-place offer to stand")
    await a.dtmf(call_a, lab.cfg.keep_place.key)
    await asyncio.wait_for(call_a.disconnected.wait(), 30)
    await case_of(service, "13800001709")
    await services.stop(service)
    await waiting_in(lab, 1)  # the placeholder, in A's place, with the service away

    # The first attempt happens while the service is away: Asterisk's CEL keeps its steps.
    agent = await lab.agent("1001", play=sounds["tone_agent"])
    taken = await asyncio.wait_for(agent.incoming.get(), 60)
    back = await asyncio.wait_for(a.incoming.get(), 60)
    await a.answer(back, code=486)  # busy
    await asyncio.wait_for(taken.disconnected.wait(), 60)
    service = await services.start(cel_from_now=False)
    again = await asyncio.wait_for(agent.incoming.get(), 90)  # after the spacing
    back = await asyncio.wait_for(a.incoming.get(), 60)
    await a.answer(back)
    await asyncio.wait_for(back.answered.wait(), 10)
    await a.hangup(back)
    await asyncio.wait_for(again.disconnected.wait(), 15)
    for p in (a, agent):
        await p.close()

    async def steps():
        case = await service.store.get(case_a.number)
        kinds = [e.kind for e in case.events]
        return kinds if "keep_place_reached" in kinds else None

    kinds = await eventually(steps, 30, what="the attempts on A's case")
    for step in ("keep_place_1_taken", "keep_place_1_busy", "keep_place_2_taken",
                 "keep_place_2_answer"):
        assert step in kinds, kinds
    case = await service.store.get(case_a.number)
    away = {e.kind: e.source for e in case.events if e.kind.startswith("keep_place_1")}
    assert away == {"keep_place_1_taken": "cel", "keep_place_1_busy": "cel"}, away
    assert "keep_place_failed" not in kinds
    assert await no_task_for(service, case_a.number)
