"""Case records on both databases: the same facts learnt from several sources (live, resync,
CEL) make one case with one timeline."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from cases.db import make_engine, migrate, sessionmaker
from cases.models import Case
from cases.store import CaseStore
from common.facts import CallFact
from common.privacy import PersonalData
from tests.support.servers import make_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path, pg_admin):
    drop = None
    if request.param == "postgresql":
        url, drop = await make_pg_database(pg_admin)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    engine = make_engine(url)
    await migrate(engine)
    await migrate(engine)  # a second start finds the schema up to date
    yield CaseStore(sessionmaker(engine), PersonalData("unit-test-data-key"))
    await engine.dispose()
    if drop:
        await drop()


def story(call_id: str, source: str, t0: float) -> list[CallFact]:
    def f(kind, dt, **data):
        return CallFact(kind, call_id, "node1", t0 + dt, data, source)

    return [
        f("arrived", 0, caller="13812345678", caller_name="李四", dialed="12345",
          trunk="nanjing", uniqueid="node1-1.1", channel="PJSIP/trunk-nanjing-1"),
        f("queued", 5, queue="nanjing-general"),
        f("ringing", 6, agent="1001", uniqueid="node1-1.2", channel="PJSIP/1001-2"),
        f("answered", 7, agent="1001", uniqueid="node1-1.2", channel="PJSIP/1001-2",
          hold_time=2.0, queue="nanjing-general"),
        f("completed", 67, talk_time=60.0, reason="agent"),
        f("ended", 67.2, cause=16, hangup_by="agent"),
    ]


async def test_same_facts_from_two_sources_make_one_timeline(store):
    t0 = time.time() - 100
    for fact in story("node1:node1-1.1", "live", t0):
        await store.apply(fact)
    for fact in story("node1:node1-1.1", "cel", t0 + 0.4):  # CEL's clock differs a little
        await store.apply(fact)
    case = await store.by_call("node1:node1-1.1")
    assert case is not None
    assert [e.kind for e in case.events] == ["arrived", "queued", "ringing", "answered",
                                             "completed", "ended"]
    assert {e.source for e in case.events} == {"live"}
    assert case.wait_seconds == 2.0 and case.talk_seconds == 60.0
    assert case.hangup_by == "agent" and case.outcome == "answered"
    assert len(case.legs) == 2
    assert store.facts_duplicate == 6
    assert await store.count() == 1


async def test_case_numbers_are_daily_sequences(store):
    t0 = time.time()
    numbers = []
    for i in range(3):
        ref = await store.apply(CallFact("arrived", f"node1:x.{i}", "node1", t0, {}, "live"))
        numbers.append(ref.number)
    assert len(set(numbers)) == 3
    assert [int(n[-6:]) for n in numbers] == [1, 2, 3]


async def test_ended_without_answer_is_abandoned_or_dropped(store):
    t0 = time.time()
    await store.apply(CallFact("arrived", "node1:a", "node1", t0, {}, "live"))
    await store.apply(CallFact("queued", "node1:a", "node1", t0 + 1, {"queue": "q"}, "live"))
    await store.apply(CallFact("ended", "node1:a", "node1", t0 + 9, {"cause": 16}, "live"))
    await store.apply(CallFact("arrived", "node1:b", "node1", t0, {}, "live"))
    await store.apply(CallFact("ended", "node1:b", "node1", t0 + 3, {"cause": 16}, "live"))
    a = await store.by_call("node1:a")
    b = await store.by_call("node1:b")
    assert a.outcome == "abandoned" and a.wait_seconds == 8.0
    assert b.outcome == "dropped"
    assert await store.calls_needing_cel(["node1:a", "node1:zzz"]) == {"node1:zzz"}


async def test_agent_complete_after_the_callers_hangup_says_who_hung_up(store):
    # Under load Asterisk can report the caller's Hangup before AgentComplete: the end of
    # the call guesses, AgentComplete's reason (live) then has the last word.
    t0 = time.time() - 100
    facts = story("node1:late.1", "live", t0)
    completed, ended = facts[-2], facts[-1]
    ended = CallFact("ended", ended.call_id, "node1", ended.at, {"cause": 16,
                                                                "hangup_by": "caller"}, "live")
    for fact in [*facts[:-2], ended, completed]:
        await store.apply(fact)
    case = await store.by_call("node1:late.1")
    assert case is not None and case.hangup_by == "agent"
    # A source that only derives it (CEL) never overrides what is there.
    await store.apply(CallFact("completed", "node1:late.1", "node1", t0 + 68,
                               {"talk_time": 60.0, "reason": "caller"}, "cel"))
    case = await store.by_call("node1:late.1")
    assert case is not None and case.hangup_by == "agent"


async def test_a_call_up_across_a_reconnect_waits_for_cels_word_on_its_end(store):
    """Answered in a reconnect's gap (no event, snapshot and CEL not yet showing it) and ended
    live: the live end can only infer "dropped"; CEL's later reading of the whole call puts the
    answer and the agent on the case, and only then is the call done for the CEL pass."""
    t0 = time.time() - 100
    cid = "node1:node1-1.1"
    cel = story(cid, "cel", t0 + 0.3)
    await store.apply(CallFact("arrived", cid, "node1", t0, cel[0].data, "resync"))
    await store.apply(CallFact("ended", cid, "node1", t0 + 67.2,
                               {"cause": 16, "hangup_by": "caller", "resynced": True}, "live"))
    case = await store.by_call(cid)
    assert case is not None and case.outcome == "dropped" and case.cel_pending
    assert await store.calls_needing_cel([cid]) == {cid}

    for fact in cel:
        await store.apply(fact)
    case = await store.by_call(cid)
    assert case is not None and not case.cel_pending
    assert (case.outcome, case.agent_id, case.hangup_by) == ("answered", "1001", "agent")
    assert case.wait_seconds == 2.0 and case.talk_seconds == 60.0
    assert await store.calls_needing_cel([cid]) == set()


async def test_a_call_not_up_at_a_reconnect_is_done_with_its_live_end(store):
    t0 = time.time() - 100
    cid = "node1:node1-2.1"
    for fact in story(cid, "live", t0):
        await store.apply(fact)
    assert await store.calls_needing_cel([cid]) == set()


async def test_a_case_too_young_at_a_resync_is_closed_by_a_second_look(store):
    """Asterisk killed a moment after a call arrived (its CEL rows lost with it): at the
    resync the case is too young to call stale (its call might just be missing from the
    snapshot); the second look, once it is old enough, closes it honestly."""
    from datetime import timedelta

    from common import events as ev
    from telephony.calls.reconcile import Reconnect
    from tests.support.waiting import eventually

    class NoCel:  # nothing in CEL for it: the rows went with the killed Asterisk
        async def sweep(self, live=None):
            return 0

        async def backfill(self, linkedids):
            return None

    async def nothing_up():
        return set()

    await store.apply(CallFact("arrived", "node1:young.1", "node1", time.time(), {}, "live"))
    reconnect = Reconnect("node1", NoCel(), store, live_ids=nothing_up)
    reconnect.STALE_AFTER = timedelta(seconds=1)
    snap = ev.Snapshot(channels=[], entries=[], members=[])
    await reconnect.on_resync(ev.Connected("node1", snapshot=snap, reconnect=True), set(), set())
    case = await store.by_call("node1:young.1")
    assert case is not None and case.call_state == "active"  # too young at the first look

    async def closed():
        c = await store.by_call("node1:young.1")
        return c if c is not None and c.call_state == "ended" else None

    case = await eventually(closed, 15, what="the second look to close the case")
    assert "end_unknown" in case.flags and case.outcome == "unknown"
    await reconnect.stop()


async def test_facts_of_many_calls_are_written_together_and_a_bad_one_costs_no_other(store):
    """Group commit: the facts of 40 calls submitted at once go to the database in a few
    transactions, each call's in order; a fact that cannot be applied (a ringing with no
    channel id) fails its own call's write, not the others'."""
    t0 = time.time() - 100
    calls = [f"node1:g{i}.1" for i in range(40)]
    for call_id in calls:
        for fact in story(call_id, "live", t0):
            await store.submit(fact)
    bad = CallFact("ringing", "node1:bad.1", "node1", t0, {"agent": "1001"}, "live")
    failing = asyncio.ensure_future(store.apply(bad))
    await store.drain()
    with pytest.raises(KeyError):
        await failing
    assert store.groups_written < 10, store.groups_written
    numbers = set()
    for call_id in calls:
        case = await store.by_call(call_id)
        assert case is not None
        assert [e.kind for e in case.events] == ["arrived", "queued", "ringing", "answered",
                                                 "completed", "ended"]
        assert len(case.legs) == 2 and case.outcome == "answered" and case.talk_seconds == 60.0
        numbers.add(case.number)
    assert len(numbers) == 40
    assert await store.by_call("node1:bad.1") is None


async def test_a_calls_next_facts_read_nothing_back_and_a_failed_write_reads_again(store):
    """The store holds a call's case, fact keys and legs between its writes (it is their only
    writer): a call's later facts are written without reading them again, only the columns
    they change are written (the case loop's closed_at stays), and a write that fails drops
    what was held, so the call is read again from the database."""
    engine = store.sessions.kw["bind"]
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    t0 = time.time() - 100
    facts = story("node1:held.1", "live", t0)
    await store.apply(facts[0])
    async with store.sessions() as s, s.begin():  # another writer's column
        case = (await s.execute(select(Case).where(Case.call_id == "node1:held.1"))).scalar_one()
        case.closed_at = datetime.now(UTC)
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        for fact in facts[1:4]:
            await store.apply(fact)
        reads = [s for s in statements if s.startswith("SELECT")]
        assert reads == [], reads
        updates = [s for s in statements if s.startswith("UPDATE cases")]
        assert updates and all("closed_at" not in s for s in updates), updates
        statements.clear()
        bad = CallFact("ringing", "node1:held.1", "node1", t0 + 6.5, {"agent": "1002"}, "live")
        with pytest.raises(KeyError):
            await store.apply(bad)  # no channel id: the write fails
        for fact in facts[4:]:
            await store.apply(fact)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert any(s.startswith("SELECT") and "FROM cases" in s for s in statements), statements
    case = await store.by_call("node1:held.1")
    assert case is not None and case.closed_at is not None
    assert [e.kind for e in case.events] == ["arrived", "queued", "ringing", "answered",
                                             "completed", "ended"]
    assert case.outcome == "answered" and case.talk_seconds == 60.0 and len(case.legs) == 2
    assert case.wait_seconds == 2.0 and case.hangup_by == "agent"
