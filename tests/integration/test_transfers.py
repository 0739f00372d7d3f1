"""Transfers to branch centers and emergency lines through the real Asterisk.

Caller, agent, branch center (12366) and emergency line (110) are pjsua2 parties, each playing
its own tone (caller 700 Hz, agent 1300 Hz, branch 1900 Hz, emergency 2500 Hz), so each party's
recording shows whom it heard in each phase. After every test no channel, bridge or conference
may be left on Asterisk.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from telephony.calls.cel import facts_from_cel, read_cel
from telephony.transfers.services import TransferError
from tests.support.asterisk import wait_clean
from tests.support.audio import rms, tone_level
from tests.support.calls import (
    answered_incoming,
    destination_line,
    ringing_for,
    settled_leg,
    wait_aor,
    wait_trunk,
)
from tests.support.netfault import FaultProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

CALLER = "13812345678"
FREQS = {"caller": 700, "agent": 1300, "branch": 1900, "emergency": 2500}
HEARD = 0.12  # share of the signal's energy in a party's tone band: clearly there
SILENT = 0.03  # ... clearly not there


@dataclass
class Party:
    name: str
    phone: Any
    call: Any

    def hears(self, start: float, end: float) -> dict[str, float]:
        """Tone levels in what this party heard between two wall-clock times (margins
        trimmed: a phase's first second may still carry the previous one)."""
        t0 = self.call.media_at
        assert t0 is not None, f"{self.name}: no media"
        a, b = start - t0 + 1.0, end - t0 - 0.3
        assert b - a > 1.0, f"{self.name}: window too short ({a:.1f}..{b:.1f})"
        return {who: round(tone_level(self.call.finished_recording, f, a, b), 3)
                for who, f in FREQS.items()}

    def loudness(self, start: float, end: float) -> float:
        t0 = self.call.media_at or 0.0
        return rms(self.call.finished_recording, start - t0 + 1.0, end - t0 - 0.3)


@dataclass
class Scene:
    service: Any
    call_id: str
    caller: Party
    agent: Party

    @property
    def control(self) -> Any:
        return self.service.callcontrol


@pytest.fixture
async def clean(lab, phones):
    """After the test: every party gone, and Asterisk holds no channel, bridge or
    conference (asked over AMI)."""
    yield
    await phones.stop()
    left = await wait_clean(lab)
    assert left == {}, f"left on Asterisk after the test: {left}"


async def connect(lab, services, sounds, tmp: Path, *, db: str = "sqlite",
                  agent_id: str = "1001") -> Scene:
    """A caller on 12345 talking with an agent."""
    service = await services.start(db)
    rec = tmp / "rec"
    agent = await lab.agent(agent_id, play=sounds["tone_agent"], record_dir=rec)
    caller = await lab.caller(CALLER, display_name="张三", play=sounds["tone_caller"],
                              record_dir=rec)
    call = await lab.dial(caller)
    a_call = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)
    await asyncio.wait_for(call.media_active.wait(), 10)

    async def answered() -> str | None:
        for rt in service.nodes.values():
            for c in rt.tracker.calls.values():
                if c.answered_by == agent_id and not c.ended:
                    return c.call_id
        return None

    call_id = await eventually(answered, what="the tracker to see the answer")
    return Scene(service, call_id, Party("caller", caller, call), Party("agent", agent, a_call))


async def case_of(service: Any, call_id: str, *, ended: bool = True) -> Any:
    async def check() -> Any:
        case = await service.store.by_call(call_id)
        if case is None or (ended and case.call_state != "ended"):
            return None
        return case

    return await eventually(check, timeout=20, what="the case")


def kinds(case: Any) -> list[str]:
    return [e.kind for e in case.events]


# -- consult, three-way, leave ------------------------------------------------------------------


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_consult_three_way_then_leave(lab, services, phones, clean, sounds, tmp_path, db,
                                           redis):
    scene = await connect(lab, services, sounds, tmp_path, db=db)
    control, service = scene.control, scene.service
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch",
                                          answer_delay=1.0)
    pubsub = redis.pubsub()
    await pubsub.subscribe(service.live.channel)

    # Consult: the caller hears music on hold; agent and 12366 talk.
    leg = await control.consult(scene.call_id, "1001", "tax")
    assert leg.mode == "consult" and leg.number == "12366" and leg.state in ("dialing",
                                                                           "ringing")
    branch = Party("branch", branch_phone, await answered_incoming(branch_phone))
    await settled_leg(leg)
    assert leg.outcome == "answered" and leg.state == "consulting"
    t_consult = time.time()
    await asyncio.sleep(4)

    # Three-way: everyone hears both others.
    assert (await control.three_way(scene.call_id, "1001")) is leg
    t_three = time.time()
    assert leg.state == "three_way"
    await asyncio.sleep(4.5)

    # Leave: the agent drops out; caller and 12366 go on together.
    await control.leave(scene.call_id, "1001")
    t_leave = time.time()
    await asyncio.wait_for(scene.agent.call.disconnected.wait(), 10)
    assert leg.state == "handed_off" and leg.agent_left_how == "left"
    await asyncio.sleep(4.5)
    t_end = time.time()
    await scene.caller.phone.hangup(scene.caller.call)
    await asyncio.wait_for(branch.call.disconnected.wait(), 10)
    await asyncio.wait_for(leg.done.wait(), 10)
    assert leg.ended_by == "caller"
    for p in (scene.caller, scene.agent, branch):
        await p.phone.close()

    consult = {p.name: p.hears(t_consult, t_three) for p in (scene.caller, scene.agent, branch)}
    assert consult["caller"]["agent"] < SILENT and consult["caller"]["branch"] < SILENT, consult
    assert scene.caller.loudness(t_consult, t_three) > 0.005, "no music on hold"
    assert consult["agent"]["branch"] > HEARD and consult["agent"]["caller"] < SILENT, consult
    assert consult["branch"]["agent"] > HEARD and consult["branch"]["caller"] < SILENT, consult

    three = {p.name: p.hears(t_three, t_leave) for p in (scene.caller, scene.agent, branch)}
    for who in three:
        others = [o for o in ("caller", "agent", "branch") if o != who]
        for o in others:
            assert three[who][o] > HEARD, (who, "should hear", o, three)
        assert three[who][who] < SILENT, (who, "hears itself", three)

    after = {p.name: p.hears(t_leave, t_end) for p in (scene.caller, branch)}
    assert after["caller"]["branch"] > HEARD and after["caller"]["agent"] < SILENT, after
    assert after["branch"]["caller"] > HEARD and after["branch"]["agent"] < SILENT, after

    case = await case_of(service, scene.call_id)
    assert len(case.transfers) == 1
    t = case.transfers[0]
    assert (t.destination, t.number, t.kind, t.category, t.mode, t.initiator) == (
        "tax", "12366", "branch_center", "税务", "consult", "1001")
    assert t.outcome == "answered" and t.ended_by == "caller" and t.handed_off
    assert t.agent_left_how == "left" and t.leg_id == leg.leg_id
    assert t.dialed_at <= t.answered_at <= t.three_way_at <= t.agent_left_at <= t.ended_at
    assert {"transferred", "handed_off"} <= set(case.flags)
    order = ["transfer_dialing", "transfer_ringing", "transfer_answered", "transfer_three_way",
             "transfer_agent_left", "transfer_ended"]
    seen = kinds(case)
    assert [k for k in seen if k in order] == order, seen
    assert "ended" in seen
    leg_row = next(x for x in case.legs if x.role == "transfer")
    assert leg_row.uniqueid == leg.leg_id and leg_row.party == "12366" and leg_row.answered_at
    assert case.agent_id == "1001" and case.outcome == "answered"

    # The console learnt each step from Redis.
    states = []
    idle = 0
    while idle < 3:  # read until the channel has been quiet for a moment
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if msg is None:
            idle += 1
            continue
        idle = 0
        data = json.loads(msg["data"])
        if data.get("type") == "transfer":
            states.append(data["state"])
    await pubsub.aclose()
    assert {"consulting", "three_way", "handed_off", "ended"} <= set(states), states
    assert service.store.facts_duplicate >= 0


async def assert_together(scene: Scene, start: float, end: float, *, absent: str) -> None:
    """Caller and agent hear each other, and no longer the destination."""
    caller, agent = scene.caller.hears(start, end), scene.agent.hears(start, end)
    assert caller["agent"] > HEARD and caller[absent] < SILENT, caller
    assert agent["caller"] > HEARD and agent[absent] < SILENT, agent


async def together_until_hangup(scene: Scene, *, absent: str, by: str = "caller") -> None:
    """From now, caller and agent talk for 4 s; then one side hangs up (the other's call ends
    too), and both must have heard each other, and not ``absent``."""
    t_back = time.time()
    await asyncio.sleep(4)
    t_end = time.time()
    first, other = ((scene.caller, scene.agent) if by == "caller"
                    else (scene.agent, scene.caller))
    await first.phone.hangup(first.call)
    await asyncio.wait_for(other.call.disconnected.wait(), 10)
    for p in (scene.caller, scene.agent):
        await p.phone.close()
    await assert_together(scene, t_back, t_end, absent=absent)


# -- emergency ----------------------------------------------------------------------------------


async def test_emergency_goes_straight_to_three_way(lab, services, phones, clean, sounds,
                                                    tmp_path):
    scene = await connect(lab, services, sounds, tmp_path)
    police_phone = await destination_line(lab, sounds, tmp_path, "police", "tone_emergency",
                              answer_delay=1.0)
    t_action = time.time()
    leg = await scene.control.emergency(scene.call_id, "1001", "police")
    police = Party("emergency", police_phone, await answered_incoming(police_phone))
    await settled_leg(leg)
    assert leg.outcome == "answered" and leg.state == "three_way" and leg.mode == "emergency"
    assert leg.answered_at - t_action < leg.ring_timeout_s
    # 110 sees the caller's number, to call back if the line drops.
    assert CALLER in police.call.record.remote_uri
    t_three = time.time()
    await asyncio.sleep(4.5)
    # The agent may leave once 110 has answered: caller and 110 stay.
    await scene.control.leave(scene.call_id, "1001")
    t_leave = time.time()
    await asyncio.wait_for(scene.agent.call.disconnected.wait(), 10)
    await asyncio.sleep(4)
    t_end = time.time()
    # 110 ends the call: the caller, handed off, is hung up too.
    await police.phone.hangup(police.call)
    await asyncio.wait_for(scene.caller.call.disconnected.wait(), 10)
    for p in (scene.caller, scene.agent, police):
        await p.phone.close()

    three = {p.name: p.hears(t_three, t_leave) for p in (scene.caller, scene.agent, police)}
    assert three["caller"]["agent"] > HEARD and three["caller"]["emergency"] > HEARD, three
    assert three["agent"]["caller"] > HEARD and three["agent"]["emergency"] > HEARD, three
    assert three["emergency"]["caller"] > HEARD and three["emergency"]["agent"] > HEARD, three
    after = police.hears(t_leave, t_end)
    assert after["caller"] > HEARD and after["agent"] < SILENT, after

    case = await case_of(scene.service, scene.call_id)
    t = case.transfers[0]
    assert (t.destination, t.kind, t.mode, t.outcome) == ("police", "emergency_line",
                                                          "emergency", "answered")
    assert t.three_way_at and t.handed_off and t.ended_by == "destination"
    assert {"transferred", "emergency", "handed_off"} <= set(case.flags)


async def test_emergency_not_answering_leaves_caller_with_agent(lab, services, phones, clean,
                                                                sounds, tmp_path):
    scene = await connect(lab, services, sounds, tmp_path)
    police_phone = await destination_line(lab, sounds, tmp_path, "police", "tone_emergency",
                              auto_answer=False)
    leg = await scene.control.emergency(scene.call_id, "1001", "police")
    ringing = await ringing_for(police_phone, leg)
    # The agent stays until 110 answers: leaving now would leave the caller with a ring.
    with pytest.raises(TransferError) as err:
        await scene.control.leave(scene.call_id, "1001")
    assert err.value.code == "not_answered"
    with pytest.raises(TransferError) as err:
        await scene.control.consult(scene.call_id, "1001", "tax")
    assert err.value.code == "busy"
    t_ring = time.time()
    await settled_leg(leg, timeout=leg.ring_timeout_s + 20)
    t_failed = time.time()
    assert leg.outcome == "no_answer" and leg.state == "ended"
    assert f"within {leg.ring_timeout_s} s" in leg.reason
    await asyncio.wait_for(ringing.disconnected.wait(), 10)
    await asyncio.sleep(3.5)
    t_end = time.time()
    await scene.caller.phone.hangup(scene.caller.call)
    await asyncio.wait_for(scene.agent.call.disconnected.wait(), 10)
    for p in (scene.caller, scene.agent):
        await p.phone.close()
    # Caller and agent talked all along, while 110 rang and after it gave up.
    await assert_together(scene, t_ring, t_failed, absent="emergency")
    await assert_together(scene, t_failed, t_end, absent="emergency")

    case = await case_of(scene.service, scene.call_id)
    t = case.transfers[0]
    assert t.outcome == "no_answer" and t.answered_at is None and t.ended_at
    assert "transfer_failed" in kinds(case)


async def test_agent_softphone_dies_while_110_rings(lab, services, phones, clean, sounds,
                                                   tmp_path):
    """The caller waits in the conference; when 110 answers, it has the caller."""
    scene = await connect(lab, services, sounds, tmp_path)
    police_phone = await destination_line(lab, sounds, tmp_path, "police", "tone_emergency",
                              auto_answer=False)
    leg = await scene.control.emergency(scene.call_id, "1001", "police")
    ringing = await ringing_for(police_phone, leg)
    scene.agent.phone.kill()
    await eventually(lambda: _left(leg), timeout=30, what="the agent's loss to be noticed")
    await police_phone.answer(ringing)
    await settled_leg(leg)
    police = Party("emergency", police_phone, ringing)
    t_answer = time.time()
    await asyncio.sleep(4)
    t_end = time.time()
    await police_phone.hangup(ringing)
    await asyncio.wait_for(scene.caller.call.disconnected.wait(), 10)
    for p in (scene.caller, police):
        await p.phone.close()
    heard = police.hears(t_answer, t_end)
    assert heard["caller"] > HEARD and heard["agent"] < SILENT, heard
    case = await case_of(scene.service, scene.call_id)
    t = case.transfers[0]
    assert (t.outcome, t.agent_left_how, t.handed_off, t.ended_by) == (
        "answered", "lost", True, "destination")


# -- a destination not reached ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["busy", "no_answer", "unreachable"])
async def test_consult_not_reached_gives_the_caller_back(lab, services, phones, clean, sounds,
                                                         tmp_path, how):
    scene = await connect(lab, services, sounds, tmp_path)
    if how == "unreachable":
        dest = "power"  # nobody listens at its trunk's address
        await wait_trunk(lab, dest, "Unreachable")
    else:
        dest = "tax"
        branch = await destination_line(lab, sounds, tmp_path, dest, "tone_branch",
                                        auto_answer=False)
    leg = await scene.control.consult(scene.call_id, "1001", dest)
    if how == "busy":
        ringing = await ringing_for(branch, leg)
        await asyncio.sleep(1)
        await branch.answer(ringing, 486)
    await settled_leg(leg, timeout=leg.ring_timeout_s + 20)
    expected = {"busy": "busy", "no_answer": "no_answer", "unreachable": "failed"}[how]
    assert leg.outcome == expected, leg
    if how == "unreachable":
        assert "unreachable" in leg.reason
    # The agent ends the call: the caller, back with the agent, is hung up too.
    await together_until_hangup(scene, absent="branch", by="agent")

    case = await case_of(scene.service, scene.call_id)
    assert [(t.destination, t.outcome) for t in case.transfers] == [(dest, expected)]


# -- cancel -------------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["ringing", "answered"])
async def test_cancel_brings_the_agent_back_to_the_caller(lab, services, phones, clean, sounds,
                                                          tmp_path, when):
    scene = await connect(lab, services, sounds, tmp_path)
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch",
                              auto_answer=when == "answered")
    leg = await scene.control.consult(scene.call_id, "1001", "tax")
    b_call = await asyncio.wait_for(branch_phone.incoming.get(), 20)
    if when == "answered":
        await settled_leg(leg)
        await asyncio.sleep(1)
    else:
        await asyncio.sleep(1.5)
    assert (await scene.control.cancel(scene.call_id, "1001")) is leg
    assert leg.ended
    await asyncio.wait_for(b_call.disconnected.wait(), 10)
    await together_until_hangup(scene, absent="branch")

    case = await case_of(scene.service, scene.call_id)
    t = case.transfers[0]
    if when == "answered":
        assert t.outcome == "answered" and t.ended_by == "agent"
    else:
        assert t.outcome == "cancelled" and t.answered_at is None
    assert not t.handed_off


# -- parties hanging up -------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["ringing", "answered"])
async def test_caller_hangs_up_during_consult(lab, services, phones, clean, sounds, tmp_path,
                                              when):
    scene = await connect(lab, services, sounds, tmp_path)
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch",
                              auto_answer=when == "answered")
    leg = await scene.control.consult(scene.call_id, "1001", "tax")
    b_call = await asyncio.wait_for(branch_phone.incoming.get(), 20)
    if when == "answered":
        await settled_leg(leg)
    await asyncio.sleep(1.5)
    await scene.caller.phone.hangup(scene.caller.call)
    # Nobody is left holding a line: the agent's call and the destination's end too.
    await asyncio.wait_for(scene.agent.call.disconnected.wait(), 10)
    await asyncio.wait_for(b_call.disconnected.wait(), 10)
    await asyncio.wait_for(leg.done.wait(), 10)

    case = await case_of(scene.service, scene.call_id)
    t = case.transfers[0]
    if when == "answered":
        assert (t.outcome, t.ended_by) == ("answered", "caller")
    else:
        assert t.outcome == "caller_hung_up" and t.answered_at is None
    assert case.call_state == "ended"


async def test_destination_hangs_up_during_three_way(lab, services, phones, clean, sounds,
                                                     tmp_path):
    scene = await connect(lab, services, sounds, tmp_path)
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch")
    leg = await scene.control.consult(scene.call_id, "1001", "tax")
    b_call = await answered_incoming(branch_phone)
    await settled_leg(leg)
    await scene.control.three_way(scene.call_id, "1001")
    await asyncio.sleep(2)
    await branch_phone.hangup(b_call)
    await asyncio.wait_for(leg.done.wait(), 10)
    assert leg.ended_by == "destination"
    await together_until_hangup(scene, absent="branch")
    case = await case_of(scene.service, scene.call_id)
    assert (case.transfers[0].ended_by, case.transfers[0].handed_off) == ("destination", False)


async def test_agent_softphone_dies_during_three_way(lab, services, phones, clean, sounds,
                                                     tmp_path):
    scene = await connect(lab, services, sounds, tmp_path)
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch")
    leg = await scene.control.consult(scene.call_id, "1001", "tax")
    branch = Party("branch", branch_phone, await answered_incoming(branch_phone))
    await settled_leg(leg)
    await scene.control.three_way(scene.call_id, "1001")
    await asyncio.sleep(2)
    scene.agent.phone.kill()  # a crash: no BYE; Asterisk notices the silence
    await eventually(lambda: _left(leg), timeout=30, what="the agent's loss to be noticed")
    t_lost = time.time()
    assert leg.agent_left_how == "lost" and leg.state == "handed_off"
    await asyncio.sleep(4)
    t_end = time.time()
    await scene.caller.phone.hangup(scene.caller.call)
    await asyncio.wait_for(branch.call.disconnected.wait(), 10)
    for p in (scene.caller, branch):
        await p.phone.close()
    caller, heard_by_branch = scene.caller.hears(t_lost, t_end), branch.hears(t_lost, t_end)
    assert caller["branch"] > HEARD and caller["agent"] < SILENT, caller
    assert heard_by_branch["caller"] > HEARD and heard_by_branch["agent"] < SILENT

    case = await case_of(scene.service, scene.call_id)
    t = case.transfers[0]
    assert t.agent_left_how == "lost" and t.handed_off and t.ended_by == "caller"
    assert {"agent_lost", "handed_off"} <= set(case.flags)


async def _left(leg: Any) -> bool:
    return leg.agent_left_how is not None


async def test_agent_softphone_dies_while_consult_rings(lab, services, phones, clean, sounds,
                                                        tmp_path):
    """Nobody has the caller: the dial stops and the caller goes back to the queue, ahead,
    where another agent takes the call."""
    scene = await connect(lab, services, sounds, tmp_path)
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch",
                                          auto_answer=False)
    leg = await scene.control.consult(scene.call_id, "1001", "tax")
    b_call = await asyncio.wait_for(branch_phone.incoming.get(), 20)
    other = await lab.agent("1002", play=sounds["tone_agent"], record_dir=tmp_path / "rec")
    # Qualified before the caller goes back to the queue (a fresh clone once waited 30 s for
    # 1002's next qualify: its first OPTIONS answered late, the queue skipped it).
    await wait_aor(lab, "1002", timeout=45)
    scene.agent.phone.kill()
    await asyncio.wait_for(leg.done.wait(), 30)
    assert leg.outcome == "cancelled"
    await asyncio.wait_for(b_call.disconnected.wait(), 10)
    second = await answered_incoming(other, timeout=30)
    await asyncio.sleep(1)
    await other.hangup(second)
    await asyncio.wait_for(scene.caller.call.disconnected.wait(), 10)
    case = await case_of(scene.service, scene.call_id)
    assert "requeued" in case.flags and "requeued" in kinds(case)
    t = case.transfers[0]
    assert (t.outcome, t.agent_left_how, t.handed_off) == ("cancelled", "lost", False)
    assert {x.party for x in case.legs if x.role == "agent"} >= {"1001", "1002"}


# -- hand-overs into 12345 ---------------------------------------------------------------------


async def test_handover_from_119_goes_ahead_of_waiting_callers(lab, services, phones, clean,
                                                               sounds, tmp_path):
    service = await services.start()
    callers = []
    for i, number in enumerate(("13900000001", "13900000002")):
        p = await lab.caller(number, play=sounds["tone_caller"])
        callers.append((p, await lab.dial(p)))
        await eventually(lambda n=i + 1: _waiting(service, n), what=f"{i + 1} callers waiting")
    fire = await lab.caller("13912345119", play=sounds["tone_emergency"])
    handed = await lab.dial(fire, trunk="fire119")
    await eventually(lambda: _waiting(service, 3), what="the hand-over waiting")
    # Now an agent signs on: the first call offered is the hand-over.
    agent = await lab.agent("1001", play=sounds["tone_agent"])
    first = await answered_incoming(agent, timeout=30)
    # The agent's phone shows the hand-over's caller masked, as the console does.
    assert "sip:139****5119@" in first.record.remote_uri, first.record.remote_uri
    await agent.hangup(first)
    await asyncio.wait_for(handed.disconnected.wait(), 10)
    for p, c in callers:
        await p.hangup(c)

    cases = await eventually(lambda: _all_ended(service, 3), what="three cases")
    by_caller = {c.caller_masked: c for c in cases}
    h = by_caller["139****5119"]
    assert h.referred_by == "119" and h.trunk == "fire119"
    assert h.priority == service.cfg.routing.priority_handover
    assert "handover" in h.flags and "handover" in kinds(h)
    assert h.agent_id == "1001" and h.outcome == "answered"
    assert all(c.referred_by is None for c in cases if c is not h)
    assert service.stats()["transfers"]["handovers"] == 1


async def _waiting(service: Any, n: int) -> bool:
    for rt in service.nodes.values():
        snap = await rt.ami.snapshot()
        if len(snap.entries) >= n:
            return True
    return False


async def _all_ended(service: Any, n: int) -> list[Any] | None:
    cases = await service.store.recent(10)
    ended = [c for c in cases if c.call_state == "ended"]
    return ended if len(ended) >= n else None


# -- actions that do not fit ---------------------------------------------------------------------


async def test_actions_that_do_not_fit_are_refused(lab, services, phones, clean, sounds,
                                                   tmp_path):
    scene = await connect(lab, services, sounds, tmp_path)
    control = scene.control
    for action, args, code in [
        (control.three_way, (scene.call_id, "1001"), "no_leg"),
        (control.cancel, (scene.call_id, "1001"), "no_leg"),
        (control.consult, (scene.call_id, "1001", "nowhere"), "unknown_destination"),
        (control.consult, (scene.call_id, "1002", "tax"), "not_your_call"),
        (control.consult, ("node1:no-such-call", "1001", "tax"), "no_call"),
        (control.consult, ("garbage", "1001", "tax"), "no_call"),
    ]:
        with pytest.raises(TransferError) as err:
            await action(*args)
        assert err.value.code == code, (action.__name__, args, err.value)
    # The case number works as well as the call id.
    case = await case_of(scene.service, scene.call_id, ended=False)
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch",
                                          auto_answer=False)
    leg = await control.consult(case.number, "1001", "tax")
    assert leg.case_number == case.number
    await asyncio.wait_for(branch_phone.incoming.get(), 20)
    with pytest.raises(TransferError) as err:
        await control.three_way(case.number, "1001")
    assert err.value.code == "not_answered"
    await control.cancel(case.number, "1001")
    assert leg.outcome == "cancelled"
    await scene.caller.phone.hangup(scene.caller.call)
    await asyncio.wait_for(scene.agent.call.disconnected.wait(), 10)


# -- the service away during a transfer --------------------------------------------------------


async def test_service_away_during_consult(lab, services, phones, clean, sounds, tmp_path):
    """Asterisk carries on alone: the caller on hold joins 12366 when the agent hangs up; left
    alone when 12366 hangs up, the caller goes back to the queue once the service is back, and
    the case gets the leg's end from Asterisk's CEL, once."""
    scene = await connect(lab, services, sounds, tmp_path)
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch")
    leg = await scene.control.consult(scene.call_id, "1001", "tax")
    branch = Party("branch", branch_phone, await answered_incoming(branch_phone))
    await settled_leg(leg)
    conf = f"hl-{scene.call_id.split(':', 1)[1]}"
    await services.stop(scene.service)

    await scene.agent.phone.hangup(scene.agent.call)
    await scene.agent.phone.close()  # and signs off
    await eventually(lambda: _members(lab, conf, 2), what="the caller to join 12366")
    t_joined = time.time()
    await asyncio.sleep(4)
    t_end = time.time()
    await branch_phone.hangup(branch.call)
    await branch_phone.close()
    heard = branch.hears(t_joined, t_end)
    assert heard["caller"] > HEARD and heard["agent"] < SILENT, heard

    other = await lab.agent("1002", play=sounds["tone_agent"], record_dir=tmp_path / "rec")
    service = await services.start()
    second = await answered_incoming(other, timeout=30)
    await asyncio.sleep(1)
    for rt in service.nodes.values():
        rt.cel.leg_grace_s = 0.0
        await rt.cel.sweep()
    await other.hangup(second)
    await asyncio.wait_for(scene.caller.call.disconnected.wait(), 10)

    case = await case_of(service, scene.call_id)
    assert "requeued" in case.flags
    t = case.transfers[0]
    assert (t.leg_id, t.destination, t.outcome) == (leg.leg_id, "tax", "answered")
    assert t.ended_at and t.ended_by == "destination" and t.mode == "consult"
    events = kinds(case)
    assert events.count("transfer_answered") == 1 and events.count("transfer_ended") == 1
    # The leg's facts from CEL again, live's and CEL's together: nothing counted twice.
    before, dup = len(case.events), service.store.facts_duplicate
    rt = service.nodes[lab.node.id]
    rows = await asyncio.to_thread(read_cel, rt.cel.path, 0, linkedid=leg.leg_id)
    facts = facts_from_cel(lab.node.id, rows)
    assert {f.kind for f in facts} == {"transfer_dialing", "transfer_ringing",
                                       "transfer_answered", "transfer_ended"}
    for fact in facts:
        await service.store.apply(fact)
    assert len((await case_of(service, scene.call_id)).events) == before
    assert service.store.facts_duplicate == dup + len(facts)


async def _members(lab: Any, conf: str, n: int) -> bool:
    out = await asyncio.to_thread(lab.instance.cli, f"confbridge list {conf}")
    return out.count("hotline_user") >= n


async def test_ami_lost_while_the_destination_hangs_up(lab, services, phones, clean, sounds,
                                                       tmp_path):
    """The service does not see 12366 hang up during a consultation (AMI half-open); once
    reconnected it learns it from Asterisk's snapshot and gives the agent the caller back."""
    proxy = await FaultProxy(lab.node.ami_host, lab.node.ami_port).start()
    try:
        service = await services.start(ami_addresses={lab.node.id: ("127.0.0.1", proxy.port)})
        rec = tmp_path / "rec"
        agent = await lab.agent("1001", play=sounds["tone_agent"], record_dir=rec)
        caller = await lab.caller(CALLER, play=sounds["tone_caller"], record_dir=rec)
        call = await lab.dial(caller)
        a_call = await answered_incoming(agent, timeout=30)
        scene = Scene(service, "", Party("caller", caller, call), Party("agent", agent, a_call))
        rt = service.nodes[lab.node.id]
        scene.call_id = await eventually(lambda: _answered_by(rt, "1001"), what="the answer")
        branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch")
        leg = await scene.control.consult(scene.call_id, "1001", "tax")
        b_call = await answered_incoming(branch_phone)
        await settled_leg(leg)

        connections = rt.ami.connections
        proxy.blackhole(including_new=True)
        await branch_phone.hangup(b_call)
        # The watchdog drops the half-open connection (and the new one stays silent too).
        await eventually(lambda: _dropped_since(rt, connections), timeout=45,
                         what="the half-open AMI to be dropped")
        assert not leg.ended  # the service has not heard of it
        proxy.blackhole(False)
        await asyncio.wait_for(leg.done.wait(), 30)
        assert leg.ended_by == "destination"
        await together_until_hangup(scene, absent="branch")
        case = await case_of(service, scene.call_id)
        assert case.transfers[0].ended_by == "destination"
        assert rt.resyncs >= 1
    finally:
        await proxy.stop()


async def _answered_by(rt: Any, agent_id: str) -> str | None:
    return next((c.call_id for c in rt.tracker.calls.values()
                 if c.answered_by == agent_id and not c.ended), None)


async def _dropped_since(rt: Any, connections: int) -> bool:
    return not rt.ami.connected or rt.ami.connections > connections


# -- blind transfers and the console's entry point ---------------------------------------------


async def test_blind_transfer_through_the_console_entry_point(lab, services, phones, clean,
                                                              sounds, tmp_path):
    """The agent is released at once; the caller hears ringback, then 12366."""
    scene = await connect(lab, services, sounds, tmp_path)
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "tone_branch",
                                          answer_delay=2.0)
    snap = await scene.control.transfer(call_id=scene.call_id, agent_id="1001", target="12366",
                                        mode="blind")
    assert snap["mode"] == "blind" and snap["destination"] == "tax"
    await asyncio.wait_for(scene.agent.call.disconnected.wait(), 10)
    branch = Party("branch", branch_phone, await answered_incoming(branch_phone))
    leg = scene.control.leg(snap["leg_id"])
    await settled_leg(leg)
    t_joined = time.time()
    assert leg.state == "handed_off" and leg.agent_left_how == "left"
    await asyncio.sleep(4)
    t_end = time.time()
    await branch_phone.hangup(branch.call)
    await asyncio.wait_for(scene.caller.call.disconnected.wait(), 10)
    for p in (scene.caller, scene.agent, branch):
        await p.phone.close()
    heard = scene.caller.hears(t_joined, t_end)
    assert heard["branch"] > HEARD and heard["agent"] < SILENT, heard
    case = await case_of(scene.service, scene.call_id)
    t = case.transfers[0]
    assert (t.mode, t.outcome, t.handed_off, t.ended_by) == ("blind", "answered", True,
                                                             "destination")


async def test_blind_transfer_not_answered_requeues_the_caller(lab, services, phones, clean,
                                                               sounds, tmp_path):
    scene = await connect(lab, services, sounds, tmp_path)
    await wait_trunk(lab, "power", "Unreachable")
    with pytest.raises(TransferError) as err:
        await scene.control.transfer(call_id=scene.call_id, agent_id="1001", target="95598",
                                     mode="sideways")
    assert err.value.code == "bad_mode"
    leg = await scene.control.blind(scene.call_id, "1001", "power")
    await settled_leg(leg)
    assert leg.outcome == "failed"
    # Back in the queue, ahead: the agent (free again) gets the caller once more.
    again = await answered_incoming(scene.agent.phone, timeout=30)
    await asyncio.sleep(1)
    await scene.agent.phone.hangup(again)
    await asyncio.wait_for(scene.caller.call.disconnected.wait(), 10)
    case = await case_of(scene.service, scene.call_id)
    assert "requeued" in case.flags
    t = case.transfers[0]
    assert (t.outcome, t.handed_off, t.agent_left_how) == ("failed", False, "left")


async def test_agent_on_hold_longer_than_the_media_timeout_stays(lab, services, phones, clean,
                                                                 sounds, tmp_path):
    """The media timeout that notices a dead softphone spares one that holds the call."""
    scene = await connect(lab, services, sounds, tmp_path)
    await scene.agent.phone.hold(scene.agent.call)
    await asyncio.sleep(lab.cfg.transfers.agent_media_timeout_s + 4)
    assert not scene.agent.call.disconnected.is_set()
    assert not scene.caller.call.disconnected.is_set()
    await scene.agent.phone.unhold(scene.agent.call)
    await asyncio.sleep(1)
    await scene.caller.phone.hangup(scene.caller.call)
    await asyncio.wait_for(scene.agent.call.disconnected.wait(), 10)
