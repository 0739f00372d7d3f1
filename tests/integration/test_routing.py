"""Skill-based routing through the real Asterisk: pjsua2 callers dial, press (or don't press)
the one menu key, and land in the queue their number, city, key and profile call for, where an
agent with the skill answers; the case tells why. Also: the green channel goes first, a repeat
caller reaches the agent of the earlier case, and a waiting call widens step by step.

These tests run their own Asterisk with a routing configuration (short widening thresholds for
one skill, hotline_12333, and long ones elsewhere so nothing widens by accident)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_desk.softphone.phones import SipPhones
from common.privacy import mask_number
from common.queues import split_queue
from common.tasks import cancel_and_wait
from lab.harness import Lab
from tests.support.own_lab import service_factory, sip_parties, started_lab
from tests.support.service import ServiceFactory, lab_test_config
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

SLOW = {"min_level": 3, "lower_level_after_s": 40, "city_general_after_s": 80,
        "province_after_s": 120}
ROUTING = {
    "repeat_window_days": 7, "preferred_agent_ring_s": 6,
    "priority_handover": 30, "priority_green": 20, "priority_repeat": 10,
    "relax": SLOW,
    "relax_skills": {
        "general": {**SLOW, "min_level": 1},
        # The widening test's skill: seconds, not minutes.
        "hotline_12333": {"min_level": 3, "lower_level_after_s": 3, "city_general_after_s": 7,
                          "province_after_s": 11},
    },
}
SKILLS = {"general": "综合咨询", "enterprise_policy": "一企来", "lang_en": "English",
          "hotline_12315": "12315", "hotline_12333": "12333"}
NUMBERS = [{"number": "12345", "skill": "general"},
           {"number": "12315", "skill": "hotline_12315"},
           {"number": "12333", "skill": "hotline_12333"}]
TRUNKS = [
    {"id": "nanjing", "node": "node1", "city": "nanjing",
     "match_header": "X-Hotline-Trunk: nanjing"},
    {"id": "suzhou", "node": "node1", "city": "suzhou", "match_header": "X-Hotline-Trunk: suzhou"},
    {"id": "h119", "node": "node1", "kind": "handover", "city": "nanjing", "referring_line": "119",
     "match_header": "X-Hotline-Trunk: h119"},
    {"id": "carrier", "node": "node1", "match": ["127.0.0.1"]},
]
AGENTS = [
    {"id": "1001", "name": "王芳", "city": "nanjing",
     "skills": {"general": 4, "enterprise_policy": 4}},
    {"id": "1002", "name": "李强", "city": "nanjing", "skills": {"general": 3, "lang_en": 4}},
    {"id": "2001", "name": "陈静", "city": "suzhou", "skills": {"general": 4, "hotline_12315": 4}},
    {"id": "1101", "name": "周老师", "city": "nanjing", "skills": {"hotline_12333": 5}},
    {"id": "1102", "name": "小吴", "city": "nanjing", "skills": {"hotline_12333": 1}},
    {"id": "2101", "name": "孙洁", "city": "suzhou", "skills": {"general": 2}},
]


@pytest.fixture(scope="module")
async def rlab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    # The decision table presses keys with agents free: the menu-first dialplan, where the key
    # comes before the queue. Queue first (keys while waiting) is tested in
    # test_caller_side.py.
    cfg = lab_test_config(tmp_path_factory.mktemp("routing-lab"), **{
        "menu.timeout_s": 2.5, "menu.first": "menu",
        "menu.keys": {"1": "enterprise_policy", "2": "lang_en"},
        "skills": SKILLS, "numbers": NUMBERS, "trunks": TRUNKS, "agents": AGENTS,
        "routing": ROUTING})
    async with started_lab(cfg) as the_lab:
        yield the_lab


@pytest.fixture
async def services(rlab: Lab, tmp_path: Path, pg_admin: str) -> AsyncIterator[ServiceFactory]:
    async with service_factory(rlab, tmp_path, pg_admin) as factory:
        yield factory


@pytest.fixture
async def phones(rlab: Lab, tmp_path: Path, request: pytest.FixtureRequest
                 ) -> AsyncIterator[SipPhones]:
    async with sip_parties(rlab, tmp_path,
                           passed=lambda: getattr(request.node, "rep_call_passed", True)) as p:
        yield p


class Switchboard:
    """Registered agents; remembers which agent picked up which caller number."""

    def __init__(self, lab: Lab, sounds: dict[str, Path]):
        self.lab = lab
        self.sounds = sounds
        self.phones: dict[str, object] = {}
        self.picked: dict[str, asyncio.Future[str]] = {}
        self.order: list[tuple[str, str]] = []  # (agent, caller) in answer order
        self._tasks: list[asyncio.Task[None]] = []

    def future(self, number: str) -> asyncio.Future[str]:
        # Keyed by the number as agents' phones show it (masked: the last four digits differ).
        number = mask_number(number)
        fut = self.picked.get(number)
        if fut is None or fut.done():
            fut = self.picked[number] = asyncio.get_running_loop().create_future()
        return fut

    async def sign_in(self, *agent_ids: str) -> None:
        for agent_id in agent_ids:
            phone = await self.lab.agent(agent_id, play=self.sounds["tone_agent"])
            self.phones[agent_id] = phone
            self._tasks.append(asyncio.create_task(self._watch(agent_id, phone)))

    async def sign_out(self, agent_id: str) -> None:
        phone = self.phones.pop(agent_id)
        await phone.close()  # type: ignore[attr-defined]

    async def _watch(self, agent_id: str, phone) -> None:  # type: ignore[no-untyped-def]
        while True:
            call = await phone.incoming.get()
            number = call.record.remote_uri.split("sip:")[-1].split("@")[0]
            await call.answered.wait()
            self.order.append((agent_id, number))
            fut = self.picked[number] if number in self.picked else self.future(number)
            if not fut.done():
                fut.set_result(agent_id)

    async def close(self) -> None:
        await cancel_and_wait(self._tasks, what="answering agents")


@pytest.fixture
async def board(rlab: Lab, phones: SipPhones, sounds) -> AsyncIterator[Switchboard]:
    b = Switchboard(rlab, sounds)
    yield b
    await b.close()


@dataclass
class Scenario:
    caller: str
    dialed: str = "12345"
    trunk: str | None = "nanjing"
    key: str | None = None
    profile: str | None = None
    queue: str = ""
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    priority: int = 0


async def place(lab: Lab, sounds, sc: Scenario, board: Switchboard, *, talk_s: float = 1.0,
                answered_timeout: float = 60) -> str:
    """Dial, press the key during the prompt, wait for an agent, talk, hang up."""
    party = await lab.caller(sc.caller, play=sounds["tone_caller"])
    picked = board.future(sc.caller)
    call = await lab.dial(party, sc.dialed, trunk=sc.trunk)
    try:
        if sc.key:
            await asyncio.wait_for(call.media_active.wait(), 15)
            await asyncio.sleep(0.6)  # during the prompt or the wait after it
            await party.dtmf(call, sc.key)
        agent = await asyncio.wait_for(picked, answered_timeout)
        await asyncio.sleep(talk_s)
    finally:
        await party.hangup(call)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.disconnected.wait(), 10)
        await party.close()
    return agent


async def case_of(service, caller: str, *, nth: int = 0):
    """The ``nth`` newest ended case of this caller, with its timeline."""
    digest = service.personal.lookup_hash(caller)
    for c in await service.store.recent(100):
        if c.caller_hash == digest and c.call_state == "ended" and c.agent_id:
            if nth == 0:
                return c
            nth -= 1
    return None


TABLE = [
    Scenario("13800000001", queue="nanjing-general",
             reasons=("city=nanjing (trunk nanjing)", "skill=general (dialed 12345)",
                      "priority=normal")),
    Scenario("13800000002", key="1", queue="nanjing-enterprise_policy",
             reasons=("skill=enterprise_policy (key 1)",)),
    Scenario("13800000003", key="2", queue="nanjing-lang_en", reasons=("skill=lang_en (key 2)",)),
    Scenario("051288880004", trunk=None, queue="suzhou-general",
             reasons=("city=suzhou (area code 0512)",)),
    Scenario("13800000005", trunk=None, queue="province-general",
             reasons=("city=province pool (unknown origin)",)),
    Scenario("13800000006", dialed="12315", trunk="suzhou", key="1",
             queue="suzhou-hotline_12315",
             reasons=("skill=hotline_12315 (dialed 12315)", "key 1 not used for 12315")),
    Scenario("13800000007", dialed="99999", queue="nanjing-general",
             reasons=("skill=general (unknown number 99999)",), flags=("unknown_number",)),
    Scenario("13800000008", key="9", queue="nanjing-general", reasons=("key '9' ignored",),
             flags=("invalid_key",)),
    Scenario("13800000009", profile="elderly", queue="nanjing-general",
             reasons=("priority=elderly",), flags=("green_elderly",), priority=20),
    Scenario("13800000010", trunk="h119", queue="nanjing-general",
             reasons=("priority=handover (line 119)",), flags=("handover",), priority=30),
]


async def test_scenario_table(rlab, services, phones, board, sounds):
    service = await services.start("sqlite")
    await service.profiles.register("13800000009", "elderly", by="test")
    await board.sign_in("1001", "1002", "2001")
    answered: dict[str, str] = {}
    # Five at a time: each caller is its own process; three agents take them in turn.
    for batch in (TABLE[:5], TABLE[5:]):
        agents = await asyncio.gather(*(place(rlab, sounds, sc, board) for sc in batch))
        answered.update({sc.caller: a for sc, a in zip(batch, agents, strict=True)})
    await service.drain()
    for sc in TABLE:
        case = await eventually(lambda sc=sc: case_of(service, sc.caller),
                                what=f"the case of {sc.caller}")
        assert case.route_queue == sc.queue, (sc, case.route_reasons)
        assert case.queue == sc.queue, (sc, case.queue)
        assert case.agent_id == answered[sc.caller]
        # Answered by an agent who has the queue's skill.
        skill = split_queue(case.queue)[1]
        assert skill in rlab.cfg.agent(case.agent_id).skills, (sc, case.agent_id)
        for reason in sc.reasons:
            assert reason in case.route_reasons, (sc, case.route_reasons)
        for flag in sc.flags:
            assert flag in case.flags, (sc, case.flags)
        assert case.priority == sc.priority
        assert case.route_source == "router"
        assert case.number in str(service.store.cached_number(case.call_id))
    assert service.router.fallbacks == 0


async def test_green_channel_caller_is_answered_first(rlab, services, phones, board, sounds):
    service = await services.start("sqlite")
    elderly = "13900000004"
    await service.profiles.register(elderly, "elderly", by="test")
    parties, calls = [], []
    # Three callers wait (no agent signed in yet), then the elderly caller arrives.
    for number in ("13900000001", "13900000002", "13900000003", elderly):
        party = await rlab.caller(number, play=sounds["tone_caller"])
        parties.append(party)
        calls.append(await rlab.dial(party, "12345", trunk="nanjing"))
        digest = service.personal.lookup_hash(number)

        async def queued(digest=digest):
            for c in await service.store.recent(20):
                if c.caller_hash == digest and c.queued_at is not None:
                    return c
            return None

        await eventually(queued, timeout=30, what=f"{number} to wait in the queue")
    try:
        await board.sign_in("1001")
        first = await asyncio.wait_for(board.future(elderly), 30)
        assert first == "1001"
        assert board.order[0] == ("1001", mask_number(elderly)), board.order
    finally:
        for party, call in zip(parties, calls, strict=True):
            await party.hangup(call)
        for party in parties:
            await party.close()
    await service.drain()
    case = await eventually(lambda: case_of(service, elderly), what="the elderly caller's case")
    assert case.priority == 20 and "priority=elderly" in case.route_reasons


async def test_repeat_caller_reaches_the_earlier_agent(rlab, services, phones, board, sounds):
    service = await services.start("postgresql")
    caller = "13700000001"
    await board.sign_in("1001", "1002")
    first_agent = await place(rlab, sounds, Scenario(caller), board)
    other = "1002" if first_agent == "1001" else "1001"
    first = await eventually(lambda: case_of(service, caller), what="the first case")
    async def is_repeat():
        return service.earlier_cases.peek(service.personal.lookup_hash(caller))

    await eventually(is_repeat, what="the caller to count as a repeat caller")

    # The earlier agent is free: the call goes to them, although the other agent has been
    # waiting longer (leastrecent would pick the other one).
    again = await place(rlab, sounds, Scenario(caller), board)
    assert again == first_agent
    second = await eventually(lambda: _newer(service, caller, first.number),
                              what="the second case")
    assert second.priority == 10 and "repeat_caller" in second.flags
    assert f"repeat caller (case {first.number}, agent {first_agent} first)" in (
        second.route_reasons)
    assert second.queue == f"agent-{first_agent}"
    assert (first.number, "repeat_caller") in await service.store.links(second.number)

    # The earlier agent is not free (示忙, paused): someone else answers, the cases are linked,
    # and the case says the preferred agent was missed.
    ami = service.nodes[rlab.node.id].ami
    await ami.queue_pause(f"PJSIP/{first_agent}", True, reason="rest")
    try:
        third_agent = await place(rlab, sounds, Scenario(caller), board)
    finally:
        await ami.queue_pause(f"PJSIP/{first_agent}", False)
    assert third_agent == other
    third = await eventually(lambda: _newer(service, caller, second.number),
                             what="the third case")
    assert third.queue == "nanjing-general" and third.priority == 10
    kinds = {e.kind: e for e in third.events}
    assert kinds["preferred_missed"].detail["status"] in ("JOINEMPTY", "LEAVEEMPTY")
    assert (second.number, "repeat_caller") in await service.store.links(third.number)


async def _newer(service, caller: str, than: str):
    case = await case_of(service, caller)
    return case if case is not None and case.number > than else None


async def test_waiting_call_widens_level_then_city_then_province(rlab, services, phones, board,
                                                                 sounds):
    service = await services.start("sqlite")
    # Only a level-1 agent of the skill: the call reaches them after the level threshold.
    await board.sign_in("1102")
    junior = await place(rlab, sounds, Scenario("13600000001", dialed="12333"), board)
    assert junior == "1102"
    await service.drain()
    case = await eventually(lambda: case_of(service, "13600000001"), what="the first case")
    steps = [e.detail.get("step") for e in case.events if e.kind == "widened"]
    assert steps == ["level"], [(e.kind, e.detail) for e in case.events]
    assert case.queue == "nanjing-hotline_12333" and "widened" in case.flags
    kinds = [e.kind for e in case.events]
    assert kinds.index("widened") < kinds.index("answered")

    # Nobody with the skill, nobody in the city's general pool: the province pool answers,
    # after the city step; the case records each widening.
    await board.sign_out("1102")
    await board.sign_in("2101")
    far = await place(rlab, sounds, Scenario("13600000002", dialed="12333"), board,
                      answered_timeout=60)
    assert far == "2101"
    await service.drain()
    case = await eventually(lambda: case_of(service, "13600000002"), what="the second case")
    widened = [e for e in case.events if e.kind == "widened"]
    assert [e.detail["step"] for e in widened] == ["level", "nanjing-general",
                                                    "province-general"]
    queued = [e.detail["queue"] for e in case.events if e.kind == "queued"]
    assert queued == ["nanjing-hotline_12333", "nanjing-general", "province-general"]
    assert case.queue == "province-general" and case.agent_id == "2101"
    assert case.wait_seconds >= 11 - 1  # waited through every step (Asterisk's own timers)


async def _memberships(service, rlab, agent_id: str) -> dict[str, int]:
    ami = service.nodes[rlab.node.id].ami
    out = {}
    for m in await ami.send_list({"Action": "QueueStatus", "Member": f"PJSIP/{agent_id}"}):
        if m.get("Event") == "QueueMember" and m.get("Location", m.get("Interface")) == (
                f"PJSIP/{agent_id}"):
            out[m["Queue"]] = int(m["Penalty"])
    return out


async def test_supervisor_changes_skills_live(rlab, services):
    from queueing.routing.skills import SkillError

    service = await services.start("sqlite")
    agent = "1002"
    before = await eventually(lambda: _memberships(service, rlab, agent),
                              what="the agent's queues")
    assert before == {"agent-1002": 0, "nanjing-general": 2, "province-general": 2,
                      "nanjing-lang_en": 1, "province-lang_en": 1}
    change = await service.skills.change(agent, {"general": 5, "hotline_12333": 2},
                                         by="supervisor 9001")
    assert change.applied == 6  # 2 re-penalised, 2 added, 2 removed
    after = await _memberships(service, rlab, agent)
    assert after == {"agent-1002": 0, "nanjing-general": 0, "province-general": 0,
                     "nanjing-hotline_12333": 3, "province-hotline_12333": 3}
    # Bad input changes nothing.
    for bad in ({"general": 7}, {"cooking": 3}, {"general": "5"}):
        with pytest.raises(SkillError):
            await service.skills.change(agent, bad, by="supervisor 9001")
    with pytest.raises(SkillError):
        await service.skills.change("9999", {"general": 3}, by="supervisor 9001")
    assert await _memberships(service, rlab, agent) == after
    # A restarted service keeps the shift's change (Redis), and puts it back on connect.
    await services.stop(service)
    service = await services.start("sqlite")
    assert service.skills.of(agent) == {"general": 5, "hotline_12333": 2}
    assert await _memberships(service, rlab, agent) == after
    await service.skills.reset(agent, by="supervisor 9001")
    assert await _memberships(service, rlab, agent) == before


async def test_router_failure_falls_back_to_the_default_queue(rlab, services, phones, board,
                                                              sounds):
    service = await services.start("sqlite")

    async def broken(req):  # type: ignore[no-untyped-def]
        raise RuntimeError("routing bug")

    service.router.decide_fn = broken
    await board.sign_in("2001")
    agent = await place(rlab, sounds, Scenario("13500000001", key="1"), board)
    assert agent == "2001"
    await service.drain()
    case = await eventually(lambda: case_of(service, "13500000001"), what="the case")
    assert case.queue == "province-general" and case.route_source == "fallback"
    assert "router_unavailable" in case.flags
    assert service.router.fallbacks == 1
