"""Fuzzing the AMI reader: random bytes, truncated and oversized messages, lines without a colon,
invalid UTF-8, NULs, CR-only and LF-only line ends, missing and repeated fields for every event
type, garbage replies to actions. Nothing raises out of the reader, nothing grows without bound,
every action ends (reply, AmiError or AmiTimeout), and the valid messages around the garbage
come out intact and in order.

Pure logic on the protocol object (a unit test of the framing, not a fake Asterisk); the same
kinds of garbage between a real Asterisk and the service, during a call, are in
tests/integration/test_ami_garbage_call.py."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import events as ev
from telephony import ami as ami_mod
from telephony.ami import AmiClient, AmiError, AmiTimeout, BufferedAMIProtocol
from tests.support.amiwire import EOM, NEWCHANNEL, protocol


def event_bytes(fields: list[tuple[str, str]]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n").encode()


def valid_event(i: int) -> tuple[bytes, dict[str, str]]:
    """A Hangup or a QueueMemberPause with a unique id, and the fields it must come out with."""
    if i % 2:
        fields = [("Event", "Hangup"), ("Privilege", "call,all"),
                  ("Channel", f"PJSIP/trunk-nanjing-{i:08x}"), ("ChannelStateDesc", "Up"),
                  ("CallerIDNum", "13812345678"), ("CallerIDName", "张三丰"),
                  ("Uniqueid", f"node1-{i}.1"), ("Linkedid", f"node1-{i}.1"),
                  ("Context", "from-carrier"), ("Exten", "12345"), ("Cause", "16"),
                  ("Cause-txt", "Normal Clearing")]
    else:
        fields = [("Event", "QueueMemberPause"), ("Queue", "nanjing-general"),
                  ("MemberName", f"{1000 + i}"), ("Interface", f"PJSIP/{1000 + i}"),
                  ("Penalty", "2"), ("Paused", "1"), ("PausedReason", "培训"), ("Status", "1"),
                  ("InCall", "0")]
    return event_bytes(fields), dict(fields)


# Garbage, each framed (it ends with a message end): what a broken peer or a bad proxy sends.
garbage = st.one_of(
    st.binary(max_size=600),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=":\r"),
            max_size=300).map(str.encode),
    st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"\r")),  # CR
    st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"")),                       # LF only
    st.just(b"Event: Newchannel\nChannel: x\nUniqueid: 1\n\n"),                         # LF only
    st.just(b"\xff\xfe\x00\x00Event: \x00Hangup\r\nChannel: \xc3\x28\r\n"),             # bad UTF-8
    st.integers(1, 9000).map(lambda n: b"y" * n),                                       # huge line
    st.just(b"Event: Hangup\r\nChannel: PJSIP/x-1\r\nUniq"),                             # cut short
    st.just(b"Response: Success\r\nActionID: nobody-asked\r\nMessage: stray"),
)


@st.composite
def streams(draw):
    """Valid events with garbage frames between them, and where the stream is cut into reads."""
    parts: list[bytes] = [b"Asterisk Call Manager/11.0.0\r\n"]
    expected = []
    for i in range(draw(st.integers(1, 8))):
        for g in draw(st.lists(garbage, max_size=3)):
            parts.append(g + EOM)
        raw, fields = valid_event(i)
        parts.append(raw)
        expected.append(fields)
    stream = b"".join(parts)
    cuts = draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=25))
    return stream, expected, sorted(set(cuts))


@given(streams())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_valid_messages_survive_garbage_in_order_and_intact(monkeypatch_module, case):
    stream, expected, cuts = case
    p, c = protocol()
    for a, b in itertools.pairwise([0, *cuts, len(stream)]):
        p.data_received(stream[a:b])
        # Bounded: the reader holds at most one (partial) message of MAX_MESSAGE bytes.
        assert len(p._buffer) <= ami_mod.MAX_MESSAGE + (b - a)
    ours = [m for m in c.events if m.get("Uniqueid", "").startswith("node1-")
            or m.get("Interface", "").startswith("PJSIP/1")]
    assert ours == expected
    for m in c.events:  # whatever garbage became a "message" parses without raising
        assert isinstance(ev.parse_event("node1", m), ev.DomainEvent)
    for m in ours:
        assert not isinstance(ev.parse_event("node1", m), ev.MalformedEvent)


@pytest.fixture(scope="module")
def monkeypatch_module():
    """A small MAX_MESSAGE so the fuzzer reaches the oversized-message paths cheaply."""
    mp = pytest.MonkeyPatch()
    mp.setattr(ami_mod, "MAX_MESSAGE", 4096)
    yield mp
    mp.undo()


def test_oversized_message_is_bounded_and_the_next_one_survives():
    p, c = protocol()
    chunk = b"z" * 65536
    for _ in range(40):  # 2.5 MiB without a message end, in reads as a socket gives them
        p.data_received(chunk)
        assert len(p._buffer) <= ami_mod.MAX_MESSAGE + len(chunk)
    p.data_received(b"z" * 100 + EOM + NEWCHANNEL)
    assert [m["CallerIDName"] for m in c.events] == ["张三丰（市民）"]
    assert c.malformed and "dropped" in c.malformed[0]
    # A whole message over the bound in one read is dropped as well.
    p.data_received(b"Event: UserEvent\r\nUserEvent: big\r\nData: " + b"q" * (2 << 20) + EOM)
    p.data_received(NEWCHANNEL)
    assert len(c.events) == 2


def test_a_message_cut_at_a_line_end_does_not_take_the_next_one_with_it():
    p, c = protocol()
    p.data_received(b"Event: Hangup\r\nChannel: PJSIP/trunk-nanjing-1\r\n")  # its end is lost
    p.data_received(NEWCHANNEL)
    assert [m["Event"] for m in c.events] == ["Newchannel"]
    assert c.events[0]["CallerIDName"] == "张三丰（市民）"
    assert any("cut short" in s for s in c.malformed)
    # OriginateResponse has a Response header of its own: not a cut.
    p.data_received(b"Event: OriginateResponse\r\nResponse: Failure\r\nChannel: Local/s@x\r\n"
                    b"Reason: 0\r\n\r\n")
    assert c.events[-1]["Event"] == "OriginateResponse"


def test_connection_cut_mid_message_leaves_nothing_for_the_next_connection():
    p, c = protocol()
    p.data_received(NEWCHANNEL[: len(NEWCHANNEL) // 2])
    p.client = None  # (the AmiClient's own handling of a drop is tested on a real Asterisk)
    p.connection_lost(None)
    q, c2 = protocol()  # a new connection: a new protocol, an empty buffer
    q.data_received(NEWCHANNEL)
    assert not c.events and len(c2.events) == 1


def test_nul_cr_only_lf_only_and_invalid_utf8_never_raise():
    p, c = protocol()
    for junk in (b"\x00" * 50, b"Event: X\rChannel: y\r\r", b"Event: X\nChannel: y\n\n",
                 b"\xc3\x28\xa0\xa1 Event: \xe2\x28\xa1", b"no colon at all", b":", b": ",
                 b"Event:", b"Event: \r\n: value\r\nKey:\r\n:::"):
        p.data_received(junk + EOM)
    p.data_received(NEWCHANNEL)
    assert c.events[-1]["CallerIDName"] == "张三丰（市民）"
    for m in c.events:
        assert isinstance(ev.parse_event("n", m), ev.DomainEvent)


# -- every typed event: missing, repeated and bad fields --------------------------------------

CHANNEL = {"Channel": "PJSIP/trunk-nanjing-00000001", "Uniqueid": "n-1.1", "Linkedid": "n-1.1",
           "ChannelStateDesc": "Up", "CallerIDNum": "13812345678", "CallerIDName": "王五",
           "ConnectedLineNum": "1001", "Context": "from-carrier", "Exten": "12345"}
DEST = {"Dest" + k: v.replace("trunk-nanjing", "1001") for k, v in CHANNEL.items()}
AGENT = {**CHANNEL, **DEST, "Queue": "nanjing-general", "MemberName": "1001",
         "Interface": "PJSIP/1001"}
MEMBER = {"Queue": "nanjing-general", "Interface": "PJSIP/1001", "MemberName": "1001",
          "Penalty": "1", "Paused": "0", "Status": "1", "InCall": "0", "Membership": "dynamic"}
# Each typed event: a complete field set, and the fields without which it is malformed.
TYPED: dict[str, tuple[dict[str, str], set[str]]] = {
    "Newchannel": (CHANNEL, {"Channel", "Uniqueid"}),
    "Hangup": ({**CHANNEL, "Cause": "16", "Cause-txt": "Normal"}, {"Channel", "Uniqueid"}),
    "VarSet": ({**CHANNEL, "Variable": "HOTLINE_KEY", "Value": "1"},
               {"Channel", "Uniqueid", "Variable"}),
    "QueueCallerJoin": ({**CHANNEL, "Queue": "q", "Position": "1"},
                        {"Channel", "Uniqueid", "Queue"}),
    "QueueCallerLeave": ({**CHANNEL, "Queue": "q"}, {"Channel", "Uniqueid", "Queue"}),
    "QueueCallerAbandon": ({**CHANNEL, "Queue": "q", "HoldTime": "3"},
                           {"Channel", "Uniqueid", "Queue"}),
    "AgentCalled": (AGENT, {"Channel", "Uniqueid", "Queue", "Interface", "DestUniqueid"}),
    "AgentConnect": ({**AGENT, "HoldTime": "2", "RingTime": "1"},
                     {"Channel", "Uniqueid", "Queue", "Interface", "DestUniqueid"}),
    # Asterisk leaves out the channels already gone (the caller's, sometimes both).
    "AgentComplete": ({**AGENT, "HoldTime": "2", "TalkTime": "9", "Reason": "caller"},
                      {"Uniqueid", "Queue", "Interface", "DestUniqueid"}),
    "AgentRingNoAnswer": ({**AGENT, "RingTime": "8000"},
                          {"Channel", "Uniqueid", "Queue", "Interface", "DestUniqueid"}),
    "BridgeEnter": ({**CHANNEL, "BridgeUniqueid": "b-1", "BridgeTechnology": "simple_bridge"},
                    {"Channel", "Uniqueid", "BridgeUniqueid"}),
    "BridgeLeave": ({**CHANNEL, "BridgeUniqueid": "b-1"}, {"Channel", "Uniqueid",
                                                           "BridgeUniqueid"}),
    "DialBegin": ({**CHANNEL, **DEST, "DialString": "1001"}, {"DestChannel", "DestUniqueid"}),
    "DialEnd": ({**CHANNEL, **DEST, "DialStatus": "ANSWER"}, {"DestChannel", "DestUniqueid"}),
    "UserEvent": ({**CHANNEL, "UserEvent": "HotlineX"}, {"UserEvent"}),
    "FullyBooted": ({"Status": "Fully Booted"}, set()),
    "Shutdown": ({"Shutdown": "Cleanly", "Restart": "False"}, set()),
    **{name: (MEMBER, {"Queue"}) for name in ev._MEMBER_EVENTS},
}
NUMERIC = {"Cause", "Position", "HoldTime", "RingTime", "TalkTime", "Penalty", "Status"}
# Fields a type's parser does not read (everything else it reads: repeated means malformed).
UNREAD = {"FullyBooted": {"Status"}, "Shutdown": {"Shutdown"}}
VALUES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                 max_size=30)


def test_every_typed_event_is_listed():
    assert set(TYPED) == set(ev._PARSERS) | ev._MEMBER_EVENTS


@given(name=st.sampled_from(sorted(TYPED)), data=st.data())
@settings(max_examples=600, deadline=None)
def test_missing_repeated_and_bad_fields_give_malformed_never_an_exception(name, data):
    full, required = TYPED[name]
    fields: dict[str, object] = {"Event": name, **full}
    assert not isinstance(ev.parse_event("n", dict(fields)), ev.MalformedEvent), name
    keys = sorted(full)
    read = set(keys) - UNREAD.get(name, set())
    dropped = data.draw(st.sets(st.sampled_from(keys), max_size=4))
    repeated = data.draw(st.sets(st.sampled_from(keys), max_size=3))
    numeric = sorted(NUMERIC & read)
    bad = data.draw(st.sets(st.sampled_from(numeric), max_size=2)) if numeric else set()
    junk = data.draw(VALUES)
    # Optional channels: without their Channel header their other fields are not read.
    if name in ("DialBegin", "DialEnd", "UserEvent", "AgentComplete") and "Channel" in dropped:
        read -= set(CHANNEL)
        required = required - {"Uniqueid"}
    if "DestChannel" in dropped and name not in ("DialBegin", "DialEnd"):
        read -= set(DEST)
        required = required - {"DestUniqueid"}
    for k in dropped:
        fields.pop(k, None)
    for k in repeated - dropped:
        fields[k] = [str(fields[k]), junk]
    for k in bad - dropped - repeated:
        fields[k] = junk + "x"  # never a number
    e = ev.parse_event("n", fields)  # never raises
    assert isinstance(e, ev.DomainEvent)
    if dropped & required or (repeated - dropped) & read:
        assert isinstance(e, ev.MalformedEvent), (name, dropped, repeated)
    if bad - dropped - repeated:
        assert isinstance(e, ev.MalformedEvent), (name, bad)
    # Text passed through the real framing and parser gives the same verdict.
    p, c = protocol()
    lines = [("Event", name)] + [(k, x) for k, v in fields.items() if k != "Event"
                                 for x in (v if isinstance(v, list) else [v])]
    p.data_received(event_bytes([(k, str(v)) for k, v in lines]))
    assert len(c.events) == 1
    assert type(ev.parse_event("n", c.events[0])) is type(e)


def test_repeated_event_header_is_malformed():
    e = ev.parse_event("n", {"Event": ["Hangup", "Newchannel"], **CHANNEL})
    assert isinstance(e, ev.MalformedEvent) and "repeated" in e.problem


# -- garbage replies to actions ----------------------------------------------------------------

class _Wire:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _client_on_wire(timeout: float = 0.5) -> tuple[AmiClient, BufferedAMIProtocol, _Wire]:
    client = AmiClient(node="n", host="127.0.0.1", port=1, username="u", secret="s",
                       action_timeout=timeout)
    wire = _Wire()
    p = BufferedAMIProtocol()
    p.connection_made(wire)  # type: ignore[arg-type]
    p.client = client
    p.encoding = "utf-8"
    client.protocol = p
    client._ready.set()
    return client, p, wire


def _action_id(wire: _Wire) -> str:
    text = wire.sent[-1].decode()
    return next(line.split(": ", 1)[1] for line in text.split("\r\n")
                if line.startswith("ActionID: "))


GARBAGE_REPLIES = [
    b"ActionID: {id}\r\nthis is not a reply",                       # no Response header
    b"Response: Gibberish\r\nActionID: {id}\r\nMessage: ???",        # an unknown status
    b"Response: \xff\xfe\r\nActionID: {id}",                         # not UTF-8
    b"Response: Success\r\nActionID: {id}\r\nActionID: {id}2",       # its id twice
]


@pytest.mark.parametrize("reply", GARBAGE_REPLIES)
async def test_a_garbage_reply_fails_the_action_clearly_and_at_once(reply):
    client, p, wire = _client_on_wire(timeout=30)
    task = asyncio.create_task(client.send({"Action": "QueuePause", "Interface": "PJSIP/1"}))
    await asyncio.sleep(0)
    p.data_received(reply.replace(b"{id}", _action_id(wire).encode()) + EOM)
    with pytest.raises(AmiError):
        await asyncio.wait_for(task, 2)  # not after the 30 s action timeout
    assert not p.responses  # nothing left waiting


async def test_an_action_without_reply_or_with_a_list_never_completed_times_out():
    client, p, wire = _client_on_wire(timeout=0.3)
    with pytest.raises(AmiTimeout):
        await client.send({"Action": "Ping"})
    task = asyncio.create_task(client.send_list({"Action": "QueueStatus"}, timeout=0.3))
    await asyncio.sleep(0)
    aid = _action_id(wire).encode()
    p.data_received(b"Response: Success\r\nActionID: " + aid + b"\r\nEventList: start\r\n\r\n"
                    b"Event: QueueMember\r\nActionID: " + aid + b"\r\nQueue\r\n\r\n"
                    b"\x00garbage\r\n\r\n")
    with pytest.raises(AmiTimeout):
        await task
    assert not p.responses


async def test_garbage_inside_a_list_reply_is_counted_the_list_still_completes():
    client, p, wire = _client_on_wire(timeout=2)
    task = asyncio.create_task(client.snapshot())
    await asyncio.sleep(0)
    aid = _action_id(wire).encode()
    p.data_received(b"Response: Success\r\nActionID: " + aid + b"\r\nEventList: start\r\n\r\n"
                    b"Event: CoreShowChannel\r\nActionID: " + aid + b"\r\nDuration: x\r\n\r\n"
                    b"Event: CoreShowChannelsComplete\r\nActionID: " + aid + b"\r\n\r\n")
    await asyncio.sleep(0.05)
    aid = _action_id(wire).encode()  # then QueueStatus
    p.data_received(b"Response: Success\r\nActionID: " + aid + b"\r\nEventList: start\r\n\r\n"
                    b"Event: QueueMember\r\nActionID: " + aid + b"\r\nPenalty: nan\r\n\r\n"
                    b"Event: QueueStatusComplete\r\nActionID: " + aid + b"\r\n\r\n")
    snap = await asyncio.wait_for(task, 2)
    assert snap.channels == [] and snap.members == []
    assert client.malformed == 2
