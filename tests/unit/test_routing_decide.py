"""The routing decision is a pure function: whatever the call brings, it returns a queue that
exists, a plan that only moves to queues that exist, and the priority of the caller's highest
claim. Generated inputs (hypothesis), plus the cases the hotline relies on."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from common.config import PROVINCE_POOL, load_config
from common.queues import all_queues, max_penalty_for
from lab.harness import EXAMPLE_CONFIG
from queueing.routing.model import EarlierCase
from queueing.routing.router import RouteRequest, decide, routing_table

CFG = load_config(EXAMPLE_CONFIG)
QUEUES = set(all_queues(CFG))
AGENTS = [a.id for a in CFG.agents]

numbers = st.one_of(st.sampled_from([n.number for n in CFG.numbers]),
                    st.text(alphabet="0123456789+*#", max_size=24), st.text(max_size=8))
trunks = st.one_of(st.sampled_from([t.id for t in CFG.trunks]), st.text(max_size=12))
keys = st.one_of(st.just(""), st.sampled_from(list("0123456789*#")), st.text(max_size=6))
callers = st.one_of(
    st.just(""),
    st.from_regex(r"(\+86|0086)?1[3-9][0-9]{9}", fullmatch=True),
    st.from_regex(r"0(25|512|10|755)[0-9]{7,8}", fullmatch=True),
    st.text(max_size=30))
profiles = st.one_of(st.none(), st.sampled_from(["elderly", "disabled", "vip", ""]))
earlier = st.one_of(st.none(), st.builds(
    EarlierCase, number=st.from_regex(r"2026[0-9]{10}", fullmatch=True),
    case_id=st.integers(1, 10**9), agent_id=st.one_of(st.none(), st.sampled_from(AGENTS),
                                                       st.text(max_size=6)),
    at=st.floats(0, 2e9)))


@settings(max_examples=3000, deadline=None)
@given(trunk=trunks, dialed=numbers, key=keys, caller=callers, handover=st.booleans(),
       profile=profiles, earlier=earlier, node=st.sampled_from(["node1", "node2", ""]))
def test_decision_is_always_a_valid_queue(trunk, dialed, key, caller, handover, profile,
                                          earlier, node):
    req = RouteRequest(node=node, call_id=f"{node}:1", trunk=trunk, dialed=dialed, key=key,
                       caller=caller, handover=handover, profile=profile, earlier=earlier)
    d = decide(CFG, req)
    assert d.queue in QUEUES
    assert d.skill in CFG.skills
    assert d.city in {c.id for c in CFG.cities} | {PROVINCE_POOL}
    # The plan only moves to queues that exist, ends without a timeout (nobody waits forever
    # without being offered to the province), and waits a positive time at each step.
    for q, _ in d.overflow:
        assert q in QUEUES and q != d.queue
    if d.overflow:
        assert d.overflow[-1][1] is None
        assert d.overflow[-1][0] == f"{PROVINCE_POOL}-general"
        assert d.first_wait_s and d.first_wait_s > 0
        assert all(t > 0 for _, t in d.overflow[:-1])
    else:
        assert d.queue == f"{PROVINCE_POOL}-general" and d.first_wait_s is None
    relax = CFG.routing.relax_for(d.skill)
    if d.overflow:
        total = d.first_wait_s + sum(t for _, t in d.overflow[:-1])
        assert total in (relax.city_general_after_s, relax.province_after_s)
    assert d.max_penalty == (max_penalty_for(relax.min_level) if relax.min_level > 1 else None)
    assert bool(d.rule) == (d.max_penalty is not None)
    # Priority: the highest claim; none, none.
    r = CFG.routing
    claims = [0]
    if handover or trunk in routing_table(CFG).handover_line:
        claims.append(r.priority_handover)
    if profile in ("elderly", "disabled"):
        claims.append(r.priority_green)
    if earlier is not None:
        claims.append(r.priority_repeat)
    assert d.priority == max(claims)
    # A preferred agent only for a repeat caller, and only one on this call's node.
    if d.preferred_agent is not None:
        assert earlier is not None and d.preferred_agent == earlier.agent_id
        assert routing_table(CFG).agent_node[d.preferred_agent] == node
    # The channel variable: 11 fields, nothing that could break the AGI command.
    value = d.channel_value("20261122000001")
    assert value.count("|") == 12 and "\n" not in value and '"' not in value
    assert value.split("|")[0] == d.queue
    assert d.summary.startswith("route: city=")


def req(**kw):
    base = {"node": "node1", "call_id": "node1:1", "trunk": "nanjing", "dialed": "12345",
            "key": "", "caller": "13812345678"}
    base.update(kw)
    return RouteRequest(**base)


def test_the_hotlines_own_cases():
    assert decide(CFG, req()).queue == "nanjing-general"
    assert decide(CFG, req(key="1")).queue == "nanjing-enterprise_policy"
    assert decide(CFG, req(key="2")).queue == "nanjing-lang_en"
    # A merged hotline's own number keeps its skill; the menu key does not apply to it.
    d = decide(CFG, req(dialed="12315", key="1", trunk="suzhou"))
    assert d.queue == "suzhou-hotline_12315" and "key 1 not used for 12315" in d.reasons
    # No city trunk: the area code, else the province pool.
    assert decide(CFG, req(trunk="carrier", caller="051266668888")).queue == "suzhou-general"
    assert decide(CFG, req(trunk="carrier")).queue == "province-general"
    # Bad input: unknown number -> general of the city, flagged; a bad key counts as none.
    d = decide(CFG, req(dialed="99999"))
    assert d.queue == "nanjing-general" and "unknown_number" in d.flags
    d = decide(CFG, req(key="7"))
    assert d.queue == "nanjing-general" and "invalid_key" in d.flags


def test_priorities_and_reasons():
    d = decide(CFG, req(profile="elderly"))
    assert d.priority == CFG.routing.priority_green
    assert d.summary == ("route: city=nanjing (trunk nanjing), skill=general (dialed 12345), "
                         "priority=elderly")
    early = EarlierCase("20261120000007", 7, "1001", 0.0)
    d = decide(CFG, req(earlier=early))
    assert d.priority == CFG.routing.priority_repeat and d.preferred_agent == "1001"
    assert "repeat caller (case 20261120000007, agent 1001 first)" in d.reasons
    d = decide(CFG, req(earlier=early, node="node2"))
    assert d.preferred_agent is None  # the agent's own queue is on another node
    d = decide(CFG, req(handover=True, profile="disabled", earlier=early))
    assert d.priority == CFG.routing.priority_handover
    assert "priority=handover (line nanjing)" in d.reasons


def test_widening_plan():
    d = decide(CFG, req(key="1"))  # enterprise_policy: the default relax
    relax = CFG.routing.relax
    assert d.max_penalty == 5 - relax.min_level and d.rule == "relax-enterprise_policy"
    assert d.first_wait_s == relax.city_general_after_s
    assert d.overflow == (("nanjing-general", relax.province_after_s
                           - relax.city_general_after_s), ("province-general", None))
    d = decide(CFG, req())  # general: every level at once, then the province
    assert d.max_penalty is None and d.rule == ""
    assert d.overflow == (("province-general", None),)
    d = decide(CFG, req(trunk="carrier", key="1"))  # province pool, a skill
    assert d.queue == "province-enterprise_policy"
    assert d.overflow == (("province-general", None),)


async def _route_unnumbered(record, call: str, key: str) -> tuple[list[str], object]:
    """Route a new call through a router whose store has not seen it (no case number yet):
    the answer's fields and the router (stopped)."""
    from queueing.routing.router import ROUTE_VARIABLE, RouteEndpoint

    router = RouteEndpoint(CFG, record, case_number=lambda _call_id: None)
    router.start()
    try:
        answer = await router.answer({"agi_uniqueid": call, "agi_arg_1": "nanjing",
                                      "agi_arg_2": "12345", "agi_arg_3": key,
                                      "agi_arg_4": call, "agi_callerid": "13800001111"})
    finally:
        await router.stop()
    assert answer is not None
    return answer.variables[ROUTE_VARIABLE].split("|"), router


async def test_slow_database_answers_the_route_without_the_case_number():
    """The store has not seen the call and the database is slower than the budget: the call
    still gets its queue (not the fallback), and the case gets the decision afterwards."""
    import asyncio

    recorded = []

    async def slow_record(fact):
        await asyncio.sleep(CFG.fastagi.decision_timeout_ms / 1000 * 2)
        recorded.append(fact)
        return None

    fields, router = await _route_unnumbered(slow_record, "node1-1.1", "")
    assert fields[0] == "nanjing-general" and fields[2] == ""
    assert router.fallbacks == 0 and router.unnumbered == 1
    for _ in range(50):  # the decision is recorded when the database answers
        if recorded:
            break
        await asyncio.sleep(0.05)
    assert [f.kind for f in recorded] == ["routed"]


async def test_a_loop_stalled_past_the_budget_still_answers_the_decision():
    """The event loop blocked longer than the whole budget (seen under load: a disk stall)
    while the case number was awaited: the decision made before the wait is answered, without
    the number, not the fallback queue."""
    import asyncio
    import time

    async def stalled_record(fact):
        time.sleep(CFG.fastagi.decision_timeout_ms / 1000 * 1.5)  # noqa: ASYNC251 - the stall is the point
        await asyncio.sleep(0.1)
        return None

    fields, router = await _route_unnumbered(stalled_record, "node1-2.1", "1")
    assert fields[0] == "nanjing-enterprise_policy" and fields[2] == ""
    assert router.fallbacks == 0 and router.unnumbered == 1


def test_the_menu_is_offered_while_waiting_until_a_key_chooses():
    """Queue first: field 12 says whether the prompt (and its keys) comes with the wait."""

    def menu(dialed: str, key: str = "", trunk: str = "nanjing", handover: bool = False) -> str:
        d = decide(CFG, RouteRequest("node1", "node1:1", trunk, dialed, key, "13800000000",
                                     handover=handover))
        return d.channel_value("1").split("|")[11]

    assert menu("12345") == "1"
    assert menu("12345", key="1") == ""           # chosen: no prompt again
    assert menu("12345", key="9") == "1"          # not a menu key: still offered
    assert menu("12315") == ""                    # a number with its own skill has no menu
    assert menu("12345", handover=True) == ""     # handed over: straight to an agent
