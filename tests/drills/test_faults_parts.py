"""The parts the fault drills (tests/drills/test_faults.py) rely on, each on its own and quickly: an
AgentComplete without the caller's channel, WAV sizes repaired after a killed writer, jobs Redis
lost queued again from the database, a recording Asterisk never marked done, and a Redis that
lost its data noticed and rebuilt."""

from __future__ import annotations

import asyncio
import struct
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from asr.models import Transcript
from asr.service import _repair_wav
from cases.store import database_unavailable
from common import events as ev
from common.facts import CallFact
from common.livekeys import LiveKeys
from tests.support.asr import recorded_call, speech_samples, transcript_status, write_wav
from tests.support.tracking import tracker_with_facts
from tests.support.waiting import eventually


def test_agent_complete_without_the_callers_channel_still_names_the_call():
    # As Asterisk sends it when the caller's channel was gone before the event was built.
    fields = {"Event": "AgentComplete", "Queue": "nanjing-general", "Interface": "PJSIP/1001",
              "MemberName": "1001", "HoldTime": "2", "TalkTime": "7", "Reason": "caller",
              "DestChannel": "PJSIP/1001-0000002a", "DestUniqueid": "node1-1700000000.12",
              "DestLinkedid": "node1-1700000000.10"}
    e = ev.parse_event("node1", fields)
    assert isinstance(e, ev.AgentComplete), e
    assert e.channel.linkedid == "node1-1700000000.10"
    assert e.reason == "caller" and e.talk_time == 7


async def test_agent_complete_without_any_channel_is_matched_by_its_agent():
    tracker, facts = tracker_with_facts()
    caller = ev.Channel("PJSIP/trunk-nanjing-00000001", "node1-1.10", "node1-1.10",
                        context="from-carrier", exten="12345")
    agent = ev.Channel("PJSIP/1001-00000002", "node1-1.11", "node1-1.10")
    await tracker.handle(ev.Newchannel("node1", channel=caller))
    await tracker.handle(ev.AgentConnect("node1", channel=caller, agent_channel=agent,
                                         queue="nanjing-general", member_name="1001",
                                         interface="PJSIP/1001"))
    e = ev.parse_event("node1", {"Event": "AgentComplete", "Queue": "nanjing-general",
                                 "Interface": "PJSIP/1001", "MemberName": "1001",
                                 "HoldTime": "1", "TalkTime": "5", "Reason": "caller"})
    assert isinstance(e, ev.AgentComplete), e
    await tracker.handle(e)
    done = [f for f in facts if f.kind == "completed"]
    assert len(done) == 1 and done[0].call_id == "node1:node1-1.10"
    assert done[0].data["reason"] == "caller"


def test_a_postgresql_starting_up_is_waited_for_not_a_lost_fact():
    class Orig(Exception):
        def __init__(self, sqlstate):
            super().__init__("the database system is not yet accepting connections")
            self.sqlstate = sqlstate

    # What asyncpg raises between "pg_ctl start" and the end of recovery.
    assert database_unavailable(DBAPIError("SELECT 1", {}, Orig("57P03")))
    assert database_unavailable(DBAPIError("SELECT 1", {}, Orig("57P01")))  # admin shutdown
    assert database_unavailable(DBAPIError("SELECT 1", {}, Orig("08006")))
    assert not database_unavailable(DBAPIError("INSERT", {}, Orig("23505")))  # a real error
    assert not database_unavailable(DBAPIError("INSERT", {}, Orig(None)))


def test_wav_sizes_repaired_from_the_file_length(tmp_path):
    path = tmp_path / "cut.wav"
    samples = (np.sin(np.arange(8000) / 5) * 8000).astype("<i2")
    write_wav(path, samples)
    raw = bytearray(path.read_bytes())
    raw[4:8] = struct.pack("<I", 36)   # as a writer killed before closing leaves them
    raw[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(raw))
    with wave.open(str(path)) as w:
        assert w.getnframes() == 0
    assert _repair_wav(path) is True
    with wave.open(str(path)) as w:
        assert w.getnframes() == 8000
    assert _repair_wav(path) is False  # already right
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav at all")
    assert _repair_wav(junk) is False



@pytest.mark.asterisk
async def test_jobs_redis_lost_are_queued_again_from_the_database(asr_service, sounds):
    service = await asr_service(asr={"live": False, "workers": 1})
    number = await recorded_call(service, sounds, seconds=4)
    await eventually(lambda: transcript_status(service, number, ("done",)), timeout=120,
                     what="the first transcript")
    # What a Redis restarted empty leaves: the database says pending, Redis has no job.
    async with service.store.sessions() as s, s.begin():
        t = (await s.execute(select(Transcript))).scalars().one()
        t.status = "pending"
    assert not await service.transcripts.queue.is_queued(number)
    assert await service.transcripts.requeue() == [number]
    assert await service.transcripts.requeue() == []  # queued once, not twice
    await eventually(lambda: transcript_status(service, number, ("done",)), timeout=120,
                     what="the requeued transcript")


@pytest.mark.asterisk
async def test_recording_cut_by_a_killed_asterisk_is_stored_and_transcribed(asr_service,
                                                                            sounds):
    service = await asr_service(asr={"live": False, "workers": 1})
    service.transcripts.cut_after_s = 1.0
    node = service.cfg.nodes[0].id
    linkedid = f"{time.time():.6f}"
    call_id = f"{node}:{linkedid}"
    now = time.time()
    await service.store.apply(CallFact("arrived", call_id, node, now - 6, {
        "caller": "13812345678", "dialed": "12345", "uniqueid": linkedid,
        "channel": "PJSIP/x-1"}))
    await service.store.apply(CallFact("answered", call_id, node, now - 5, {
        "agent": "1001", "uniqueid": "agent-leg", "channel": "PJSIP/1001-1"}))
    stem = service.transcripts.spools[node] / f"{linkedid}-{int(now)}"
    await asyncio.to_thread(_cut_files, sounds, stem)
    await asyncio.sleep(2)
    assert not await asyncio.to_thread(Path(f"{stem}.done").exists)  # call not over: left
    await service.store.apply(CallFact("orphaned", call_id, node, now, {
        "reason": "not in Asterisk after reconnect"}, source="resync"))
    case = await service.store.by_call(call_id)
    t = await eventually(lambda: transcript_status(service, case.number, ("done", "failed")),
                         timeout=120, what="the cut recording transcribed")
    assert t["status"] == "done", t
    assert {r["side"] for r in t["recordings"]} == {"caller", "agent", "mix"}
    assert t["segments"], "the repaired recording has its audio"


@pytest.mark.asterisk
async def test_redis_that_lost_its_data_is_noticed_and_rebuilt(lab, services):
    service = await services.start()
    prefix = service.cfg.redis.prefix
    r = service.redis
    await service.presence.sign_out("2001", by="test")
    try:
        assert await service.check_redis() == "ok"
        before = await r.hgetall(LiveKeys(prefix).agent_queues("1001"))
        assert before
        # Redis restarted without persistence, as far as this prefix can tell.
        keys = [k async for k in r.scan_iter(f"{prefix}:*")]
        await r.delete(*keys)
        assert await service.check_redis() == "rebuilt"
        assert service.redis_losses == 1
        assert await r.hget(f"{prefix}:signed_in", "2001") == "0"
        await eventually(lambda: _same(r, LiveKeys(prefix).agent_queues("1001"), before),
                         what="agent 1001's queues back from Asterisk")
        assert await service.check_redis() == "ok"
    finally:
        await service.presence.sign_in("2001", by="test")


def _cut_files(sounds, stem: Path) -> None:
    """A recording as a killed Asterisk leaves it: no .done, data sizes never written."""
    caller = speech_samples(sounds, 4)
    for side, audio in (("-caller", caller), ("-agent", np.zeros_like(caller)), ("", caller)):
        path = Path(f"{stem}{side}.wav")
        write_wav(path, audio)
        raw = bytearray(path.read_bytes())
        raw[40:44] = b"\0\0\0\0"
        path.write_bytes(bytes(raw))


async def _same(r, key, want):
    return await r.hgetall(key) == want
