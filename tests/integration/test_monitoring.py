"""监听、耳语、强插 from the wallboard, through the real Asterisk (ChanSpy).

Caller, agent and supervisor are pjsua2 parties, each playing its own tone (caller 700 Hz,
agent 1300 Hz, supervisor 1900 Hz), so each party's recording shows whom it heard in each
phase: listening, the supervisor hears both and nobody hears the supervisor; whispering, only
the agent hears the supervisor; barging, everyone hears everyone. One phone call throughout:
the mode changes without the supervisor hanging up.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.asterisk import wait_clean
from tests.support.audio import tone_level
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

CALLER = "13812345678"
FREQS = {"caller": 700, "agent": 1300, "supervisor": 1900}
HEARD = 0.08  # share of the signal's energy in a party's tone band: clearly there
SILENT = 0.03  # ... clearly not there
PHASE_S = 4.5


@dataclass
class Party:
    name: str
    phone: Any
    call: Any

    def hears(self, start: float, end: float) -> dict[str, float]:
        """Tone levels in what this party heard between two wall-clock times (the first
        second of a phase may still carry the previous one)."""
        t0 = self.call.media_at
        assert t0 is not None, f"{self.name}: no media"
        a, b = start - t0 + 1.0, end - t0 - 0.3
        assert b - a > 1.0, f"{self.name}: window too short ({a:.1f}..{b:.1f})"
        return {who: round(tone_level(self.call.finished_recording, f, a, b), 3)
                for who, f in FREQS.items()}


async def _case_number(console: Any, agent: Any) -> str:
    async def talking() -> str | None:
        _status, doc = await agent.get("/api/console/state")
        call = doc.get("call") or {}
        return doc["case"]["number"] if call.get("state") == "talking" and doc.get(
            "case") else None

    return await eventually(talking, 20, what="the agent's console showing the call")


async def test_listen_whisper_barge_on_one_phone_call(console, phones, sounds, tmp_path):
    lab, svc = console.lab, console.service
    rec = tmp_path / "rec"
    sup = await console.user("sup")
    agent_user = await console.user("agent1001")
    sup_phone = await lab.supervisor("9001", play=sounds["tone_branch"], record_dir=rec)
    agent_phone = await lab.agent("1001", play=sounds["tone_agent"], record_dir=rec)
    caller_phone = await lab.caller(CALLER, play=sounds["tone_caller"], record_dir=rec)
    call = await lab.dial(caller_phone)
    a_call = await asyncio.wait_for(agent_phone.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)
    number = await _case_number(console, agent_user)

    # Who may: the agent may not monitor, nor an admin; nobody without a desk phone.
    status, doc = await agent_user.post("/api/monitoring", {"agent": "1001"})
    assert status == 403, doc
    admin = await console.user("admin")
    status, doc = await admin.post("/api/monitoring", {"agent": "1001"})
    assert status == 403, doc
    status, doc = await sup.post("/api/monitoring", {"agent": "1002"})
    assert status == 409 and doc["error"] == "no_call", doc

    status, doc = await sup.post("/api/monitoring", {"agent": "1001", "mode": "listen"})
    assert status == 200, doc
    sid = doc["session"]["session_id"]
    assert doc["session"]["case"] == number and doc["session"]["phone"] == "9001"
    s_call = await asyncio.wait_for(sup_phone.incoming.get(), 20)
    await asyncio.wait_for(s_call.answered.wait(), 10)
    session = svc.monitoring.session(sid)

    async def active() -> bool:
        return session.state == "active"

    await eventually(active, 10, what="the supervisor on the call")
    await asyncio.wait_for(s_call.media_active.wait(), 10)
    t_listen = time.time()
    await asyncio.sleep(PHASE_S)

    status, doc = await sup.post(f"/api/monitoring/{sid}/mode", {"mode": "whisper"})
    assert status == 200 and doc["session"]["mode"] == "whisper", doc
    t_whisper = time.time()
    await asyncio.sleep(PHASE_S)

    status, doc = await sup.post(f"/api/monitoring/{sid}/mode", {"mode": "barge"})
    assert status == 200 and doc["session"]["mode"] == "barge", doc
    t_barge = time.time()
    await asyncio.sleep(PHASE_S)
    t_end = time.time()

    # Another supervisor's session is not someone else's to change.
    status, doc = await sup.get("/api/monitoring")
    assert status == 200 and [s["session_id"] for s in doc["sessions"]] == [sid], doc
    assert doc["phone"] == "9001" and doc["agent_sees"] is False
    # The policy (off): the agent's console says nothing of it.
    _status, state = await agent_user.get("/api/console/state")
    assert "monitored" not in state

    status, doc = await sup.post(f"/api/monitoring/{sid}/stop")
    assert status == 200, doc
    await asyncio.wait_for(s_call.disconnected.wait(), 10)
    await eventually(lambda: _ended(session), 10, what="the session to end")
    assert not a_call.disconnected.is_set() and not call.disconnected.is_set(), \
        "the supervisor leaving must not end the call"
    await caller_phone.hangup(call)
    await asyncio.wait_for(a_call.disconnected.wait(), 10)
    for p in (caller_phone, agent_phone, sup_phone):
        await p.close()

    parties = [Party("caller", caller_phone, call), Party("agent", agent_phone, a_call),
               Party("supervisor", sup_phone, s_call)]
    heard = {name: {p.name: p.hears(a, b) for p in parties}
             for name, (a, b) in (("listen", (t_listen, t_whisper)),
                                  ("whisper", (t_whisper, t_barge)),
                                  ("barge", (t_barge, t_end)))}
    listen, whisper, barge = heard["listen"], heard["whisper"], heard["barge"]
    # 监听: the supervisor hears both sides; neither hears the supervisor.
    assert listen["supervisor"]["caller"] > HEARD and listen["supervisor"]["agent"] > HEARD, heard
    assert listen["caller"]["supervisor"] < SILENT and listen["agent"]["supervisor"] < SILENT, heard
    assert listen["caller"]["agent"] > HEARD and listen["agent"]["caller"] > HEARD, heard
    # 耳语: only the agent hears the supervisor; the supervisor still hears both.
    assert whisper["agent"]["supervisor"] > HEARD, heard
    assert whisper["caller"]["supervisor"] < SILENT, heard
    assert whisper["supervisor"]["caller"] > HEARD and whisper["supervisor"]["agent"] > HEARD, heard
    # 强插: everyone hears the supervisor.
    assert barge["agent"]["supervisor"] > HEARD and barge["caller"]["supervisor"] > HEARD, heard
    assert barge["supervisor"]["caller"] > HEARD and barge["supervisor"]["agent"] > HEARD, heard

    assert [m for m, _at in session.modes] == ["listen", "whisper", "barge"]
    # Every use in the audit log, with the case, the agent and the mode.
    entries = await svc_audit(console, "monitoring.")
    assert [(e["action"], e["detail"]["mode"]) for e in entries] == [
        ("monitoring.start", "listen"), ("monitoring.mode", "whisper"),
        ("monitoring.mode", "barge"), ("monitoring.stop", "barge")], entries
    assert all(e["user"] == "sup" and e["role"] == "supervisor" and e["case"] == number
               and e["detail"]["agent"] == "1001" for e in entries), entries
    assert await wait_clean(lab) == {}


async def _ended(session: Any) -> bool:
    return session.state == "ended"


async def svc_audit(console: Any, prefix: str) -> list[dict[str, Any]]:
    """The audit log's entries whose action starts with ``prefix``, oldest first."""
    admin = await console.user("admin")
    status, doc = await admin.get("/api/audit?limit=200")
    assert status == 200, doc
    return [e for e in reversed(doc["entries"]) if e["action"].startswith(prefix)]


async def test_agent_sees_it_when_the_policy_says_so_and_the_call_ending_ends_it(
        console, phones, sounds, tmp_path):
    lab, svc = console.lab, console.service
    # [supervision] agent_sees_monitoring = true (read on every change).
    policy = svc.cfg.supervision.model_copy(update={"agent_sees_monitoring": True})
    svc.monitoring.cfg = svc.cfg.model_copy(update={"supervision": policy})
    sup = await console.user("sup")
    agent_user = await console.user("agent1001")
    sup_phone = await lab.supervisor("9001", play=sounds["tone_branch"])
    agent_phone = await lab.agent("1001", play=sounds["tone_agent"])
    caller_phone = await lab.caller(CALLER, play=sounds["tone_caller"])
    call = await lab.dial(caller_phone)
    a_call = await asyncio.wait_for(agent_phone.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)
    await _case_number(console, agent_user)
    _status, state = await agent_user.get("/api/console/state")
    assert state["monitored"] is None

    status, doc = await sup.post("/api/monitoring", {"agent": "1001", "mode": "whisper"})
    assert status == 200, doc
    s_call = await asyncio.wait_for(sup_phone.incoming.get(), 20)
    await asyncio.wait_for(s_call.answered.wait(), 10)

    async def shown() -> Any:
        _status, state = await agent_user.get("/api/console/state")
        return state["monitored"]

    assert await eventually(shown, 10, what="the console showing it") == {"mode": "whisper"}
    # The agent's call ends: ChanSpy ends with it, and so does the supervisor's phone call.
    await caller_phone.hangup(call)
    await asyncio.wait_for(a_call.disconnected.wait(), 10)
    await asyncio.wait_for(s_call.disconnected.wait(), 10)
    session = svc.monitoring.session(doc["session"]["session_id"])
    await eventually(lambda: _ended(session), 10, what="the session to end")
    status, doc = await sup.post(f"/api/monitoring/{session.session_id}/mode",
                                 {"mode": "barge"})
    assert status == 409 and doc["error"] == "no_session", doc
    for p in (caller_phone, agent_phone, sup_phone):
        await p.close()
    assert await wait_clean(lab) == {}
