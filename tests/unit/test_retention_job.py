"""The retention job runs each feature's purger in the order the composition root gives and adds
up their reports; its worker runs it at start and stops cleanly; the root puts the personal
fields of old cases first (they take the case's recordings and transcript along)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from agent_desk.intake.retention import IntakeCaseEraser
from agent_desk.retention import DeskCaseEraser
from asr.retention import AsrCaseEraser, RecordingsPurger, TranscriptsPurger
from cases.db import make_engine, sessionmaker
from cases.loop.retention import LoopCaseEraser
from cases.retention import CasePersonalPurger
from common.retention import PurgeReport, RetentionJob, RetentionWorker
from hotline.privacy import retention_job
from lab.harness import lab_config
from telephony.calls.retention import CelPurger


class Counting:
    """A purger that reports what it is told to and remembers its calls."""

    def __init__(self, name: str, calls: list[tuple[str, datetime, bool]],
                 report: PurgeReport, ran: asyncio.Event | None = None):
        self.name, self.calls, self.report, self.ran = name, calls, report, ran

    async def purge(self, now: datetime, *, dry_run: bool) -> PurgeReport:
        self.calls.append((self.name, now, dry_run))
        if self.ran is not None:
            self.ran.set()
        return PurgeReport(**{**self.report.as_dict(), "dry_run": dry_run})


async def test_job_runs_purgers_in_order_and_adds_their_reports():
    calls: list[tuple[str, datetime, bool]] = []
    job = RetentionJob([Counting("cases", calls, PurgeReport(cases=2, recordings=1)),
                        Counting("asr", calls, PurgeReport(recordings=3, transcripts=1,
                                                           segments=7)),
                        Counting("cel", calls, PurgeReport(cel_rows=5))])
    now = datetime(2026, 1, 2, tzinfo=UTC)
    report = await job.run(now, dry_run=True)
    assert calls == [("cases", now, True), ("asr", now, True), ("cel", now, True)]
    assert report == PurgeReport(recordings=4, transcripts=1, segments=7, cases=2, cel_rows=5,
                                 dry_run=True)
    assert job.runs == 1 and job.last == report


async def test_worker_runs_the_job_at_start_and_stops():
    ran = asyncio.Event()
    calls: list[tuple[str, datetime, bool]] = []
    worker = RetentionWorker(RetentionJob([Counting("one", calls, PurgeReport(), ran)]),
                             interval_s=3600)
    await worker.start()
    await asyncio.wait_for(ran.wait(), 10)
    await worker.stop()
    assert [(name, dry) for name, _, dry in calls] == [("one", False)]


async def test_root_wires_personal_fields_first_and_cel_last(tmp_path: Path):
    cfg = lab_config(tmp_path / "lab")
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    try:
        sessions = sessionmaker(engine)

        class NoCheckpoints:
            async def get_checkpoint(self, node: str) -> int:
                return 0

        job = retention_job(cfg, sessions, NoCheckpoints())
        kinds = [type(p) for p in job.purgers]
        assert kinds == [CasePersonalPurger, RecordingsPurger, TranscriptsPurger, CelPurger]
        personal = job.purgers[0]
        assert isinstance(personal, CasePersonalPurger)
        assert [type(e) for e in personal.erasers] == [AsrCaseEraser, DeskCaseEraser,
                                                       IntakeCaseEraser, LoopCaseEraser]
        cel = job.purgers[3]
        assert isinstance(cel, CelPurger)
        # The CEL file Asterisk writes (res_cdrel_custom: <astlogdir>/cel.db).
        assert {n: p.name for n, p in cel.cel_paths.items()} == {
            n.id: "cel.db" for n in cfg.nodes}
    finally:
        await engine.dispose()
