"""panoramisk's defects, covered: whole-message decoding across split reads, hostile input,
and typed events that never raise."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from common import events as ev
from tests.support.amiwire import NEWCHANNEL, protocol

STREAM = b"Asterisk Call Manager/11.0.0\r\n" + NEWCHANNEL * 3


def test_split_inside_a_chinese_character_keeps_the_name():
    p, c = protocol()
    cut = NEWCHANNEL.index("张".encode()) + 1
    p.data_received(NEWCHANNEL[:cut])
    p.data_received(NEWCHANNEL[cut:])
    assert len(c.events) == 1
    assert c.events[0]["CallerIDName"] == "张三丰（市民）"


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=30))
@settings(max_examples=200)
def test_any_chunking_gives_the_same_messages(cuts):
    p, c = protocol()
    points = [0, *sorted(set(cuts)), len(STREAM)]
    for a, b in itertools.pairwise(points):
        p.data_received(STREAM[a:b])
    assert [m["CallerIDName"] for m in c.events] == ["张三丰（市民）"] * 3
    assert p.version == "11.0.0"
    assert not c.malformed


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_garbage_never_raises(data):
    p, c = protocol()
    p.data_received(data)
    p.data_received(b"\r\n\r\n")
    for m in c.events:
        ev.parse_event("node1", m)


def test_oversized_message_is_dropped_and_reported():
    p, c = protocol()
    p.data_received(b"x" * (2 << 20))
    assert c.malformed and not c.events
    p.data_received(NEWCHANNEL)
    assert len(c.events) == 1


def test_typed_events():
    p, c = protocol()
    p.data_received(NEWCHANNEL)
    e = ev.parse_event("node1", c.events[0])
    assert isinstance(e, ev.Newchannel)
    assert e.channel.linkedid == "node1-1.1" and e.channel.context == "from-carrier"
    assert "13812345678" not in repr(e)  # personal data stays out of reprs and logs
    assert isinstance(ev.parse_event("n", {"Event": "AgentConnect", "Queue": "q"}),
                      ev.MalformedEvent)
    bad = ev.parse_event("n", {"Event": "Hangup", "Channel": "x", "Uniqueid": "1",
                               "Cause": "abc"})
    assert isinstance(bad, ev.MalformedEvent) and "Cause" in bad.problem
    assert isinstance(ev.parse_event("n", {"Event": "Whatever"}), ev.OtherEvent)
    assert isinstance(ev.parse_event("n", {}), ev.MalformedEvent)
