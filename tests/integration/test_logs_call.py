"""The case on every log line about a call: a real call through Asterisk with the service's
logs captured as JSON; every line that mentions the call (its id, linkedid or a channel) names
its call id and case number, and no line holds the caller's number in clear. The context is
set per event, request and job (common/logs.py call_scope) and never leaks to other lines."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from common import events as ev
from common.logs import JsonFormatter, call_context, call_scope, note_case
from telephony.calls.tracker import CallTracker
from tests.support.calls import answered_call
from tests.support.waiting import eventually

CALLER = "13912340077"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured():
    root = logging.getLogger()
    cap, level = Capture(), root.level
    root.addHandler(cap)
    root.setLevel(logging.DEBUG)
    yield cap
    root.removeHandler(cap)
    root.setLevel(level)


# -- the mechanism, as pure logic ---------------------------------------------------------------

def test_scope_sets_and_restores_and_tasks_inherit(captured):
    log = logging.getLogger("hotline.test")
    with call_scope("node1:1.1", None):
        log.info("before the case")
        note_case("node1:1.1", "20261201000007")
        note_case("node1:9.9", "nope")  # another call's number never lands here
        log.info("with the case", extra={"caller": CALLER})
        with call_scope("node1:2.2", "20261201000008"):
            log.info("the other call")
        log.info("back")
    log.info("after")
    docs = [json.loads(x) for x in captured.lines]
    assert [(d["call_id"], d["case"]) for d in docs[:4]] == [
        ("node1:1.1", None), ("node1:1.1", "20261201000007"),
        ("node1:2.2", "20261201000008"), ("node1:1.1", "20261201000007")]
    assert "call_id" not in docs[4] and "case" not in docs[4]
    assert CALLER not in "".join(captured.lines) and docs[1]["caller"] == "139****0077"
    assert call_context.get() is None


class _Ref:
    def __init__(self, number: str) -> None:
        self.number = number


def _chan(uid: str, linked: str, name: str, context: str = "from-carrier") -> ev.Channel:
    return ev.Channel(name=name, uniqueid=uid, linkedid=linked, caller_num=CALLER,
                      context=context, exten="12345")


async def test_tracker_lines_name_the_call_and_nothing_leaks_to_the_next_event(captured):
    log = logging.getLogger("cases.test")
    numbers = {"n:a.1": "20261201000001", "n:b.1": "20261201000002"}

    async def store(fact):  # stands for the case store: answers with the case
        log.info("fact stored", extra={"fact": fact.kind})
        return _Ref(numbers[fact.call_id])

    tracker = CallTracker("n", [store])
    a = _chan("a.1", "a.1", "PJSIP/trunk-nanjing-0001")
    b = _chan("b.1", "b.1", "PJSIP/trunk-nanjing-0002")
    await tracker.handle(ev.Newchannel("n", channel=a))
    await tracker.handle(ev.Newchannel("n", channel=b))
    await tracker.handle(ev.VarSet("n", channel=a, variable="HOTLINE_KEY", value="1"))
    await tracker.handle(ev.Newchannel("n", channel=_chan("c.1", "c.1", "Local/x", "other")))
    log.info("not about a call")
    await tracker.handle(ev.Hangup("n", channel=b, cause=16))
    await asyncio.sleep(0)
    docs = [json.loads(x) for x in captured.lines]
    about = [d for d in docs if d["msg"] != "not about a call"]
    assert about and all(d["case"] == numbers[d["call_id"]] for d in about
                         if d["msg"] != "fact stored" or d.get("fact") != "arrived"), about
    assert {d["call_id"] for d in about} == set(numbers)
    assert [d["call_id"] for d in about if d["msg"] == "call ended"] == ["n:b.1"]
    other = next(d for d in docs if d["msg"] == "not about a call")
    assert "call_id" not in other
    assert CALLER not in "".join(captured.lines)
    assert call_context.get() is None


# -- a real call --------------------------------------------------------------------------------

@pytest.mark.asterisk
async def test_every_line_about_a_real_call_names_its_case(lab, phones, services, sounds,
                                                           tmp_path, captured):
    service = await services.start()
    await answered_call(lab, phones, sounds, caller=CALLER, name="赵六", talk_s=1.5,
                        tmp=tmp_path)
    await service.drain()

    async def ended():
        cases = await service.store.recent(5)
        return next((c for c in cases if c.call_state == "ended"), None)

    case = await eventually(ended, what="the case to end")

    async def end_logged():  # the tracker logs "call ended" as it hands on the last fact
        return any(d["msg"] == "call ended" and d.get("call_id") == case.call_id
                   for d in map(json.loads, list(captured.lines)))
    await eventually(end_logged, what="the tracker's 'call ended' line")
    marks = {case.call_id, case.call_id.split(":", 1)[1],
             *(leg.channel for leg in case.legs if leg.channel)}
    # The service's lines (the test's SIP parties are not the service).
    lines = [x for x in captured.lines
             if not json.loads(x)["logger"].startswith(("agent_desk.softphone.phones", "tests"))]
    about = [json.loads(x) for x in lines if any(m in x for m in marks)]
    assert len(about) >= 4, lines  # arrived, facts, ended... at least
    for doc in about:
        assert doc.get("call_id") == case.call_id, doc
        # The first fact is seen before its case is written (in the background): the case
        # number is on every line from the store's "call arrived" on.
        if doc["msg"] == "call fact" and doc.get("fact") == "arrived":
            continue
        assert doc.get("case") == case.number, doc
    assert {"call arrived", "call ended"} <= {d["msg"] for d in about}
    assert not [x for x in lines if CALLER in x]
