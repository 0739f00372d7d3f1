"""Finished recordings found in one scan of the spool are stored together: their cases read in
one statement, the files sealed in one worker thread, their rows in one transaction; one that
cannot be stored (its folder unwritable) or has no case yet costs the others nothing."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import event, select

from asr.models import Recording, Transcript
from asr.service import Transcripts
from cases.db import make_engine, migrate, sessionmaker
from cases.store import CaseStore
from common.facts import CallFact
from common.privacy import PersonalData

pytestmark = pytest.mark.asterisk  # the lab's configuration


def _wav(path: Path, seconds: float = 1.0) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * int(8000 * seconds))


async def test_a_scans_recordings_are_stored_together_and_a_failing_one_costs_no_other(
        services, tmp_path):
    url = await services.database("postgresql")
    base = services.lab.cfg
    cfg = services.config(url, asr=base.asr.model_copy(update={"enabled": False}),
                          recording=base.recording.model_copy(update={"dir": tmp_path / "rec"}))
    engine = make_engine(url)
    await migrate(engine)
    sessions = sessionmaker(engine)
    redis = Redis.from_url(cfg.redis.url, decode_responses=True)
    node = cfg.nodes[0].id
    spool = tmp_path / "spool"
    spool.mkdir()
    store = CaseStore(sessions, PersonalData(cfg.data_key))
    t0 = time.time()
    numbers = []
    for i in range(4):
        ref = await store.apply(CallFact("arrived", f"{node}:lk{i}.1", node, t0, {}, "live"))
        numbers.append(ref.number)
    stems = [f"lk{i}.1-{int(t0)}" for i in range(5)]  # the fifth call has no case (yet)
    for stem in stems:
        for name in (f"{stem}.wav", f"{stem}-caller.wav", f"{stem}-agent.wav"):
            _wav(spool / name)
    transcripts = Transcripts(cfg, redis, sessions, spools={node: spool})
    # Case 3's folder cannot be made: a file stands where it would be.
    blocked = transcripts.dir / time.strftime("%Y/%m", time.gmtime(t0)) / numbers[3]
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    for stem in stems:
        (spool / f"{stem}.done").touch()

    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        assert await transcripts.scan_spool() == 3
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
        await redis.aclose()
    assert len([s for s in statements if s.startswith("INSERT INTO recordings")]) == 1
    assert len([s for s in statements if s.startswith("SELECT cases.id")]) == 1
    async with sessions() as s:
        rows = (await s.execute(select(Recording.case_id, Recording.side, Recording.part)
                                )).all()
        status = dict((await s.execute(select(Transcript.case_id, Transcript.status))).all())
    by_case: dict[int, set[str]] = {}
    for case_id, side, part in rows:
        assert part == 1
        by_case.setdefault(case_id, set()).add(side)
    assert len(by_case) == 3 and all(v == {"caller", "agent", "mix"} for v in by_case.values())
    assert sorted(status.values()) == ["failed", "pending", "pending", "pending"]
    assert "not stored" in (transcripts.store_errors.get(numbers[3]) or "")
    left = sorted(p.name for p in spool.iterdir())
    assert left == sorted([f"{stems[3]}{x}" for x in (".wav", "-caller.wav", "-agent.wav",
                                                       ".done")]
                          + [f"{stems[4]}{x}" for x in (".wav", "-caller.wav", "-agent.wav",
                                                         ".done")])
    await engine.dispose()
