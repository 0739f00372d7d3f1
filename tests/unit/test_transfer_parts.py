"""The pure parts of transfers: configuration, outcome classification, fact keys, the case
record (on a real SQLite file), CEL reconstruction, and what gets rendered for Asterisk."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cases.db import make_engine, migrate, sessionmaker
from cases.report import format_case
from cases.store import CaseStore
from common.config import ConfigError, load_config, parse_config
from common.facts import CallFact
from common.privacy import PersonalData
from lab.harness import EXAMPLE_CONFIG
from telephony.calls.cel import CelRow, facts_from_cel
from telephony.transfers.services import classify_failure

MINIMAL = """
[skills]
general = "综合"
[[nodes]]
id = "node1"
[[cities]]
id = "nanjing"
name = "南京"
node = "node1"
[[trunks]]
id = "carrier"
node = "node1"
match = ["10.0.0.1"]
[[numbers]]
number = "12345"
skill = "general"
"""


def test_example_config_has_branch_centers_and_emergency_lines():
    cfg = load_config(EXAMPLE_CONFIG)
    kinds = {d.number: d.kind for d in cfg.destinations}
    assert kinds["12366"] == kinds["95598"] == "branch_center"
    assert all(kinds[n] == "emergency_line" for n in ("110", "119", "120", "122"))
    police = cfg.destination("police")
    assert police.endpoint == "dest-police" and police.present == "caller"
    assert cfg.ring_timeout_of(police) == cfg.transfers.emergency_timeout_s
    tax = cfg.destination("tax")
    assert tax.present == "hotline" and cfg.ring_timeout_of(tax) == cfg.transfers.ring_timeout_s
    handover = next(t for t in cfg.trunks if t.kind == "handover")
    assert handover.referring_line == "119"


@pytest.mark.parametrize("extra, problem", [
    ('[[branch_centers]]\nid = "tax"\nnumber = "12366"\nname = "x"\ncategory = "税务"\n'
     'address = "10.0.0.2"\n[[emergency_lines]]\nid = "tax"\nnumber = "110"\nname = "y"\n'
     'category = "z"\naddress = "10.0.0.3"\n', "emergency_lines[0].id: 'tax' already used"),
    ('[[emergency_lines]]\nid = "police"\nnumber = "110"\nname = "y"\ncategory = "z"\n'
     'address = "10.0.0.3:99999"\n', "emergency_lines.0.address"),
    ('[[emergency_lines]]\nid = "police"\nnumber = "110"\nname = "y"\ncategory = "z"\n'
     'address = "bad host!"\n', "must be \"host\" or \"host:port\""),
    ('[[branch_centers]]\nid = "tax"\nnumber = "12366"\nname = "x"\ncategory = "c"\n'
     'address = "h"\nkind = "emergency_line"\n', "branch_centers.0.kind: unknown key"),
    ('[[branch_centers]]\nid = "tax"\nnumber = "12366"\nname = "x"\n'
     'address = "h"\n', "branch_centers.0.category: required key is missing"),
    ('[transfers]\nemergency_timeout_s = 500\n', "transfers.emergency_timeout_s"),
    ('[[branch_centers]]\nid = "a"\nnumber = "12366"\nname = "x"\ncategory = "c"\n'
     'address = "h"\n[[branch_centers]]\nid = "b"\nnumber = "12366"\nname = "x"\n'
     'category = "c"\naddress = "h"\n', "branch_centers[1].number: 12366 already used"),
])
def test_bad_destinations_are_named(extra, problem):
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL + extra)
    text = str(err.value).replace("[0]", ".0")
    assert problem.replace("[0]", ".0") in text, str(err.value)


@pytest.mark.parametrize("seen, status, cause, reason, outcome", [
    (False, "", None, 0, "failed"),  # qualify says the trunk is down: no channel at all
    (True, "BUSY", 17, 0, "busy"),  # 486
    (True, "NOANSWER", 21, 0, "busy"),  # 603 declined
    (True, "", 19, 3, "no_answer"),  # ring timeout
    (True, "CONGESTION", 34, 0, "failed"),  # 503
    (True, "", 38, 0, "failed"),
    (True, "", None, None, "failed"),
])
def test_why_a_destination_was_not_reached(seen, status, cause, reason, outcome):
    got, why = classify_failure(channel_seen=seen, dial_status=status, cause=cause,
                                originate_reason=reason, timeout_s=15)
    assert got == outcome and why
    if outcome == "no_answer":
        assert why == "no answer within 15 s"


@given(seen=st.booleans(), status=st.sampled_from(["", "BUSY", "NOANSWER", "CONGESTION",
                                                   "CHANUNAVAIL", "garbage"]),
       cause=st.one_of(st.none(), st.integers(-5, 200)),
       reason=st.one_of(st.none(), st.integers(-1, 10)))
def test_classification_always_gives_a_known_outcome(seen, status, cause, reason):
    outcome, why = classify_failure(channel_seen=seen, dial_status=status, cause=cause,
                                    originate_reason=reason, timeout_s=6)
    assert outcome in ("busy", "no_answer", "failed") and why


def test_transfer_facts_have_natural_keys():
    leg = "node1-1.0-x1abcd"
    for kind in ("transfer_dialing", "transfer_answered", "transfer_ended"):
        a = CallFact(kind, "node1:node1-1.0", "node1", 1.0, {"leg": leg}, "live")
        b = CallFact(kind, "node1:node1-1.0", "node1", 2.0, {"leg": leg, "x": 1}, "cel")
        assert a.key == b.key == f"{kind}:{leg}"
    assert CallFact("handover", "c", "n", 0.0, {"trunk": "fire119"}).key == "handover"


# -- the case record -------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}")
    await migrate(engine)
    yield CaseStore(sessionmaker(engine), PersonalData("unit-test-data-key"))
    await engine.dispose()


def _facts(call: str, leg: str, t0: float, source: str = "live") -> list[CallFact]:
    def f(fact_kind: str, dt: float, **data: object) -> CallFact:
        return CallFact(fact_kind, call, "node1", t0 + dt, {"leg": leg, **data}, source)

    return [
        f("transfer_dialing", 0, destination="tax", kind="branch_center", number="12366",
          name="12366 纳税缴费服务热线", category="税务", mode="consult", initiator="1001"),
        f("transfer_ringing", 0.1, channel="PJSIP/dest-tax-00000002"),
        f("transfer_answered", 2, channel="PJSIP/dest-tax-00000002"),
        f("transfer_three_way", 5),
        f("transfer_agent_left", 9, agent="1001", how="lost", handed_off=True),
        f("transfer_ended", 20, outcome="answered", ended_by="caller", cause=16),
    ]


async def test_a_leg_reported_twice_is_one_row(store):
    call, leg, t0 = "node1:node1-1.0", "node1-1.0-x1abcd", time.time()
    await store.apply(CallFact("arrived", call, "node1", t0 - 30,
                               {"caller": "13812345678", "uniqueid": "node1-1.0",
                                "channel": "PJSIP/trunk-x-1", "trunk": "fire119"}))
    await store.apply(CallFact("handover", call, "node1", t0 - 30,
                               {"trunk": "fire119", "referring_line": "119", "priority": 10}))
    for fact in _facts(call, leg, t0):
        await store.apply(fact)
    applied = store.facts_applied
    # The same leg again, as CEL would tell it (less detail, other times): nothing changes.
    cel = [CallFact(f.kind, f.call_id, f.node, f.at + 0.5,
                    {"leg": leg, "destination": "tax", "ended_by": "destination"}, "cel")
           for f in _facts(call, leg, t0)]
    for fact in cel:
        await store.apply(fact)
    assert store.facts_applied == applied and store.facts_duplicate == len(cel)

    case = await store.by_call(call)
    assert case.referred_by == "119" and case.priority == 10
    assert {"handover", "transferred", "handed_off", "agent_lost"} <= set(case.flags)
    [t] = case.transfers
    assert (t.destination, t.number, t.category, t.mode, t.initiator) == (
        "tax", "12366", "税务", "consult", "1001")
    assert t.outcome == "answered" and t.ended_by == "caller" and t.handed_off
    assert t.agent_left_how == "lost" and t.hangup_cause == 16
    assert (t.answered_at - t.dialed_at).total_seconds() == pytest.approx(2, abs=0.01)
    [leg_row] = [x for x in case.legs if x.role == "transfer"]
    assert leg_row.uniqueid == leg and leg_row.party == "12366"
    assert leg_row.channel == "PJSIP/dest-tax-00000002"
    assert await store.legs_needing_cel([leg, "node1-9.0-x1ffff"]) == {"node1-9.0-x1ffff"}
    text = format_case(case)
    assert "transfer 12366 12366 纳税缴费服务热线 [consult] by 1001: answered" in text
    assert "handed off, agent lost, ended by caller" in text and "handed over by 119" in text


async def test_a_leg_not_answered_keeps_why(store):
    call, leg, t0 = "node1:node1-2.0", "node1-2.0-x10001", time.time()
    await store.apply(CallFact("transfer_dialing", call, "node1", t0,
                               {"leg": leg, "destination": "police", "kind": "emergency_line",
                                "mode": "emergency", "initiator": "1002"}))
    await store.apply(CallFact("transfer_failed", call, "node1", t0 + 15,
                               {"leg": leg, "outcome": "no_answer",
                                "reason": "no answer within 15 s", "cause": 19}))
    case = await store.by_call(call)
    [t] = case.transfers
    assert (t.outcome, t.reason, t.answered_at) == ("no_answer", "no answer within 15 s", None)
    assert "emergency" in case.flags


# -- CEL ------------------------------------------------------------------------------------------


def _row(i: int, event: str, at: float, uid: str, channel: str, **extra: object) -> CelRow:
    return CelRow(i, event, at, "", "12345", "hotline-xfer", "answered", channel, "", "", uid,
                  uid, "", "", extra=dict(extra))


def test_cel_rebuilds_a_transfer_leg_for_its_call():
    leg, ch = "node1-5.0-x2beef", "PJSIP/dest-tax-0000000a"
    rows = [_row(1, "CHAN_START", 10.0, leg, ch), _row(2, "ANSWER", 12.0, leg, ch),
            _row(3, "HANGUP", 30.0, leg, ch, hangupcause=16, hangupsource=ch),
            _row(4, "CHAN_END", 30.1, leg, ch), _row(5, "LINKEDID_END", 30.2, leg, ch)]
    facts = facts_from_cel("node1", rows)
    assert {f.call_id for f in facts} == {"node1:node1-5.0"}
    assert [f.kind for f in facts] == ["transfer_dialing", "transfer_ringing",
                                       "transfer_answered", "transfer_ended"]
    assert facts[0].data == {"leg": leg, "destination": "tax"}
    assert facts[-1].data["ended_by"] == "destination" and facts[-1].source == "cel"


def test_cel_tells_a_busy_leg():
    leg, ch = "node1-6.0-x1cafe", "PJSIP/dest-police-0000000b"
    rows = [_row(1, "CHAN_START", 10.0, leg, ch),
            _row(2, "HANGUP", 11.0, leg, ch, hangupcause=17),
            _row(3, "CHAN_END", 11.0, leg, ch), _row(4, "LINKEDID_END", 11.0, leg, ch)]
    last = facts_from_cel("node1", rows)[-1]
    assert (last.kind, last.data["outcome"]) == ("transfer_failed", "busy")


def test_cel_ignores_other_channels_named_alike():
    rows = [_row(1, "CHAN_START", 1.0, "node1-7.0-x1zzzz", "PJSIP/1001-00000001")]
    assert facts_from_cel("node1", rows) == []


# -- rendered for Asterisk ---------------------------------------------------------------------


def _render(tmp_path: Path, priority_handover: int = 30, **transfers: object
            ) -> dict[str, str]:
    from lab.harness import lab_config
    from telephony.asterisk.instance import AsteriskInstance
    from telephony.asterisk.runtime import ensure_runtime

    overrides = {f"transfers.{k}": v for k, v in transfers.items()}
    overrides["routing.priority_handover"] = priority_handover
    cfg = lab_config(tmp_path, overrides=overrides)
    inst = AsteriskInstance(ensure_runtime(), tmp_path / "node", cfg.nodes[0])
    inst.render(cfg, ami_secret="x" * 16, sip_master="y" * 16)
    return {p.name: p.read_text() for p in (tmp_path / "node" / "etc").glob("*.conf")}


def test_destinations_and_transfer_dialplan_are_rendered(tmp_path):
    etc = _render(tmp_path, qualify_s=7, agent_media_timeout_s=9, priority_handover=12)
    pjsip = etc["pjsip.conf"]
    assert "[dest-police](hotline-endpoint)" in pjsip
    assert "qualify_frequency = 7" in pjsip and "contact = sip:127.0.0.1:" in pjsip
    assert "rtp_timeout = 9" in pjsip
    ext = etc["extensions.conf"]
    for exten in ("hold", "conf", "ringback", "answered", "requeue"):
        assert f"exten => {exten},1," in ext
    assert "0${QUEUE_PRIO} > 12]?${QUEUE_PRIO}:12" in ext
    assert "dtmf_passthrough = yes" in etc["confbridge.conf"]


def test_no_media_timeout_when_disabled(tmp_path):
    assert "rtp_timeout" not in _render(tmp_path, agent_media_timeout_s=0)["pjsip.conf"]


async def test_facts_of_a_leg_in_any_order(store):
    call, leg, t0 = "node1:node1-3.0", "node1-3.0-x1aaaa", time.time()
    for fact in reversed(_facts(call, leg, t0)):
        await store.apply(fact)
    [t] = (await store.by_call(call)).transfers
    assert (t.destination, t.number, t.outcome, t.ended_by) == ("tax", "12366", "answered",
                                                               "caller")


def test_video_endpoints_have_session_timers_instead_of_a_media_timeout(tmp_path):
    """asterisk/asterisk#1940: Asterisk 22 cuts a bundled WebRTC video call at rtp_timeout,
    so the sign-language seat and the guests rely on session timers; other agents do not."""
    from lab.harness import lab_config
    from telephony.asterisk.instance import AsteriskInstance
    from telephony.asterisk.runtime import ensure_runtime
    from tests.support.webrtc import BROWSER_AGENT, sign_language_overrides

    overrides = {**sign_language_overrides(), "transfers.agent_media_timeout_s": 9}
    cfg = lab_config(tmp_path, overrides=overrides)
    inst = AsteriskInstance(ensure_runtime(), tmp_path / "node", cfg.nodes[0])
    inst.render(cfg, ami_secret="x" * 16, sip_master="y" * 16)
    pjsip = (tmp_path / "node" / "etc" / "pjsip.conf").read_text()

    def section(name: str) -> str:
        return pjsip.split(f"\n[{name}](hotline-endpoint)\n", 1)[1].split("\n[", 1)[0]
    for video in (BROWSER_AGENT, "sign-guest"):
        assert "rtp_timeout =" not in section(video)
        assert "timers = always" in section(video)
    others = [a.id for a in cfg.agents if a.id != BROWSER_AGENT]
    assert others and all("rtp_timeout = 9" in section(a) for a in others)
