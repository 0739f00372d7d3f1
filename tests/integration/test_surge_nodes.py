"""Surges across cities on two real Asterisk nodes (one per city), one service, one Redis.

Nanjing (node1) has one agent; Suzhou (node2) two, with a floor of one. A surge of pjsua2
callers on Nanjing: the proposal names one Suzhou agent (never two: the floor); once applied,
callers queued on node1 are answered by the Suzhou agent registered on node2, over the
inter-node trunk; when the surge ends the agent goes home by itself. Also: two supervisors at
once (exactly one wins), and node1 restarting while an agent is lent to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent_desk.softphone.phones import SipPhones
from lab.harness import Lab
from queueing.surge.manager import borrowed_interface, state_interface
from queueing.surge.model import SurgeError
from telephony.ami import AmiClient
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
          {"id": "2001", "name": "陈静", "city": "suzhou", "skills": {"general": 4}},
          {"id": "2002", "name": "孙洁", "city": "suzhou", "skills": {"general": 3}}]
LONG = {"min_level": 1, "lower_level_after_s": 200, "city_general_after_s": 250,
        "province_after_s": 300}
SURGE = {"skills": ["general"], "target_sl": 0.8, "target_s": 5, "window_s": 25,
         "default_aht_s": 10.0, "min_samples": 50, "default_floor": 1,
         "floors": {"suzhou": 1, "nanjing": 1}, "borrow_penalty": 4, "enter_after_s": 0.0,
         "exit_after_s": 2.0, "auto": False, "max_borrowed_per_city": 3, "max_per_move": 3,
         "interval_s": 0.5, "proposal_ttl_s": 300, "lock_ttl_s": 20}


@pytest.fixture(scope="module")
async def slab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    cfg = lab_test_config(tmp_path_factory.mktemp("surge-lab"), **{
        "nodes": NODES, "cities": CITIES, "trunks": TRUNKS, "agents": AGENTS,
        "numbers": [{"number": "12345", "skill": "general"}],
        "skills": {"general": "综合咨询"}, "menu.keys": {},
        "routing": {"relax": LONG, "relax_skills": {}}, "surge": SURGE,
        "branch_centers": [], "emergency_lines": []})
    async with started_lab(cfg) as the_lab:
        yield the_lab


@pytest.fixture
async def services(slab: Lab, tmp_path: Path, pg_admin: str) -> AsyncIterator[ServiceFactory]:
    async with service_factory(slab, tmp_path, pg_admin) as factory:
        yield factory


@pytest.fixture
async def phones(slab: Lab, tmp_path: Path, request: pytest.FixtureRequest
                 ) -> AsyncIterator[SipPhones]:
    """SIP parties; afterwards neither node may have a channel left (trunk legs included)."""
    async with sip_parties(slab, tmp_path,
                           passed=lambda: getattr(request.node, "rep_call_passed", True)) as p:
        yield p


async def members(service: Any, node: str, queue: str) -> dict[str, dict[str, str]]:
    ami: AmiClient = service.nodes[node].ami
    out = {}
    for m in await ami.send_list({"Action": "QueueStatus", "Queue": queue}, timeout=10):
        if m.get("Event") == "QueueMember":
            out[str(m.get("Location") or m.get("Interface"))] = {k: str(v) for k, v in m.items()}
    return out


async def devstate(service: Any, node: str, device: str) -> str:
    resp = await service.nodes[node].ami.send(
        {"Action": "Getvar", "Variable": f"DEVICE_STATE({device})"}, timeout=10)
    return str(resp.get("Value", ""))


async def registered(service: Any, *agents: str) -> None:
    async def ready() -> bool:
        for a in agents:
            if (await service.live.agent(a)).get("state") != "ready":
                return False
        return True
    await eventually(ready, timeout=30, what=f"agents {agents} ready in live state")


async def test_surge_on_nanjing_is_answered_by_suzhou_then_agents_go_home(
        slab: Lab, services: ServiceFactory, phones: SipPhones, sounds: dict[str, Path]
        ) -> None:
    service = await services.start()
    surge = service.surge
    a1001 = await slab.agent("1001", play=sounds["tone_agent"])
    a2001 = await slab.agent("2001", play=sounds["tone_agent"])
    a2002 = await slab.agent("2002", play=sounds["tone_agent"])
    await registered(service, "1001", "2001", "2002")

    callers = [await slab.caller(f"1390000000{i}", play=sounds["tone_caller"])
               for i in range(3)]
    calls = []
    for c in callers:
        calls.append(await slab.dial(c, trunk="nanjing", node_id="node1"))
    first = await asyncio.wait_for(a1001.incoming.get(), 40)
    await asyncio.wait_for(first.answered.wait(), 15)

    # Two callers wait on node1 with its only agent busy: Nanjing is surging.
    async def surging() -> dict[str, Any] | None:
        st = await surge.status()
        nj = st["cities"][0]["queues"][0]
        return nj if nj["waiting"] >= 2 and nj["shortfall"] > 0 and nj["pressure"] else None
    nj = await eventually(surging, timeout=40, what="a surge on nanjing-general")
    assert nj["agents_present"] == 1 and nj["agents_needed"] > 1

    p = await surge.proposal("nanjing")
    # Suzhou has two agents and a floor of one: exactly one is proposed, the stronger one.
    assert [(x["agent"], x["from_city"]) for x in p["agents"]] == [("2001", "suzhou")]
    assert p["after"]["agents_present"] == 2
    # The notes say why not more, from the figures the proposal was made on: the shortfall
    # can fall between the status read above and the proposal (a caller is answered).
    want = p["before"]["shortfall"] or 1
    if want > 1:
        assert any("only 1" in n or "limited" in n for n in p["notes"]), p
    else:
        assert not any(n.startswith("only") for n in p["notes"]), p

    result = await surge.apply(p["id"], by="supervisor-li")
    assert [m["agent"] for m in result["moved"]] == ["2001"]
    mem = await members(service, "node1", "nanjing-general")
    lent = mem[borrowed_interface("2001", "node2")]
    assert lent["Penalty"] == "4" and lent["StateInterface"] == state_interface("2001")
    marks = await service.live.agent("2001")
    assert marks.get("borrowed_by") == "nanjing" and marks.get("home_city") == "suzhou"

    # A caller queued on node1 is answered by 2001, registered on node2, over the trunk.
    borrowed_call = await asyncio.wait_for(a2001.incoming.get(), 40)
    await asyncio.wait_for(borrowed_call.answered.wait(), 15)
    assert a2002.incoming.empty(), "the agent at Suzhou's floor was never rung"
    # While 2001 talks to Nanjing's caller, node1 sees it busy (its state follows node2's).
    await eventually(lambda: _is(devstate(service, "node1", state_interface("2001")),
                                 {"INUSE", "RINGINUSE"}),
                     timeout=20, what="2001 busy on node1")

    # Nanjing recovers: two callers answered, and the Erlang C forecast with the agents present
    # is better than before the move; when 1001 is free again the last caller is answered
    # and nobody waits.
    st = (await surge.status())["cities"][0]["queues"][0]
    assert st["answered"] >= 2 and st["agents_present"] == 2
    assert st["forecast_sl"] > nj["forecast_sl"]
    await a1001.hangup(first)
    third = await asyncio.wait_for(a1001.incoming.get(), 40)
    await asyncio.wait_for(third.answered.wait(), 15)

    async def nobody_waits() -> bool:
        q = (await surge.status())["cities"][0]["queues"][0]
        return q["waiting"] == 0 and q["longest_wait_s"] == 0 and q["answered"] >= 3
    await eventually(nobody_waits, timeout=20, what="nanjing's queue empty again")

    # The surge ends: everybody hangs up; no new arrivals, so the window empties.
    for c, call in zip(callers, calls, strict=True):
        with contextlib.suppress(Exception):
            await c.hangup(call)

    async def home() -> bool:
        return not (await surge.status())["moves"]
    await eventually(home, timeout=60, what="2001 returned automatically after the surge")
    assert "borrowed_by" not in await service.live.agent("2001")
    assert borrowed_interface("2001", "node2") not in await members(service, "node1",
                                                                    "nanjing-general")
    audit = await surge.moves(10)
    kinds = [(r["action"], r["agent"], r["by"]) for r in audit]
    assert ("borrow", "2001", "supervisor-li") in kinds and ("return", "2001", "auto") in kinds
    borrow = next(r for r in audit if r["action"] == "borrow")
    assert borrow["before"]["waiting"] >= 1 and borrow["after"]["agents_present"] == 2


async def _is(value: Any, wanted: set[str]) -> bool:
    return (await value) in wanted


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_two_supervisors_at_once_exactly_one_wins(
        slab: Lab, services: ServiceFactory, phones: SipPhones, sounds: dict[str, Path],
        db: str) -> None:
    service = await services.start(db)
    surge = service.surge
    await surge.stop()  # the actions only: no automatic return while we look
    await slab.agent("2001", play=sounds["tone_agent"])
    await slab.agent("2002", play=sounds["tone_agent"])
    await registered(service, "2001", "2002")
    p1 = await surge.proposal("nanjing", count=1)
    p2 = await surge.proposal("nanjing", count=1)
    assert [x["agent"] for x in p1["agents"]] == [x["agent"] for x in p2["agents"]] == ["2001"]
    # Asking for more than the floor allows still proposes one.
    p3 = await surge.proposal("nanjing", count=2)
    assert len(p3["agents"]) == 1
    results = await asyncio.gather(surge.apply(p1["id"], "alice"), surge.apply(p2["id"], "bob"),
                                   return_exceptions=True)
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, SurgeError)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert losses[0].code == "conflict"
    # Re-applying either proposal, or lending Suzhou's last agent, is refused.
    with pytest.raises(SurgeError) as exc:
        await surge.apply(p1["id"], "carol")
    assert exc.value.code == "conflict"
    borrowed = await members(service, "node1", "nanjing-general")
    assert sum(1 for k in borrowed if "@node-" in k) == 1
    p4 = await surge.proposal("nanjing", count=1)
    assert p4["agents"] == [], "Suzhou is at its floor"
    await surge.return_agents(["2001"], "alice")

    # Configured so that lent agents take surge calls only: paused at home while lent, and
    # unpaused on return.
    await surge.set_policy("alice", lent_home="pause")
    p5 = await surge.proposal("nanjing", count=1)
    await surge.apply(p5["id"], "alice")
    home = await members(service, "node2", "suzhou-general")
    assert home["PJSIP/2001"]["Paused"] == "1"
    assert home["PJSIP/2001"]["PausedReason"] == "surge:lent to nanjing"
    st = (await surge.status())["cities"]
    assert st[0]["queues"][0]["agents_present"] == 1  # 2001 counts for Nanjing, not absent
    await surge.return_agents(["2001"], "alice")
    assert (await members(service, "node2", "suzhou-general"))["PJSIP/2001"]["Paused"] == "0"

    # A proposal applied after the donor's floor was raised is refused: floors are checked
    # again at apply time.
    p6 = await surge.proposal("nanjing", count=1)
    await surge.set_policy("alice", floors={"suzhou": 2})
    with pytest.raises(SurgeError) as exc:
        await surge.apply(p6["id"], "alice")
    assert exc.value.code == "floor"
    assert (await surge.status())["moves"] == []
    with pytest.raises(SurgeError) as exc:
        await surge.return_agents(["2001"], "alice")
    assert exc.value.code == "not_found"
    audit = await surge.moves(10)
    assert [(r["action"], r["by"]) for r in audit][-2:] == [
        ("return", "alice"), ("borrow", wins[0]["moved"][0]["by"])]


async def test_node_restart_while_an_agent_is_lent(
        slab: Lab, services: ServiceFactory, phones: SipPhones, sounds: dict[str, Path]
        ) -> None:
    service = await services.start()
    surge = service.surge
    await surge.stop()  # the actions only: no automatic return while we look
    await slab.agent("2001", play=sounds["tone_agent"])
    await slab.agent("2002", play=sounds["tone_agent"])
    await registered(service, "2001", "2002")
    node1 = slab.instances["node1"]
    iface = borrowed_interface("2001", "node2")

    async def restart_node1(while_down: Any = None) -> Any:
        await asyncio.to_thread(node1.stop)
        await eventually(lambda: _false(service.nodes["node1"].ami.connected), timeout=20,
                         what="node1 seen down")
        out = await while_down() if while_down else None
        node1.start(owner_pid=__import__("os").getpid())
        await node1.wait_ready(slab.cfg.ami_secret)
        await service.nodes["node1"].ami.wait_connected(30)
        return out

    # 1. Lent, node1 restarts: the member and its state are back.
    p = await surge.proposal("nanjing", count=1)
    await surge.apply(p["id"], "alice")
    await restart_node1()

    async def back() -> bool:
        m = (await members(service, "node1", "nanjing-general")).get(iface)
        return bool(m) and await devstate(service, "node1",
                                          state_interface("2001")) == "NOT_INUSE"
    await eventually(back, timeout=30, what="borrowed member and its state back on node1")

    # 2. Returned while node1 is away: removed when it comes back.
    out = await restart_node1(lambda: surge.return_agents(["2001"], "alice"))
    assert out["returned"] == ["2001"] and out["cleanup_pending"] == ["2001"]

    async def gone() -> bool:
        return iface not in await members(service, "node1", "nanjing-general")
    await eventually(gone, timeout=30, what="stale borrowed member removed after restart")
    assert any(r["action"] == "cleanup" for r in await surge.moves(10))

    # 3. The home node goes away while its agent is lent: node1 stops offering the agent
    # (unavailable), and gets the agent's real state back when node2 returns.
    p = await surge.proposal("nanjing", count=1)
    await surge.apply(p["id"], "alice")
    node2 = slab.instances["node2"]
    await asyncio.to_thread(node2.stop)
    await eventually(lambda: _is(devstate(service, "node1", state_interface("2001")),
                                 {"UNAVAILABLE"}), timeout=20, what="2001 unavailable on node1")
    node2.start(owner_pid=__import__("os").getpid())
    await node2.wait_ready(slab.cfg.ami_secret)
    await service.nodes["node2"].ami.wait_connected(30)
    await eventually(lambda: _is(devstate(service, "node1", state_interface("2001")),
                                 {"NOT_INUSE"}), timeout=40, what="2001 available again")
    assert (await surge.status())["moves"][0]["agent"] == "2001"


async def _false(value: bool) -> bool:
    return not value


def _toml_ready(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _toml_ready(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_toml_ready(x) for x in v]
    return v


async def test_supervisor_cli_beside_the_running_service(
        slab: Lab, services: ServiceFactory, phones: SipPhones, sounds: dict[str, Path],
        tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from lab.harness import REPO, to_toml

    service = await services.start()
    # Only the command line acts here (the service's policy would return idle moves).
    await service.surge.stop()
    await slab.agent("2001", play=sounds["tone_agent"])
    await slab.agent("2002", play=sounds["tone_agent"])
    await registered(service, "2001", "2002")
    raw = _toml_ready(service.cfg.model_dump(mode="json", exclude={"base_dir"}))
    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(to_toml(raw), encoding="utf-8")

    def hotline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(cfg_path),
                               "surge", *args], capture_output=True, text=True, timeout=60,
                              cwd=REPO)

    st = await asyncio.to_thread(hotline, "status")
    assert st.returncode == 0 and "nanjing-general" in st.stdout, st.stderr
    prop = await asyncio.to_thread(hotline, "propose", "nanjing", "--count", "1", "--json")
    assert prop.returncode == 0, prop.stderr
    pid = json.loads(prop.stdout)["id"]
    applied = await asyncio.to_thread(hotline, "apply", pid, "--by", "supervisor-wang")
    assert applied.returncode == 0, applied.stderr
    # The running service sees the move the command line made (Redis, AMI, audit).
    assert [m["agent"] for m in (await service.surge.status())["moves"]] == ["2001"]
    again = await asyncio.to_thread(hotline, "apply", pid, "--by", "supervisor-zhao")
    assert again.returncode == 3 and "conflict" in again.stderr
    back = await asyncio.to_thread(hotline, "return", "2001", "--by", "supervisor-wang")
    assert back.returncode == 0 and json.loads(back.stdout)["returned"] == ["2001"]
    moves = json.loads((await asyncio.to_thread(hotline, "moves", "--json")).stdout)
    assert [(m["action"], m["by"]) for m in moves[:2]] == [("return", "supervisor-wang"),
                                                          ("borrow", "supervisor-wang")]
    # The supervisor raises Suzhou's floor: nothing can be lent any more.
    pol = await asyncio.to_thread(hotline, "policy", "--floor", "suzhou=2", "--by", "wang")
    assert pol.returncode == 0 and json.loads(pol.stdout)["floors"]["suzhou"] == 2, pol.stderr
    prop = await asyncio.to_thread(hotline, "propose", "nanjing", "--count", "1", "--json")
    assert json.loads(prop.stdout)["agents"] == []
    assert borrowed_interface("2001", "node2") not in await members(service, "node1",
                                                                    "nanjing-general")


async def test_automatic_policy_within_the_supervisors_limits(
        slab: Lab, services: ServiceFactory, phones: SipPhones, sounds: dict[str, Path]
        ) -> None:
    service = await services.start()
    surge = service.surge
    limits = await surge.set_policy("supervisor-li", auto=True, max_per_move=1,
                                    max_borrowed_per_city=1)
    assert limits["auto"] is True and limits["max_borrowed_per_city"] == 1
    a1001 = await slab.agent("1001", play=sounds["tone_agent"])
    a2001 = await slab.agent("2001", play=sounds["tone_agent"])
    await slab.agent("2002", play=sounds["tone_agent"])
    await registered(service, "1001", "2001", "2002")
    callers = [await slab.caller(f"1370000000{i}", play=sounds["tone_caller"]) for i in range(3)]
    calls = [await slab.dial(c, trunk="nanjing", node_id="node1") for c in callers]
    await asyncio.wait_for(a1001.incoming.get(), 40)

    # Nobody applies anything: the service lends 2001 itself and 2001 takes a Nanjing caller.
    lent = await asyncio.wait_for(a2001.incoming.get(), 60)
    await asyncio.wait_for(lent.answered.wait(), 15)
    moves = (await surge.status())["moves"]
    assert [(m["agent"], m["by"]) for m in moves] == [("2001", "auto")]
    assert (await service.live.agent("2001")).get("borrowed_by") == "nanjing"
    for c, call in zip(callers, calls, strict=True):
        with contextlib.suppress(Exception):
            await c.hangup(call)

    async def home() -> bool:
        return not (await surge.status())["moves"]
    await eventually(home, timeout=60, what="2001 returned by the policy")
    audit = [(r["action"], r["by"]) for r in await surge.moves(10)]
    # Within the limit of one: never a second agent (2002 is also Suzhou's floor).
    assert audit.count(("borrow", "auto")) == 1 and ("return", "auto") in audit
    assert ("policy", "supervisor-li") in audit


async def test_redis_loss_while_an_agent_is_lent_keeps_the_move_and_its_home_pause(
        slab: Lab, services: ServiceFactory, phones: SipPhones, sounds: dict[str, Path]
        ) -> None:
    """Redis comes back empty (restarted without persistence) while an agent is lent and
    paused at home: the move and the policy are written back from the service, the borrowed
    member stays, and the return still lifts the home pause."""
    service = await services.start()
    surge = service.surge
    await surge.stop()  # the actions only: no automatic return while we look
    await slab.agent("2001", play=sounds["tone_agent"])
    await slab.agent("2002", play=sounds["tone_agent"])
    await registered(service, "2001", "2002")
    await surge.set_policy("alice", lent_home="pause")
    p = await surge.proposal("nanjing", count=1)
    await surge.apply(p["id"], "alice")
    iface = borrowed_interface("2001", "node2")

    async def home_paused(want: bool) -> bool:
        m = (await members(service, "node2", "suzhou-general")).get("PJSIP/2001", {})
        return (m.get("Paused") == "1") == want
    await eventually(lambda: home_paused(True), what="2001 paused at home")

    # Everything the service had in Redis is gone, as after a restart without persistence.
    keys = [k async for k in service.redis.scan_iter(f"{services.prefix}:*")]
    await service.redis.delete(*keys)
    assert await service.check_redis() == "rebuilt"
    moves = await surge.refresh_moves()
    assert list(moves) == ["2001"] and moves["2001"]["to_city"] == "nanjing"
    assert (await surge.load_policy())["lent_home"] == "pause"

    async def still_lent() -> bool:
        agent = await service.live.agent("2001")
        return (iface in await members(service, "node1", "nanjing-general")
                and agent.get("borrowed_by") == "nanjing")
    await eventually(still_lent, timeout=20, what="the move kept after the resync")

    out = await surge.return_agents(["2001"], "alice")
    assert out["returned"] == ["2001"]
    await eventually(lambda: home_paused(False), what="the home pause lifted at the return")
    assert iface not in await members(service, "node1", "nanjing-general")
