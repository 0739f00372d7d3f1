"""A call up at a reconnect ends with ``resynced`` on its end, so the case waits for CEL's
word (events of the reconnect's gap may be lost for good); a call heard live from its start
does not. Asterisk's QueueCallerAbandon is an abandon only when the caller then hangs up: a
Queue() that times out sends one too, and the caller goes on."""

from __future__ import annotations

import time

from common import events as ev
from tests.support.tracking import tracker_with_facts

CALLER = {"Channel": "PJSIP/trunk-nanjing-00000001", "Uniqueid": "node1-1.1",
          "Linkedid": "node1-1.1", "Context": "from-carrier", "Exten": "12345",
          "CallerIDNum": "13800001111"}


def _snapshot_with_the_caller_in_queue() -> ev.Snapshot:
    channel = ev.Channel.parse(CALLER)
    now = time.time()
    return ev.Snapshot(channels=[ev.ChannelStatus(channel, "Queue", "nanjing-general", 2.0, "")],
                       entries=[], members=[], taken_at=now, started_at=now - 0.1)


async def test_a_call_adopted_at_a_resync_says_so_at_its_end():
    tracker, facts = tracker_with_facts()
    await tracker.handle(ev.Connected("node1", snapshot=_snapshot_with_the_caller_in_queue(),
                                      reconnect=True))
    await tracker.handle(ev.parse_event("node1", {"Event": "Hangup", "Cause": "16", **CALLER}))
    ended = [f for f in facts if f.kind == "ended"]
    assert len(ended) == 1 and ended[0].data.get("resynced") is True


async def test_a_call_heard_from_its_start_ends_without_it():
    tracker, facts = tracker_with_facts()
    await tracker.handle(ev.parse_event("node1", {"Event": "Newchannel", **CALLER}))
    await tracker.handle(ev.parse_event("node1", {"Event": "Hangup", "Cause": "16", **CALLER}))
    ended = [f for f in facts if f.kind == "ended"]
    assert len(ended) == 1 and "resynced" not in ended[0].data


def _event(name: str, **fields: str) -> ev.DomainEvent:
    return ev.parse_event("node1", {"Event": name, **CALLER, **fields})


async def test_a_queue_timed_out_is_no_abandon_but_a_hang_up_in_the_queue_is():
    tracker, facts = tracker_with_facts()
    await tracker.handle(_event("Newchannel"))
    await tracker.handle(_event("QueueCallerJoin", Queue="nanjing-general", Position="1"))
    # Queue() timed out (app_queue's record_abandoned): the dialplan goes on to the next.
    await tracker.handle(_event("QueueCallerAbandon", Queue="nanjing-general", HoldTime="30"))
    await tracker.handle(_event("QueueCallerJoin", Queue="province-general", Position="1"))
    assert "abandoned" not in [f.kind for f in facts]
    # The caller hangs up while waiting there: that is the call's abandon.
    await tracker.handle(_event("QueueCallerAbandon", Queue="province-general", HoldTime="12"))
    await tracker.handle(_event("Hangup", Cause="16"))
    kinds = [f.kind for f in facts]
    assert kinds.count("abandoned") == 1 and kinds.index("abandoned") < kinds.index("ended")
    abandoned = next(f for f in facts if f.kind == "abandoned")
    assert abandoned.data == {"queue": "province-general", "hold_time": 12.0}


async def test_a_timeout_before_the_offer_is_no_abandon():
    tracker, facts = tracker_with_facts()
    await tracker.handle(_event("Newchannel"))
    await tracker.handle(_event("QueueCallerJoin", Queue="province-general", Position="1"))
    await tracker.handle(_event("QueueCallerAbandon", Queue="province-general", HoldTime="30"))
    await tracker.handle(_event("VarSet", Variable="HOTLINE_NOBODY", Value="TIMEOUT"))
    await tracker.handle(_event("Hangup", Cause="16"))
    assert "abandoned" not in [f.kind for f in facts]
