"""A transfer to another city's skill queue, over the inter-node trunk, on two real Asterisk
nodes (one per city): a Nanjing caller answered on node1 is handed to Suzhou's English queue
(外语坐席) and answered there, on node2, by a Suzhou agent. The case stays Nanjing's one case,
with the leg and the agent who took it; node2 opens no case of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent_desk.softphone.phones import SipPhones
from lab.harness import Lab
from tests.support.audio import tone_level
from tests.support.own_lab import service_factory, sip_parties, started_lab
from tests.support.service import ServiceFactory, lab_test_config
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

NODES = [{"id": "node1"}, {"id": "node2"}]
CITIES = [{"id": "nanjing", "name": "南京", "node": "node1", "area_codes": ["025"]},
          {"id": "suzhou", "name": "苏州", "node": "node2", "area_codes": ["0512"]}]
TRUNKS = [{"id": "nanjing", "node": "node1", "city": "nanjing",
           "match_header": "X-Hotline-Trunk: nanjing"},
          {"id": "suzhou", "node": "node2", "city": "suzhou",
           "match_header": "X-Hotline-Trunk: suzhou"}]
AGENTS = [{"id": "1001", "name": "王芳", "city": "nanjing", "skills": {"general": 4}},
          {"id": "2001", "name": "陈静", "city": "suzhou", "skills": {"lang_en": 4}}]
RELAX = {"min_level": 1, "lower_level_after_s": 200, "city_general_after_s": 250,
         "province_after_s": 300}


@pytest.fixture(scope="module")
async def nlab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    cfg = lab_test_config(tmp_path_factory.mktemp("xfer-nodes-lab"), **{
        "nodes": NODES, "cities": CITIES, "trunks": TRUNKS, "agents": AGENTS,
        "numbers": [{"number": "12345", "skill": "general"}],
        "skills": {"general": "综合咨询", "lang_en": "English"}, "menu.keys": {},
        "routing": {"relax": RELAX, "relax_skills": {}}, "surge": {"skills": ["general"]},
        "supervisors": [], "branch_centers": [], "emergency_lines": []})
    async with started_lab(cfg) as the_lab:
        yield the_lab


@pytest.fixture
async def services(nlab: Lab, tmp_path: Path, pg_admin: str) -> AsyncIterator[ServiceFactory]:
    async with service_factory(nlab, tmp_path, pg_admin) as factory:
        yield factory


@pytest.fixture
async def phones(nlab: Lab, tmp_path: Path, request: pytest.FixtureRequest
                 ) -> AsyncIterator[SipPhones]:
    """SIP parties; afterwards neither node may have a channel left (trunk legs included)."""
    async with sip_parties(nlab, tmp_path,
                           passed=lambda: getattr(request.node, "rep_call_passed", True)) as p:
        yield p


async def _ready(service: Any, *agents: str) -> None:
    async def check() -> bool:
        for a in agents:
            if (await service.live.agent(a)).get("state") != "ready":
                return False
        return True
    await eventually(check, timeout=30, what=f"agents {agents} ready")


async def test_transfer_to_another_citys_queue_is_answered_there(
        nlab: Lab, services: ServiceFactory, phones: SipPhones, sounds: dict[str, Path],
        tmp_path: Path) -> None:
    service = await services.start()
    rec = tmp_path / "rec"
    a1001 = await nlab.agent("1001", play=sounds["tone_agent"], record_dir=rec)
    a2001 = await nlab.agent("2001", play=sounds["tone_branch"], record_dir=rec)
    await _ready(service, "1001", "2001")
    caller = await nlab.caller("13800001111", play=sounds["tone_caller"], record_dir=rec)
    call = await nlab.dial(caller, trunk="nanjing", node_id="node1")
    a_call = await asyncio.wait_for(a1001.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)

    async def answered() -> str | None:
        for c in service.nodes["node1"].tracker.calls.values():
            if c.answered_by == "1001" and not c.ended:
                return c.call_id
        return None

    call_id = await eventually(answered, what="the tracker to see the answer")
    leg = await service.callcontrol.blind(call_id, "1001", "queue:suzhou-lang_en")
    assert leg.kind == "queue" and leg.name == "苏州 · English"
    await asyncio.wait_for(a_call.disconnected.wait(), 10)
    b_call = await asyncio.wait_for(a2001.incoming.get(), 30)
    await asyncio.wait_for(b_call.answered.wait(), 10)
    await asyncio.wait_for(leg.settled.wait(), 20)
    assert leg.outcome == "answered"
    await eventually(lambda: _taken(leg), 10, what="node2's agent named on the leg")
    assert leg.answered_by == "2001"
    await asyncio.wait_for(b_call.media_active.wait(), 10)
    t_there = time.time()
    await asyncio.sleep(4)
    t_end = time.time()
    await caller.hangup(call)
    await asyncio.wait_for(b_call.disconnected.wait(), 10)
    await asyncio.wait_for(leg.done.wait(), 10)
    for p in (caller, a1001, a2001):
        await p.close()

    # Caller and the Suzhou agent hear each other (over the trunk, SRTP), not the first agent.
    t0 = call.media_at
    heard = {who: tone_level(call.finished_recording, f, t_there - t0 + 1.0, t_end - t0 - 0.3)
             for who, f in (("nanjing", 1300), ("suzhou", 1900))}
    assert heard["suzhou"] > 0.12 and heard["nanjing"] < 0.03, heard
    t1 = b_call.media_at
    back = tone_level(b_call.finished_recording, 700, t_there - t1 + 1.0, t_end - t1 - 0.3)
    assert back > 0.12, back

    async def ended() -> Any:
        cases = await service.store.recent(5)
        return cases if cases and all(c.call_state == "ended" for c in cases) else None

    cases = await eventually(ended, 20, what="the case to end")
    assert len(cases) == 1, [(c.number, c.node) for c in cases]  # none opened on node2
    case = await service.store.get(cases[0].number)
    assert case.node == "node1" and case.city == "nanjing" and case.agent_id == "1001"
    t = case.transfers[0]
    assert (t.destination, t.kind, t.mode, t.number, t.outcome) == (
        "queue:suzhou-lang_en", "queue", "blind", "2001", "answered")
    assert t.handed_off and t.ended_by == "caller"
    assert ("transfer", "2001") in {(r.role, r.party) for r in case.legs}


async def _taken(leg: Any) -> bool:
    return leg.answered_by is not None


async def test_consult_a_colleague_in_another_city_then_hand_over(
        nlab: Lab, services: ServiceFactory, phones: SipPhones, sounds: dict[str, Path]
        ) -> None:
    service = await services.start()
    a1001 = await nlab.agent("1001", play=sounds["tone_agent"])
    a2001 = await nlab.agent("2001", play=sounds["tone_branch"])
    await _ready(service, "1001", "2001")
    caller = await nlab.caller("13800002222", play=sounds["tone_caller"])
    call = await nlab.dial(caller, trunk="nanjing", node_id="node1")
    a_call = await asyncio.wait_for(a1001.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)

    async def answered() -> str | None:
        for c in service.nodes["node1"].tracker.calls.values():
            if c.answered_by == "1001" and not c.ended:
                return c.call_id
        return None

    call_id = await eventually(answered, what="the tracker to see the answer")
    leg = await service.callcontrol.consult(call_id, "1001", "agent:2001")
    b_call = await asyncio.wait_for(a2001.incoming.get(), 30)
    await asyncio.wait_for(b_call.answered.wait(), 10)
    await asyncio.wait_for(leg.settled.wait(), 20)
    assert leg.state == "consulting" and leg.kind == "colleague"
    await service.callcontrol.three_way(call_id, "1001")
    await service.callcontrol.leave(call_id, "1001")
    await asyncio.wait_for(a_call.disconnected.wait(), 10)
    assert leg.state == "handed_off"
    await caller.hangup(call)
    await asyncio.wait_for(b_call.disconnected.wait(), 10)
    await asyncio.wait_for(leg.done.wait(), 10)
    for p in (caller, a1001, a2001):
        await p.close()
    case = await eventually(lambda: _ended_case(service, call_id), 20, what="the case")
    t = case.transfers[0]
    assert (t.destination, t.kind, t.number, t.outcome, t.handed_off) == (
        "agent:2001", "colleague", "2001", "answered", True)


async def _ended_case(service: Any, call_id: str) -> Any:
    case = await service.store.by_call(call_id)
    return case if case is not None and case.call_state == "ended" else None
