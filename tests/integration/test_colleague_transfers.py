"""Transfers between colleagues through the real Asterisk, from the console's transfer panel:
consult another agent then hand the caller over (three-way first), and a blind transfer to a
skill queue keeping the caller's priority and case.

Caller (700 Hz), first agent (1300 Hz) and colleague (1900 Hz) each play their own tone, so
each party's recording shows whom it heard in each phase; the case keeps one record with both
agents' legs, and one recording from the first answer to the end of the call.
"""

from __future__ import annotations

import asyncio
import io
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common import sealed
from tests.support.asterisk import wait_clean
from tests.support.audio import tone_level
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

CALLER = "13812345678"
FREQS = {"caller": 700, "agent": 1300, "colleague": 1900}
HEARD = 0.12
SILENT = 0.03


@dataclass
class Party:
    name: str
    phone: Any
    call: Any

    def hears(self, start: float, end: float) -> dict[str, float]:
        t0 = self.call.media_at
        assert t0 is not None, f"{self.name}: no media"
        a, b = start - t0 + 1.0, end - t0 - 0.3
        assert b - a > 1.0, f"{self.name}: window too short ({a:.1f}..{b:.1f})"
        return {who: round(tone_level(self.call.finished_recording, f, a, b), 3)
                for who, f in FREQS.items()}


async def _talking(agent: Any) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        _status, doc = await agent.get("/api/console/state")
        call = doc.get("call") or {}
        return doc if call.get("state") == "talking" and doc.get("case") else None

    return await eventually(check, 20, what="the agent's console showing the call")


async def _ended_case(svc: Any, number: str) -> Any:
    async def check() -> Any:
        case = await svc.store.get(number)
        return case if case is not None and case.call_state == "ended" else None

    return await eventually(check, 20, what="the case to end")


def _seconds(svc: Any, path: str) -> float:
    audio = sealed.read_all(Path(path), svc.transcripts.personal)
    with wave.open(io.BytesIO(audio), "rb") as w:
        return w.getnframes() / w.getframerate()


async def test_consult_a_colleague_three_way_then_hand_over(console, phones, sounds,
                                                            tmp_path):
    lab, svc = console.lab, console.service
    rec = tmp_path / "rec"
    first = await console.user("agent1001")
    second = await console.user("agent1002")
    # 1002 is paused: the caller comes to 1001, and 1002 is rung only by the transfer.
    status, _ = await second.post("/api/console/pause", {"reason": "training"})
    assert status == 200
    status, doc = await first.get("/api/console/destinations")
    ids = {d["id"]: d for d in doc["destinations"]}
    assert ids["agent:1002"]["kind"] == "colleague" and "agent:1001" not in ids
    assert ids["queue:suzhou-lang_en"]["kind"] == "queue"

    p1001 = await lab.agent("1001", play=sounds["tone_agent"], record_dir=rec)
    p1002 = await lab.agent("1002", play=sounds["tone_branch"], record_dir=rec,
                            answer_delay=1.0)
    caller_phone = await lab.caller(CALLER, play=sounds["tone_caller"], record_dir=rec)
    call = await lab.dial(caller_phone)
    a_call = await asyncio.wait_for(p1001.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)
    state = await _talking(first)
    number = state["case"]["number"]
    t_answer = time.time()
    await asyncio.sleep(2)
    t_dial = time.time()
    status, doc = await first.post("/api/console/transfer",
                                   {"action": "consult", "destination": "agent:1002"})
    assert status == 200, doc
    leg = svc.callcontrol.leg(doc["leg"]["leg_id"])
    assert leg.kind == "colleague" and leg.number == "1002" and leg.mode == "consult"
    b_call = await asyncio.wait_for(p1002.incoming.get(), 20)
    await asyncio.wait_for(b_call.answered.wait(), 10)
    await asyncio.wait_for(leg.settled.wait(), 20)
    assert leg.outcome == "answered" and leg.state == "consulting"
    t_consult = time.time()
    await asyncio.sleep(4)

    status, doc = await first.post("/api/console/transfer", {"action": "three_way"})
    assert status == 200 and doc["leg"]["state"] == "three_way", doc
    t_three = time.time()
    await asyncio.sleep(4.5)

    status, doc = await first.post("/api/console/transfer", {"action": "leave"})
    assert status == 200, doc
    t_leave = time.time()
    await asyncio.wait_for(a_call.disconnected.wait(), 10)
    await asyncio.sleep(4.5)
    t_end = time.time()
    await caller_phone.hangup(call)
    await asyncio.wait_for(b_call.disconnected.wait(), 10)
    await asyncio.wait_for(leg.done.wait(), 10)
    for p in (caller_phone, p1001, p1002):
        await p.close()

    parties = [Party("caller", caller_phone, call), Party("agent", p1001, a_call),
               Party("colleague", p1002, b_call)]
    consult = {p.name: p.hears(t_consult, t_three) for p in parties}
    assert consult["agent"]["colleague"] > HEARD and consult["agent"]["caller"] < SILENT, consult
    assert consult["colleague"]["agent"] > HEARD, consult
    assert consult["caller"]["agent"] < SILENT and consult["caller"]["colleague"] < SILENT, \
        consult
    three = {p.name: p.hears(t_three, t_leave) for p in parties}
    for who in three:
        for other in FREQS:
            if other != who:
                assert three[who][other] > HEARD, (who, "should hear", other, three)
    after = {p.name: p.hears(t_leave, t_end) for p in parties if p.name != "agent"}
    assert after["caller"]["colleague"] > HEARD and after["caller"]["agent"] < SILENT, after
    assert after["colleague"]["caller"] > HEARD, after

    # One case, both agents' legs; the hand-over on it.
    case = await _ended_case(svc, number)
    assert case.agent_id == "1001"
    t = case.transfers[0]
    assert (t.destination, t.kind, t.number, t.mode, t.initiator) == (
        "agent:1002", "colleague", "1002", "consult", "1001")
    assert t.outcome == "answered" and t.handed_off and t.three_way_at and t.ended_by == "caller"
    roles = {(leg_row.role, leg_row.party or "") for leg_row in case.legs}
    assert ("transfer", "1002") in roles, roles
    assert any(r.role == "agent" and r.answered_at for r in case.legs), roles
    # One recording from the first answer to the end, through the hand-over (the caller's
    # hold during the consultation is not recorded, as for external transfers).
    recordings = await eventually(lambda: _recordings(svc, number), 30, what="the recording")
    assert sorted(r["side"] for r in recordings) == ["agent", "caller", "mix"], recordings
    length = _seconds(svc, next(r["path"] for r in recordings if r["side"] == "mix"))
    expected = (t_dial - t_answer) + (t_end - t_three)
    assert length >= expected - 1.5, (length, expected)
    await second.post("/api/console/ready")
    assert await wait_clean(lab) == {}


async def _recordings(svc: Any, number: str) -> list[dict[str, Any]] | None:
    t = await svc.transcripts.for_case(number)
    return t["recordings"] or None


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_blind_transfer_to_a_skill_queue_keeps_priority_and_case(console, phones, sounds,
                                                                       tmp_path):
    lab, svc = console.lab, console.service
    first = await console.user("agent1001")
    p1001 = await lab.agent("1001", play=sounds["tone_agent"])
    caller_phone = await lab.caller(CALLER, play=sounds["tone_caller"])
    call = await lab.dial(caller_phone)
    a_call = await asyncio.wait_for(p1001.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)
    # 1002 (English, level 4; registered only now, so the first call came to 1001) answers
    # the English queue when the test says.
    p1002 = await lab.agent("1002", play=sounds["tone_branch"], auto_answer=False)
    state = await _talking(first)
    number = state["case"]["number"]
    call_id = state["call"]["call_id"]
    # The caller's queue priority, as the router leaves it on the channel (a repeat caller
    # or 绿色通道 caller has one): the transfer keeps it.
    node = svc.nodes[call_id.split(":", 1)[0]]
    tracked = node.tracker.calls[call_id]
    await node.ami.setvar(tracked.caller_uniqueid, "QUEUE_PRIO", "20")

    status, doc = await first.post("/api/console/transfer",
                                   {"action": "blind", "destination": "queue:nanjing-lang_en"})
    assert status == 200, doc
    leg = svc.callcontrol.leg(doc["leg"]["leg_id"])
    assert leg.kind == "queue" and leg.mode == "blind"
    await asyncio.wait_for(a_call.disconnected.wait(), 10)  # the first agent is free at once
    ringing = await asyncio.wait_for(p1002.incoming.get(), 30)

    async def waiting_entry() -> dict[str, str] | None:
        for m in await node.ami.send_list({"Action": "QueueStatus",
                                           "Queue": "nanjing-lang_en"}, timeout=10):
            if m.get("Event") == "QueueEntry":
                return {k: str(v) for k, v in m.items()}
        return None

    entry = await eventually(waiting_entry, 10, what="the caller waiting in the queue")
    assert entry["Priority"] == "20", entry
    assert leg.answered_at is None, "the leg is answered when an agent answers, not before"
    await p1002.answer(ringing)
    await asyncio.wait_for(leg.settled.wait(), 20)
    assert leg.outcome == "answered"
    await eventually(lambda: _taken(leg), 10, what="the answering agent named on the leg")
    assert leg.answered_by == "1002"
    await asyncio.sleep(2)
    await caller_phone.hangup(call)
    await asyncio.wait_for(ringing.disconnected.wait(), 10)
    await asyncio.wait_for(leg.done.wait(), 10)
    for p in (caller_phone, p1001, p1002):
        await p.close()

    case = await _ended_case(svc, number)
    t = case.transfers[0]
    assert (t.destination, t.kind, t.mode, t.number, t.outcome) == (
        "queue:nanjing-lang_en", "queue", "blind", "1002", "answered")
    assert t.handed_off
    assert ("transfer", "1002") in {(r.role, r.party) for r in case.legs}
    assert "transfer_taken" in [e.kind for e in case.events]
    # The queue half's own recording was not kept (the caller's covers the call).
    spool = lab.instance.dir / "spool" / "xfer"
    await eventually(lambda: _empty(spool), 10, what="the scratch recordings removed")
    assert await wait_clean(lab) == {}


async def _empty(folder: Path) -> bool:
    return not await asyncio.to_thread(lambda: any(folder.iterdir()))


async def _taken(leg: Any) -> bool:
    return leg.answered_by is not None


async def test_blind_transfer_to_a_colleague(console, phones, sounds, tmp_path):
    lab, svc = console.lab, console.service
    first = await console.user("agent1001")
    p1001 = await lab.agent("1001", play=sounds["tone_agent"])
    caller_phone = await lab.caller(CALLER, play=sounds["tone_caller"])
    call = await lab.dial(caller_phone)
    a_call = await asyncio.wait_for(p1001.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)
    number = (await _talking(first))["case"]["number"]
    p1002 = await lab.agent("1002", play=sounds["tone_branch"])

    status, doc = await first.post("/api/console/transfer",
                                   {"action": "blind", "destination": "agent:1002"})
    assert status == 200 and doc["leg"]["kind"] == "colleague", doc
    await asyncio.wait_for(a_call.disconnected.wait(), 10)  # released at once
    b_call = await asyncio.wait_for(p1002.incoming.get(), 20)
    await asyncio.wait_for(b_call.answered.wait(), 10)
    leg = svc.callcontrol.leg(doc["leg"]["leg_id"])
    await asyncio.wait_for(leg.settled.wait(), 20)
    assert leg.state == "handed_off"
    await p1002.hangup(b_call)  # the colleague ends the call: so does the caller's side
    await asyncio.wait_for(call.disconnected.wait(), 10)
    for p in (caller_phone, p1001, p1002):
        await p.close()
    case = await _ended_case(svc, number)
    t = case.transfers[0]
    assert (t.destination, t.mode, t.number, t.outcome, t.handed_off, t.ended_by) == (
        "agent:1002", "blind", "1002", "answered", True, "destination")
    assert await wait_clean(lab) == {}
