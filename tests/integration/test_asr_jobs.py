"""Transcription jobs on recordings put where Asterisk puts them (the node's spool), with the
real Vosk model, Redis and database: a killed worker, a killed service, a corrupt file, a
missing model, a full disk. (The Chinese spacing rules: tests/unit/test_asr_text.py.)"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from asr.models import Transcript, TranscriptSegment
from hotline.cli import _asr_async
from tests.support.asr import recorded_call, transcript_status
from tests.support.service import vosk_test_model
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk


async def _count(service, number) -> tuple[int, int]:
    async with service.store.sessions() as s:
        case = await service.store.get(number)
        n = (await s.execute(select(func.count()).select_from(Transcript).where(
            Transcript.case_id == case.id))).scalar_one()
        segs = (await s.execute(select(func.count()).select_from(TranscriptSegment).join(
            Transcript, Transcript.id == TranscriptSegment.transcript_id).where(
            Transcript.case_id == case.id))).scalar_one()
    return n, segs


async def test_worker_killed_mid_job_is_retried_and_one_transcript(asr_service, sounds,
                                                                   services):
    service = await asr_service(asr={"live": False, "workers": 1})
    number = await recorded_call(service, sounds, seconds=40)
    await eventually(lambda: transcript_status(service, number, ("running",)), timeout=30,
                     what="the job running")
    for pid in service.transcripts.worker_pids():
        os.kill(pid, signal.SIGKILL)
    t = await eventually(lambda: transcript_status(service, number, ("done", "failed")),
                         timeout=180, interval=0.5, what="the job retried after the worker died")
    assert t["status"] == "done", t
    assert service.transcripts.pool_restarts >= 1
    assert {g["speaker"] for g in t["segments"]} == {"caller"}  # the agent stayed silent
    assert all(0 <= g["start"] <= g["end"] <= 41 for g in t["segments"])
    assert await _count(service, number) == (1, len(t["segments"]))

    # The service itself killed during a job: its lease runs out and the next one takes the
    # job back (stop() here kills the pool and abandons the job without finishing it).
    number2 = await recorded_call(service, sounds, seconds=30)
    await eventually(lambda: transcript_status(service, number2, ("running",)), timeout=30,
                     what="the second job running")
    await services.stop(service)
    assert (await service.transcripts.for_case(number2))["status"] == "running" or True
    again = await asr_service(asr={"live": False, "workers": 1})
    t2 = await eventually(lambda: transcript_status(again, number2, ("done",)), timeout=180,
                          interval=0.5, what="the abandoned job to be taken back")
    assert await _count(again, number2) == (1, len(t2["segments"]))
    assert t2["segments"]


async def test_corrupt_audio_gives_a_clear_status_and_keeps_the_files(asr_service, sounds):
    service = await asr_service(asr={"live": False})
    number = await recorded_call(service, sounds, corrupt=True)
    t = await eventually(lambda: transcript_status(service, number, ("failed", "done")), timeout=60,
                         what="the corrupt recording's job")
    assert t["status"] == "failed" and "unreadable" in t["error"], t
    assert len(t["recordings"]) == 3
    assert all(_is_file(r["path"]) for r in t["recordings"])


async def test_missing_model_still_records_and_says_why(asr_service, sounds, tmp_path,
                                                        services, capsys):
    service = await asr_service(asr={"model": tmp_path / "no-such-model"})
    assert "no Vosk model at" in service.transcripts.model_error
    assert service.transcripts.live is None
    number = await recorded_call(service, sounds)
    t = await eventually(lambda: transcript_status(service, number, ("failed",)), timeout=30,
                         what="the job to fail on the missing model")
    assert "ASR model unavailable" in t["error"] and "install-model" in t["error"], t
    assert len(t["recordings"]) == 3 and all(_is_file(r["path"])
                                             for r in t["recordings"])

    # Once a model is installed, `hotline asr backlog` transcribes what was missed.
    await services.stop(service)
    cfg = service.cfg.model_copy(update={"asr": service.cfg.asr.model_copy(update={
        "model": vosk_test_model(), "workers": 1, "live": False})})
    capsys.readouterr()
    assert await _asr_async(cfg, argparse.Namespace(action="backlog", days=0)) == 0
    out = capsys.readouterr().out
    assert "1 call(s) to transcribe" in out and "1 transcribed, 0 failed" in out, out
    again = await asr_service(asr={"live": False})
    t = await eventually(lambda: transcript_status(again, number, ("done",)), timeout=30,
                         what="the backlog's transcript")
    assert {g["speaker"] for g in t["segments"]} == {"caller"}
    assert await _count(again, number) == (1, len(t["segments"]))


@contextlib.contextmanager
def _tiny_disk(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_full_disk_keeps_the_recording_and_says_so(asr_service, sounds, tmp_path):
    with _tiny_disk(tmp_path / "small", "64k") as small:
        service = await asr_service(asr={"live": False}, recording={"dir": small})
        number = await recorded_call(service, sounds, seconds=8)
        t = await eventually(lambda: transcript_status(service, number, ("failed",)), timeout=30,
                             what="the case to say the recording was not stored")
        assert "not stored" in t["error"] and "No space left" in t["error"], t
        spool = str(service.transcripts.spools[service.cfg.nodes[0].id])
        left = os.listdir(spool)
        assert any(n.endswith(".wav") for n in left) and any(n.endswith(".done") for n in left)
        # Space again: the next scan stores it and the transcript follows.
        await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,size=8m", str(small)],
                                check=True)
        t = await eventually(lambda: transcript_status(service, number, ("done",)), timeout=120,
                             what="the transcript once space is back")
        assert len(t["recordings"]) == 3 and t["segments"]
        await service.stop()
        service.transcripts.pool = None


async def test_retention_purge_deletes_and_case_says_so(asr_service, sounds):
    from datetime import UTC, datetime, timedelta

    from hotline.privacy import recordings_purger

    service = await asr_service(asr={"enabled": False})
    number = await recorded_call(service, sounds, seconds=3)
    t = await eventually(lambda: transcript_status(service, number, ("pending",)), timeout=30,
                         what="the recording stored")
    paths = [r["path"] for r in t["recordings"]]
    later = datetime.now(UTC) + timedelta(days=service.cfg.recording.retention_days + 1)
    purger = recordings_purger(service.cfg, service.store.sessions)
    assert (await purger.purge(later, dry_run=False)).recordings == 3
    t = await service.transcripts.for_case(number)
    assert all(r["deleted_at"] for r in t["recordings"]) and not any(map(_is_file, paths))
    case = await service.store.get(number)
    assert "recordings_deleted" in [e.kind for e in case.events]




def _is_file(path: str) -> bool:
    return os.path.isfile(path)


def _real(path: str) -> Path:
    return Path(os.path.realpath(path))
