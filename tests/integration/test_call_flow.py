"""A caller dials 12345 through the real Asterisk, a registered softphone answers from the
queue, both hear each other, and the case record tells the story."""

from __future__ import annotations

import pytest

from tests.support.artifacts import copy_artifact
from tests.support.audio import duration, speech_like, tone_level
from tests.support.calls import CALLER, answered_call, arrived_names
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_caller_reaches_agent_and_case_is_complete(lab, phones, services, sounds, db,
                                                         tmp_path, artifacts):
    service = await services.start(db)
    names = arrived_names(service, lab.node.id)
    call, incoming = await answered_call(lab, phones, sounds, tmp=tmp_path)

    # Each side's recording holds the other side: the agent heard speech, the caller heard
    # the agent's 1300 Hz tone once connected (before that: the prompt and silence).
    # Read only what each softphone's process reported finished and complete.
    agent_heard, caller_heard = await incoming.recording(), await call.recording()
    copy_artifact(agent_heard, artifacts, f"call-{db}-agent-heard.wav")
    copy_artifact(caller_heard, artifacts, f"call-{db}-caller-heard.wav")
    assert speech_like(agent_heard), "agent heard no speech"
    assert tone_level(agent_heard, 1300) < 0.2, "agent heard its own tone back"
    end = duration(caller_heard)
    assert tone_level(caller_heard, 1300, end - 2.5, end - 0.3) > 0.6, (
        "caller did not hear the agent")

    await service.drain()
    case = await eventually(lambda: _ended_case(service), what="the case to end")
    assert case.queue == "nanjing-general"
    assert case.agent_id == "1001"
    assert case.city == "nanjing"
    assert case.dialed_number == "12345"
    assert case.trunk == "nanjing"
    assert case.route_source == "router"
    assert "city=nanjing (trunk nanjing)" in case.route_reasons
    assert case.outcome == "answered"
    assert case.hangup_by == "caller"
    # Seen live (not rebuilt from CEL): by the tracker or by the router, whichever of
    # the two facts reached the store first (not ordered: the AMI event may come later).
    assert case.source in ("live", "router"), case.source
    assert 0 <= case.wait_seconds < 5
    assert 2.0 <= case.talk_seconds <= 5.0
    assert case.number.startswith(case.created_at.astimezone().strftime("%Y")[:4])
    kinds = [e.kind for e in case.events]
    # Not "completed" before "ended": under load Asterisk sends the queue's AgentComplete after
    # the caller's Hangup (the tracker copes: telephony/calls/tracker.py _ended).
    for a, b in [("arrived", "routed"), ("routed", "queued"), ("queued", "ringing"),
                 ("ringing", "answered"), ("answered", "completed"), ("answered", "ended")]:
        assert kinds.index(a) < kinds.index(b), kinds
    times = {e.kind: e.at for e in case.events}
    assert times["ended"] >= times["answered"] >= times["queued"] >= times["arrived"]
    assert abs((case.ended_at - case.answered_at).total_seconds() - case.talk_seconds) < 1.5
    roles = sorted(leg.role for leg in case.legs)
    assert roles == ["agent", "caller"]
    agent_leg = next(leg for leg in case.legs if leg.role == "agent")
    assert agent_leg.party == "1001" and agent_leg.answered_at and agent_leg.ended_at

    # The caller's number is personal data: encrypted, masked, found by keyed hash.
    assert case.caller_masked == "138****5678"
    assert CALLER not in (case.caller_enc or "")
    assert service.store.caller_number(case) == CALLER
    assert case.caller_hash == service.personal.lookup_hash("+86 138-1234-5678")
    assert all(CALLER not in str(e.detail) for e in case.events)
    assert names == ["张三"]  # decoded, and stored nowhere (test_privacy_calls.py)

    live = await service.live.agent("1001")
    assert live["node"] == lab.node.id


async def _ended_case(service):
    cases = await service.store.recent(5)
    return next((c for c in cases if c.call_state == "ended"), None)
