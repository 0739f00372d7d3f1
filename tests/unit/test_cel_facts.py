"""From Asterisk's CEL rows (as cel_sqlite3_custom writes them) to call facts."""

from __future__ import annotations

from telephony.calls.cel import CelRow, facts_from_cel

L = "node1-100.0"
A = "node1-100.1"
CALLER = "PJSIP/trunk-nanjing-00000000"
AGENT = "PJSIP/1001-00000001"


def row(i, event, t, channel=CALLER, uid=L, app="", appdata="", extra=None, udt=""):
    return CelRow(i, event, 100.0 + t, "张三", "13812345678", "from-carrier", "12345",
                  channel, app, appdata, uid, L, "", udt, extra or {})


def answered_call() -> list[CelRow]:
    return [
        row(1, "CHAN_START", 0),
        row(2, "ANSWER", 0.01, app="Answer"),
        row(3, "HOTLINE_FALLBACK", 6, app="CELGenUserEvent", extra={"extra": "FAILURE"},
            udt="HOTLINE_FALLBACK"),
        row(4, "APP_START", 6, app="Queue", appdata="province-general,,,,"),
        row(5, "CHAN_START", 6.01, channel=AGENT, uid=A),
        row(6, "ANSWER", 8, channel=AGENT, uid=A, app="AppQueue"),
        row(7, "BRIDGE_ENTER", 8, channel=AGENT, uid=A, app="AppQueue"),
        row(8, "BRIDGE_ENTER", 8, app="Queue"),
        row(9, "BRIDGE_EXIT", 20, app="Queue"),
        row(10, "HANGUP", 20, extra={"hangupcause": 16, "hangupsource": CALLER}),
        row(11, "CHAN_END", 20),
        row(12, "HANGUP", 20, channel=AGENT, uid=A, extra={"hangupcause": 16,
                                                            "hangupsource": CALLER}),
        row(13, "CHAN_END", 20, channel=AGENT, uid=A),
        row(14, "LINKEDID_END", 20, channel=AGENT, uid=A),
    ]


def test_answered_call():
    facts = {f.kind: f for f in facts_from_cel("node1", answered_call())}
    assert facts["arrived"].data["caller"] == "13812345678"
    assert facts["arrived"].data["trunk"] == "nanjing"
    assert facts["queued"].data["queue"] == "province-general"
    assert "fallback" in facts
    assert facts["answered"].data["agent"] == "1001"
    assert facts["answered"].data["hold_time"] == 2.0
    assert facts["completed"].data["talk_time"] == 12.0
    assert facts["ended"].data["hangup_by"] == "caller"
    assert all(f.source == "cel" for f in facts.values())


def test_abandoned_call():
    rows = [r for r in answered_call() if r.uniqueid == L and r.event not in (
        "BRIDGE_ENTER", "BRIDGE_EXIT")]
    kinds = [f.kind for f in facts_from_cel("node1", rows)]
    assert "abandoned" in kinds and "answered" not in kinds and kinds[-1] == "ended"


def test_live_and_dead_calls():
    rows = answered_call()[:8]
    live = [f.kind for f in facts_from_cel("node1", rows, finished=False)]
    assert "answered" in live and "ended" not in live
    dead = [f.kind for f in facts_from_cel("node1", rows, dead=True)]
    assert dead[-1] == "orphaned"


def test_not_an_inbound_call():
    rows = [r for r in answered_call() if r.uniqueid == A]
    assert facts_from_cel("node1", rows) == []


def test_keep_my_place_steps_from_a_placeholders_cel_events():
    """Keep my place: a placeholder's steps, read from CEL after an outage, are the same facts
    (same keys) as its live FastAGI reports, on the caller's call."""
    from telephony.calls.keep_place import facts_from_cel_event

    taken = facts_from_cel_event("node1", "node1-100.0|2|TAKEN|0", 130.0)
    assert [(f.kind, f.call_id, f.source) for f in taken] == [
        ("keep_place_2_taken", "node1:node1-100.0", "cel")]
    busy = facts_from_cel_event("node1", "node1-100.0|3|BUSY|1", 140.0)
    assert [f.kind for f in busy] == ["keep_place_3_busy", "keep_place_failed"]
    answered = facts_from_cel_event("node1", "node1-100.0|1|ANSWER|1", 150.0)
    assert [f.kind for f in answered] == ["keep_place_1_answer", "keep_place_reached"]
    assert facts_from_cel_event("node1", "garbage", 1.0) == []
