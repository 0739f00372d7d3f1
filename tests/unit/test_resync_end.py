"""A call up at a reconnect ends with ``resynced`` on its end, so the case waits for CEL's
word (events of the reconnect's gap may be lost for good); a call heard live from its start
does not."""

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
