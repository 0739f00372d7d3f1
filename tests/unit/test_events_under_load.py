"""AMI events as Asterisk sends them under load (found by bench/load.py): AgentComplete without
the channels already gone still completes its call, and event times are Asterisk's own, so a
service behind the event stream records true waits and talk times."""

from __future__ import annotations

import time

from common import events as ev
from tests.support.tracking import tracker_with_facts


async def test_agent_complete_without_the_callers_channel_still_completes_the_call():
    tracker, facts = tracker_with_facts()
    caller = {"Channel": "PJSIP/trunk-nanjing-00000001", "Uniqueid": "node1-1.1",
              "Linkedid": "node1-1.1", "Context": "from-carrier", "Exten": "12345",
              "CallerIDNum": "13800001111"}
    await tracker.handle(ev.parse_event("node1", {"Event": "Newchannel", **caller}))
    complete = {"Event": "AgentComplete", "Queue": "nanjing-general", "MemberName": "1001",
                "Interface": "PJSIP/1001", "HoldTime": "2", "TalkTime": "4",
                "Reason": "agent", "DestChannel": "PJSIP/1001-00000002",
                "DestUniqueid": "node1-1.2", "DestLinkedid": "node1-1.1"}
    event = ev.parse_event("node1", complete)
    assert isinstance(event, ev.AgentComplete)
    await tracker.handle(event)
    await tracker.handle(ev.parse_event("node1", {"Event": "Hangup", "Cause": "16", **caller}))
    assert [f.kind for f in facts] == ["arrived", "completed", "ended"]
    assert facts[1].data["talk_time"] == 4 and facts[2].data["hangup_by"] == "agent"


async def test_agent_complete_without_any_channel_is_matched_by_its_agent():
    tracker, facts = tracker_with_facts()
    caller = {"Channel": "PJSIP/trunk-nanjing-00000001", "Uniqueid": "node1-1.1",
              "Linkedid": "node1-1.1", "Context": "from-carrier", "Exten": "12345"}
    agent = {"DestChannel": "PJSIP/1001-00000002", "DestUniqueid": "node1-1.2",
             "DestLinkedid": "node1-1.1", "Queue": "nanjing-general", "MemberName": "1001",
             "Interface": "PJSIP/1001"}
    for event in ({"Event": "Newchannel", **caller},
                  {"Event": "AgentCalled", **caller, **agent},
                  {"Event": "AgentConnect", **caller, **agent, "HoldTime": "1"},
                  {"Event": "Hangup", "Cause": "16", **caller},
                  {"Event": "AgentComplete", "Queue": "nanjing-general", "MemberName": "1001",
                   "Interface": "PJSIP/1001", "HoldTime": "1", "TalkTime": "4",
                   "Reason": "agent"}):
        parsed = ev.parse_event("node1", event)
        assert not isinstance(parsed, ev.MalformedEvent), parsed
        await tracker.handle(parsed)
    completed = [f for f in facts if f.kind == "completed"]
    assert len(completed) == 1 and completed[0].call_id == "node1:node1-1.1"
    assert completed[0].data["reason"] == "agent"


def test_event_time_is_asterisks_timestamp_not_when_it_was_handled():
    fields = {"Event": "Hangup", "Channel": "PJSIP/trunk-nanjing-00000001",
              "Uniqueid": "node1-1.1", "Linkedid": "node1-1.1", "Cause": "16",
              "Timestamp": "1796157790.123456"}
    assert ev.parse_event("node1", fields).received_at == 1796157790.123456
    other = ev.parse_event("node1", {"Event": "Newexten", "Timestamp": "1796157791.5"})
    assert other.received_at == 1796157791.5
    # Without timestampevents (or a broken value): the time it was parsed.
    fields["Timestamp"] = "soon"
    assert abs(ev.parse_event("node1", fields).received_at - time.time()) < 5
