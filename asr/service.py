"""Recordings and transcripts of calls, on the case record (``service.transcripts``).

- Asterisk records: the queue starts MixMonitor on the caller's channel when an agent answers
  (each side in its own file; the caller's channel carries it through consultations, the
  conference and three-way transfers) into the node's spool, and marks the end with a
  ``.done`` file. The spool watcher seals finished recordings into ``[recording] dir`` named
  by case (``<case>-<part>-<side>.wav.enc``: a random key per file wrapped by the data key,
  AES-256-GCM in chunks, common/sealed.py), removes the clear files from the spool, links them
  on the case and queues a transcription job. Both directories are 0700. Transcription reads
  the audio decrypted in memory; the console plays it back decrypted (never a clear file).
- Jobs live in Redis (asr/jobs.py) and run in a pool of processes sized to the cores, each
  with one shared Vosk model; the case's transcript status is pending -> running -> done or
  failed (with the error), retried a bounded number of times. The database is the record:
  jobs Redis lost are queued again from it (``requeue``, at start, after Redis comes back,
  and every minute).
- A recording whose Asterisk was killed never gets its ``.done`` mark: once its call has
  ended, its WAV sizes are repaired and it is taken like any other.
- Live captions (asr/live.py) while the call runs.
- Retention (asr/retention.py, run by the service's retention worker): recordings older than
  ``[recording] retention_days`` and transcripts older than
  ``[privacy] transcript_retention_days`` are deleted, and the case and the audit log say so.
- What was said is personal data: segments' text is encrypted (common.privacy).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import multiprocessing
import os
import struct
import time
import wave
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from asr import engine
from asr.audio import AudioError
from asr.jobs import JobQueue
from asr.live import LiveCaptions, caption_json
from asr.models import Recording, Transcript, TranscriptSegment
from cases.db import padded
from cases.models import Case
from cases.rows import table_of
from cases.store import database_unavailable
from common import events as ev
from common import sealed
from common.config import Config
from common.db import utcnow
from common.livekeys import LiveKeys
from common.logs import call_scope, note_call_id
from common.metrics import UNSERVED, Metrics
from common.privacy import PersonalData
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SIDES = ("caller", "agent", "mix")
SPEAKERS = ("caller", "agent")

_RECORDINGS = table_of(Recording)
_TRANSCRIPTS = table_of(Transcript)
# A call's case and the files already stored for it (a case recorded before: its parts).
# The cases of a scan's finished recordings and the files they already have.
_CASES_AND_FILES = (
    select(Case.id, Case.call_id, Case.number, Case.created_at, Case.answered_at,
           Recording.part, Recording.url_name)
    .outerjoin(Recording, and_(Recording.case_id == Case.id, Recording.side.in_(SIDES)))
    .where(Case.call_id.in_(bindparam("call_ids", expanding=True))))
_INSERT_RECORDINGS = insert(_RECORDINGS)
_PENDING_AGAIN = (
    update(_TRANSCRIPTS).where(_TRANSCRIPTS.c.case_id.in_(bindparam("ids", expanding=True)))
    .values(status="pending", error=None, updated_at=bindparam("now"))
    .returning(_TRANSCRIPTS.c.case_id))
_INSERT_TRANSCRIPT = insert(_TRANSCRIPTS)


class Transcripts:
    def __init__(self, cfg: Config, redis: Redis, sessions: async_sessionmaker[AsyncSession],
                 *, spools: dict[str, Path], ami_of: Callable[[str], Any] | None = None,
                 case_of: Callable[[str], str | None] | None = None,
                 scan_interval_s: float = 0.5, personal: PersonalData | None = None,
                 metrics: Metrics = UNSERVED):
        self.cfg = cfg
        self._job_time = metrics.transcription
        self.personal = personal or PersonalData(cfg.data_key)
        self.redis = redis
        self.sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self.spools = spools
        self.ami_of = ami_of
        self.case_of = case_of or (lambda _cid: None)
        self.scan_interval_s = scan_interval_s
        self.prefix = cfg.redis.prefix
        self.dir = cfg.data_path(cfg.recording.dir)
        self.model_path = cfg.data_path(cfg.asr.model)
        self.queue = JobQueue(redis, self.prefix, cfg.asr.lease_s)
        self.workers = cfg.asr.workers or os.cpu_count() or 1
        self.model_error: str | None = None
        self.pool: ProcessPoolExecutor | None = None
        self.live: LiveCaptions | None = None
        self.holding: set[str] = set()
        self.store_errors: dict[str, str] = {}
        self.jobs_done = 0
        self.jobs_failed = 0
        self.pool_restarts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._pool_lock = asyncio.Lock()
        # Jobs put back from the database (Redis lost them); checked this often.
        self.requeue_interval_s = 60.0
        self._requeue_wake = asyncio.Event()
        self.jobs_requeued = 0
        # A recording without its .done mark, untouched this long, of a call that has ended,
        # was cut by an Asterisk that died: it is taken as it is.
        self.cut_after_s = 30.0
        self._adopt_due = 0.0
        self._cut_seen: dict[str, float] = {}
        self._quiet: dict[str, float] = {}

    # -- life -----------------------------------------------------------------------------------

    async def start(self, *, work: bool = True) -> None:
        _private_dir(self.dir)
        for spool in self.spools.values():
            spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.cfg.asr.enabled:
            await self._check_model()
        if work:
            sealed_now = await self.seal_clear_recordings()
            if sealed_now:
                log.info("clear recordings sealed", extra={"recordings": sealed_now})
            await self.queue.reclaim()
            if self.cfg.asr.enabled:
                await self.requeue(orphans=True)
            self._tasks.append(asyncio.create_task(self._watch_spool(), name="asr-spool"))
            if self.cfg.asr.enabled:
                self._tasks.append(asyncio.create_task(self._leases(), name="asr-leases"))
                self._tasks.append(asyncio.create_task(self._requeue_loop(),
                                                       name="asr-requeue"))
                for i in range(self.workers):
                    self._tasks.append(asyncio.create_task(self._worker(), name=f"asr-w{i}"))
        if (work and self.cfg.asr.enabled and self.cfg.asr.live and self.model_error is None
                and self.ami_of is not None):
            model = await asyncio.to_thread(engine.load_model, self.model_path)
            self.live = LiveCaptions(model, engine.model_rate(self.model_path), self._caption,
                                     threads=self.workers,
                                     max_streams=self.cfg.asr.live_max_streams)
            await self.live.start(self.cfg.asr.live_bind_host, self.cfg.asr.live_port)
        log.info("recordings and transcripts started", extra={
            "recordings": str(self.dir), "model": str(self.model_path),
            "model_error": self.model_error, "workers": self.workers,
            "live_port": self.live.port if self.live else None})

    async def _check_model(self) -> None:
        """A missing or broken model is said clearly at start; calls are still recorded and
        their transcripts wait (failed, with the reason) for ``hotline asr backlog``."""
        try:
            engine.check_model_dir(self.model_path)
            self.pool = self._new_pool()
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.run_in_executor(self.pool, engine.worker_ping), 120)
            self.model_error = None
        except engine.ModelError as exc:
            self.model_error = str(exc)
        except (BrokenProcessPool, TimeoutError) as exc:
            self.model_error = f"Vosk model at {self.model_path} could not be loaded ({exc!r})"
        if self.model_error:
            log.error("ASR model unavailable: %s — calls are recorded, transcripts wait",
                      self.model_error)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(str(self.model_path), os.getpid()))

    def worker_pids(self) -> list[int]:
        procs = getattr(self.pool, "_processes", None) or {}
        return list(procs)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks, what="transcripts")
        self._tasks.clear()
        if self.live is not None:
            await self.live.stop()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            await asyncio.to_thread(_kill_pool, self.pool)
            self.pool = None

    # -- live captions --------------------------------------------------------------------------

    async def on_event(self, event: ev.DomainEvent) -> None:
        if isinstance(event, ev.AgentConnect) and self.live is not None:
            call_id = f"{event.node}:{event.channel.linkedid}"
            with call_scope(call_id, self.case_of(call_id)):
                try:
                    await self._tap(event)
                except Exception as exc:  # captions are a help, never a reason to fail a call
                    log.warning("live captions not started: %s", exc)

    async def _tap(self, event: ev.AgentConnect) -> None:
        assert self.live is not None and self.ami_of is not None
        if event.agent_channel is None or not self.live.can_take(2):
            return
        call_id = f"{event.node}:{event.channel.linkedid}"
        case = self.case_of(call_id)
        ami = self.ami_of(event.node)
        where = f"{self.cfg.asr.live_asterisk_reaches}:{self.live.port}"
        for speaker, channel in (("caller", event.channel.name),
                                 ("agent", event.agent_channel.name)):
            sid = self.live.expect(call_id, case, speaker)
            await ami.send({"Action": "Originate", "Channel": "Local/tap@hotline-asr-tap/n",
                            "Application": "AudioSocket", "Data": f"{sid},{where}",
                            "Async": "true", "Timeout": 5000,
                            "Variable": f"HOTLINE_SPY={channel}"}, timeout=10)

    async def _caption(self, msg: dict[str, Any]) -> None:
        await self.redis.publish(LiveKeys(self.prefix).captions, caption_json(msg))

    # -- recordings: spool -> recordings dir ----------------------------------------------------

    async def _watch_spool(self) -> None:
        while True:
            try:
                await self.scan_spool()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if database_unavailable(exc):  # the recordings wait in the spool
                    self._warn("spool", "recordings wait for the database",
                               error=type(exc).__name__)
                else:
                    log.exception("recording spool scan failed")
            await asyncio.sleep(self.scan_interval_s)

    async def scan_spool(self) -> int:
        """Move finished recordings (``.done``) to the recordings dir; returns how many."""
        moved = 0
        # Cut recordings are looked for less often than finished ones (a stat of every file
        # being recorded, twice a second, cost more than the moves at 100 calls up).
        adopt = time.monotonic() >= self._adopt_due
        if adopt:
            self._adopt_due = time.monotonic() + self.cut_after_s / 6
        for node, spool in self.spools.items():
            if adopt:
                await self._adopt_cut(node, spool)
            # In a thread: under load a disk stall held the directory's reads, and with them
            # the event loop (the router's answers, the case store's writes).
            markers = await asyncio.to_thread(_done_marks, spool)
            if markers:
                moved += await self._ingest(node, markers)
        return moved

    async def _adopt_cut(self, node: str, spool: Path) -> int:
        """Recordings left without their .done mark (Asterisk killed mid-call): once the
        call's case has ended and the files are untouched for ``cut_after_s``, repair their
        WAV sizes and mark them done, so they are stored and transcribed like the rest."""
        now = time.time()
        stems = await asyncio.to_thread(_unmarked, spool)
        adopted = 0
        for stem, mtime in stems.items():
            if (now - mtime < self.cut_after_s
                    or now - self._cut_seen.get(stem, 0.0) < self.cut_after_s):
                continue
            self._cut_seen[stem] = now
            call_id = f"{node}:{stem.rpartition('-')[0]}"
            async with self.sessions() as s:
                state = (await s.execute(select(Case.call_state).where(
                    Case.call_id == call_id))).scalar_one_or_none()
            if state != "ended":
                continue
            files = [f for f in (spool / f"{stem}.wav", spool / f"{stem}-caller.wav",
                                 spool / f"{stem}-agent.wav") if f.exists()]
            repaired = sum([await asyncio.to_thread(_repair_wav, f) for f in files])
            await asyncio.to_thread(spool.joinpath(f"{stem}.done").touch)
            self._cut_seen.pop(stem, None)
            adopted += 1
            log.warning("recording of a cut call taken without its end mark", extra={
                "call_id": call_id, "files": len(files), "repaired": repaired})
        return adopted

    async def _ingest(self, node: str, markers: list[Path]) -> int:
        """A scan's finished recordings, stored together: their cases and stored files read
        in one statement, each call's files sealed out of the spool, the rows and the
        transcripts' status written in one transaction (Core statements: per call, two
        transactions and the ORM's unit of work cost more than the statements; issue 21)."""
        calls = {m: f"{node}:{m.name.removesuffix('.done').rpartition('-')[0]}"
                 for m in markers}
        async with self._engine.connect() as conn:
            found = (await conn.execute(_CASES_AND_FILES, {
                "call_ids": padded(sorted(set(calls.values())))})).all()
        by_call: dict[str, list[Any]] = {}
        for r in found:
            by_call.setdefault(r.call_id, []).append(r)
        stored: list[tuple[Path, Any, int, int]] = []  # marker, case, part, files
        files: list[dict[str, Any]] = []
        next_part: dict[str, int] = {}  # a call with two finished parts in one scan
        for marker, call_id in calls.items():
            with call_scope(call_id, self.case_of(call_id)):
                part_files = await self._seal_out(marker, by_call.get(call_id), next_part)
            if part_files is not None:
                case, part, rows = part_files
                files += rows
                stored.append((marker, case, part, len(rows)))
        if not stored:
            return 0
        # The files and the transcripts' status in one transaction (a recording stored twice,
        # after an interrupted run, stays one row per file: names are per case).
        now = utcnow()
        ids = sorted({case.id for _, case, _, _ in stored})
        async with self._engine.begin() as conn:
            if files:
                await conn.execute(_INSERT_RECORDINGS, [{**f, "created_at": now} for f in files])
            again = {r[0] for r in await conn.execute(_PENDING_AGAIN,
                                                      {"ids": padded(ids), "now": now})}
            new = [{"case_id": i, "status": "pending", "error": None, "attempts": 0,
                    "updated_at": now} for i in ids if i not in again]
            if new:
                await conn.execute(_INSERT_TRANSCRIPT, new)
        await asyncio.to_thread(_unlink_all, [m for m, _, _, _ in stored])
        queued: set[str] = set()
        for marker, case, part, count in stored:
            with call_scope(calls[marker], case.number):
                if self.cfg.asr.enabled and case.number not in queued:
                    queued.add(case.number)
                    await self._queue_job(case.number)
                log.info("recording stored", extra={"case": case.number, "part": part,
                                                    "files": count})
        return len(stored)

    async def _seal_out(self, marker: Path, found: list[Any] | None, next_part: dict[str, int]
                        ) -> tuple[Any, int, list[dict[str, Any]]] | None:
        """One finished recording's files sealed into its case's folder: the case, the part
        and the rows to insert; None if it waits (no case yet, or the disk refused)."""
        if not found:
            if time.time() - _mtime(marker) > 3600:
                log.warning("recording without a case")
            return None
        case = found[0]
        have = [(r.part, r.url_name) for r in found if r.url_name is not None]
        folder = self.dir / case.created_at.astimezone(UTC).strftime("%Y/%m") / case.number
        part = next_part.get(case.call_id) or max((p for p, _ in have), default=0) + 1
        names = {n for _, n in have}
        try:
            rows, done_at = await asyncio.to_thread(_move_all, marker, folder, case.number,
                                                    part, self.personal)
        except OSError as exc:
            # Full disk, unwritable directory: the files stay in the spool, the case says so,
            # and the next scan tries again.
            err = f"recording not stored ({exc.strerror or exc}); kept in {marker.parent}"
            if self.store_errors.get(case.number) != err:
                log.error("recording not stored", extra={"case": case.number, "error": err})
                self.store_errors[case.number] = err
                await self._set_status(case.id, "failed", err)
            return None
        next_part[case.call_id] = part + 1
        self.store_errors.pop(case.number, None)
        offset = 0.0
        if part > 1 and case.answered_at is not None:
            secs = max((sec for _, _, _, sec in rows), default=0.0)
            offset = max(0.0, done_at - secs - case.answered_at.timestamp())
        return case, part, [
            {"case_id": case.id, "side": side, "part": part, "path": str(dst),
             "url_name": name, "offset": round(offset, 2), "seconds": secs, "bytes": size}
            for side, dst, size, secs in rows
            if (name := str(dst.relative_to(self.dir))) not in names]

    # -- transcription --------------------------------------------------------------------------

    async def _leases(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.cfg.asr.lease_s / 3))
            with contextlib.suppress(Exception):
                await self.queue.renew(list(self.holding))
                await self.queue.reclaim()

    async def _worker(self) -> None:
        while True:
            try:
                job = await self.queue.claim()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the jobs wait (requeued when it is back)
                self._warn("queue", "transcription job queue unavailable",
                           error=str(exc) or type(exc).__name__)
                await asyncio.sleep(2)
                continue
            if job is None:
                await asyncio.sleep(0.3)
                continue
            case, attempt = job
            self.holding.add(case)
            try:
                with call_scope(None, case):  # the call's id comes with the case (process)
                    await self.process(case, attempt)
            except asyncio.CancelledError:
                raise  # the lease runs out and another worker takes the job
            except Exception as exc:
                away = database_unavailable(exc)
                if away:  # not the job's fault: back in the queue, uncounted, and wait
                    self._warn("database", "transcription waits for the database",
                               error=type(exc).__name__)
                else:
                    log.exception("transcription job failed unexpectedly",
                                  extra={"case": case})
                with contextlib.suppress(Exception):
                    await self.queue.retry(case, count=not away)
                if away:
                    await asyncio.sleep(2)
            finally:
                self.holding.discard(case)

    async def process(self, number: str, attempt: int = 1) -> str:
        """Transcribe one case's recordings; returns the status left on the case."""
        async with self.sessions() as s:
            case = (await s.execute(select(Case).where(Case.number == number))
                    ).scalar_one_or_none()
            recs = [] if case is None else (await s.execute(select(Recording).where(
                Recording.case_id == case.id, Recording.deleted_at.is_(None),
                Recording.side.in_(SPEAKERS)).order_by(Recording.part, Recording.side))
            ).scalars().all()
        if case is None:
            await self.queue.finish(number)
            return "none"
        note_call_id(number, case.call_id)
        if self.model_error:
            await self._fail(case.id, number, f"ASR model unavailable: {self.model_error}")
            return "failed"
        if not recs:
            await self._fail(case.id, number, "no recording of this call to transcribe")
            return "failed"
        await self._set_status(case.id, "running", None, attempts=attempt)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            # Decrypted here, in memory, and handed to the pool as bytes: no clear copy on disk.
            audio = await asyncio.gather(*(
                asyncio.to_thread(sealed.read_all, Path(r.path), self.personal) for r in recs))
            pool = await self._pool()
            results = await asyncio.gather(*(
                loop.run_in_executor(pool, engine.transcribe_audio, data, Path(r.path).name,
                                     r.side, r.offset)
                for r, data in zip(recs, audio, strict=True)))
        except (AudioError, sealed.SealedFileError) as exc:
            await self._fail(case.id, number, f"recording unreadable: {exc}")
            return "failed"
        except FileNotFoundError as exc:
            await self._fail(case.id, number, f"recording missing: {exc.filename}")
            return "failed"
        except engine.ModelError as exc:
            await self._fail(case.id, number, f"ASR model unavailable: {exc}")
            return "failed"
        except (BrokenProcessPool, Exception) as exc:
            if isinstance(exc, BrokenProcessPool):
                await self._replace_pool()
                why = "a transcription worker died"
            else:
                why = f"{type(exc).__name__}: {exc}"
            if attempt >= self.cfg.asr.max_attempts:
                await self._fail(case.id, number, f"gave up after {attempt} attempts: {why}")
                return "failed"
            log.warning("transcription retried", extra={"case": number, "attempt": attempt,
                                                        "error": why})
            await self._set_status(case.id, "pending", f"attempt {attempt} failed: {why}")
            await self.queue.retry(number)
            return "pending"
        segments = sorted((seg for side in results for seg in side),
                          key=lambda g: (g["start"], g["end"]))
        await self._store(case.id, segments)
        self._job_time.observe(time.perf_counter() - started)
        await self.queue.finish(number)
        self.jobs_done += 1
        return "done"

    async def requeue(self, *, older_than_s: float = 0.0, orphans: bool = False) -> list[str]:
        """Queue again the jobs the database has and Redis lost: transcripts pending or
        running that no worker here holds and Redis does not list (Redis restarted without
        its data; a service killed between storing a recording and queueing its job), and
        with ``orphans`` recordings with no transcript row at all. Queueing twice is
        harmless: a case is never pending twice and its transcript is replaced whole."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        async with self.sessions() as s:
            numbers = set((await s.execute(select(Case.number).join(
                Transcript, Transcript.case_id == Case.id).where(
                Transcript.status.in_(("pending", "running")),
                Transcript.updated_at <= cutoff))).scalars())
            if orphans:  # only a crash in a short window leaves them: the last two days
                numbers |= set((await s.execute(select(Case.number).join(
                    Recording, Recording.case_id == Case.id).outerjoin(
                    Transcript, Transcript.case_id == Case.id).where(
                    Transcript.id.is_(None), Recording.deleted_at.is_(None),
                    Recording.side.in_(SPEAKERS), Recording.created_at <= cutoff,
                    Recording.created_at >= cutoff - timedelta(days=2))
                    .distinct())).scalars())
        out = []
        for number in sorted(numbers - self.holding):
            if not await self.queue.is_queued(number) and await self.queue.enqueue(number):
                out.append(number)
        if out:
            self.jobs_requeued += len(out)
            log.warning("transcription jobs queued again from the database",
                        extra={"jobs": len(out)})
        return out

    async def _queue_job(self, number: str) -> None:
        try:
            await self.queue.enqueue(number, reset=True)
        except (RedisError, OSError) as exc:
            # The case's transcript says pending: queued from there as soon as Redis answers.
            self._warn("enqueue", "transcription job waits in the database for Redis",
                       error=str(exc) or type(exc).__name__)
            self._requeue_wake.set()

    async def _requeue_loop(self) -> None:
        while True:
            woken = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._requeue_wake.wait(), self.requeue_interval_s)
                woken = True
            self._requeue_wake.clear()
            try:
                await self.requeue(older_than_s=0 if woken else self.requeue_interval_s / 2)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn("requeue", "transcription jobs not checked", error=str(exc))
                if woken:
                    self._requeue_wake.set()  # again shortly
                await asyncio.sleep(2)

    def _warn(self, what: str, message: str, **extra: Any) -> None:
        """A warning about a lasting condition, at most every 30 s."""
        now = time.monotonic()
        if now - self._quiet.get(what, -1e9) >= 30:
            self._quiet[what] = now
            log.warning(message, extra=extra)

    async def _pool(self) -> ProcessPoolExecutor:
        async with self._pool_lock:
            if self.pool is None:
                self.pool = self._new_pool()
            return self.pool

    async def _replace_pool(self) -> None:
        async with self._pool_lock:
            old = self.pool
            if old is not None and getattr(old, "_broken", False):
                self.pool = self._new_pool()
                self.pool_restarts += 1
                old.shutdown(wait=False, cancel_futures=True)

    async def _store(self, case_id: int, segments: list[dict[str, Any]]) -> None:
        """Replace the case's segments and mark it done, in one transaction: whatever runs
        twice, the case has exactly one transcript."""
        async with self.sessions() as s, s.begin():
            t = await self._transcript(s, case_id, status="done", error=None)
            t.done_at = t.updated_at
            await s.flush()  # its id, for the segments
            await s.execute(delete(TranscriptSegment).where(
                TranscriptSegment.transcript_id == t.id))
            for g in segments:
                s.add(TranscriptSegment(transcript_id=t.id, speaker=g["speaker"],
                                        start=g["start"], end=g["end"],
                                        text_enc=self.personal.encrypt(g["text"]),
                                        confidence=g.get("confidence")))
            t.model = self.model_path.name[:128]

    async def _fail(self, case_id: int, number: str, error: str) -> None:
        await self._set_status(case_id, "failed", error)
        await self.queue.finish(number)
        self.jobs_failed += 1
        log.error("transcription failed", extra={"case": number, "error": error})

    async def _transcript(self, s: AsyncSession, case_id: int, *, status: str,
                          error: str | None, attempts: int | None = None) -> Transcript:
        """The case's transcript row with this status (made with it if it had none: one
        INSERT, not an INSERT and an UPDATE)."""
        t = (await s.execute(select(Transcript).where(Transcript.case_id == case_id))
             ).scalar_one_or_none()
        if t is None:
            t = Transcript(case_id=case_id, status=status, error=error,
                           attempts=attempts or 0, updated_at=utcnow())
            s.add(t)
            return t
        t.status, t.error, t.updated_at = status, error, utcnow()
        if attempts is not None:
            t.attempts = attempts
        return t

    async def _set_status(self, case_id: int, status: str, error: str | None, *,
                          attempts: int | None = None) -> None:
        async with self.sessions() as s, s.begin():
            await self._transcript(s, case_id, status=status, error=error, attempts=attempts)

    # -- what the console shows -----------------------------------------------------------------

    async def for_case(self, case_number: str) -> dict[str, Any]:
        async with self.sessions() as s:
            case = (await s.execute(select(Case).where(Case.number == case_number))
                    ).scalar_one_or_none()
            if case is None:
                return {"status": "none", "error": None, "segments": [], "recordings": []}
            t = (await s.execute(select(Transcript).where(Transcript.case_id == case.id))
                 ).scalar_one_or_none()
            segs = [] if t is None else (await s.execute(
                select(TranscriptSegment).where(TranscriptSegment.transcript_id == t.id)
                .order_by(TranscriptSegment.start, TranscriptSegment.id))).scalars().all()
            recs = (await s.execute(select(Recording).where(Recording.case_id == case.id)
                                    .order_by(Recording.part, Recording.id))).scalars().all()
        return {
            "status": t.status if t is not None else "none",
            "error": t.error if t is not None else None,
            "segments": [{"speaker": g.speaker, "start": g.start, "end": g.end,
                          "text": self.personal.decrypt_text(g.text_enc),
                          "confidence": g.confidence} for g in segs],
            # The seat's video (asr/video.py): "open" until its console finished it.
            "recordings": [{"side": r.side, "path": r.path, "url_name": r.url_name,
                            "kind": "video" if r.side == "video" else "audio",
                            "open": r.side == "video" and r.seconds is None,
                            "deleted_at": r.deleted_at.isoformat() if r.deleted_at else None}
                           for r in recs],
        }

    async def seal_clear_recordings(self) -> int:
        """Recordings stored in clear before sealing existed: sealed beside themselves, the
        clear file removed, then the row pointed at the sealed one (a run cut short anywhere is
        finished by the next). Returns how many."""
        async with self.sessions() as s:
            rows = (await s.execute(select(Recording.id, Recording.path, Recording.url_name)
                                    .where(Recording.deleted_at.is_(None),
                                           Recording.path.not_like(f"%{sealed.SUFFIX}")))
                    ).all()
        done = 0
        for rec_id, path, url_name in rows:
            src = Path(path)
            dst = src.with_name(src.name + sealed.SUFFIX)
            if await asyncio.to_thread(src.is_file):
                await asyncio.to_thread(_private_dir, src.parent)
                await asyncio.to_thread(_seal, src, dst, self.personal)
            elif not await asyncio.to_thread(dst.is_file):
                continue  # gone: retention's business
            async with self.sessions() as s, s.begin():
                await s.execute(update(Recording).where(Recording.id == rec_id).values(
                    path=str(dst), url_name=url_name + sealed.SUFFIX))
            done += 1
        return done

    def recording_path(self, url_name: str) -> Path | None:
        """The file for a console URL, only if it lies inside the recordings dir."""
        p = (self.dir / url_name).resolve()
        return p if p.is_relative_to(self.dir.resolve()) and p.is_file() else None

    # -- backlog --------------------------------------------------------------------------------

    async def backlog(self, *, since: datetime | None = None, include_failed: bool = True
                      ) -> list[str]:
        """Cases with recordings but no finished transcript (missed while the model was
        missing, failed, or queued before a crash): queued again, oldest first."""
        async with self.sessions() as s:
            q = (select(Case.number, Transcript.status).join(
                Recording, Recording.case_id == Case.id).outerjoin(
                Transcript, Transcript.case_id == Case.id).where(
                Recording.deleted_at.is_(None), Recording.side.in_(SIDES)).distinct())
            if since is not None:
                q = q.where(Case.created_at >= since)
            rows = (await s.execute(q.order_by(Case.number))).all()
        wanted = [n for n, st in rows if st is None or st == "pending"
                  or (include_failed and st == "failed")]
        for n in wanted:
            await self.queue.enqueue(n, reset=True)
        return wanted

    def stats(self) -> dict[str, Any]:
        return {"model_error": self.model_error, "jobs_done": self.jobs_done,
                "jobs_failed": self.jobs_failed, "jobs_requeued": self.jobs_requeued,
                "pool_restarts": self.pool_restarts,
                "live_streams": self.live.active if self.live else 0}


def _private_dir(path: Path) -> None:
    """A directory of recordings: its owner's only (0700), also when it already existed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _seal(src: Path, dst: Path, keys: sealed.KeyWrapper) -> int:
    """Seal a finished recording into the recordings dir; the clear source is removed only once
    the sealed copy is safe on disk. Returns the clear length."""
    size = sealed.seal_file(src, dst, keys)
    src.unlink()
    return size


def _move_all(marker: Path, folder: Path, number: str, part: int, keys: sealed.KeyWrapper
              ) -> tuple[list[tuple[str, Path, int, float]], float]:
    """Seal one finished recording's files (named by case) out of the spool. A file already
    sealed by an interrupted earlier run is taken as it is."""
    stem = marker.name.removesuffix(".done")
    sources = {side: marker.with_name(f"{stem}-{side}.wav") for side in SIDES}
    sources["mix"] = marker.with_name(f"{stem}.wav")
    done_at = marker.stat().st_mtime
    for level in (folder.parents[1], folder.parents[0], folder):  # <year>/<month>/<case>
        _private_dir(level)
    rows = []
    for side, src in sources.items():
        dst = folder / f"{number}-{part}-{side}.wav{sealed.SUFFIX}"
        if src.exists():
            secs = _seconds(src)
            size = _seal(src, dst, keys)
        elif dst.exists():
            audio = sealed.read_all(dst, keys)
            secs, size = _seconds_of(audio), len(audio)
        else:
            continue
        rows.append((side, dst, size, secs))
    return rows, done_at


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _done_marks(spool: Path) -> list[Path]:
    """The spool's finished recordings (their .done marks), oldest first."""
    return sorted(spool.glob("*.done"), key=_mtime)


def _unmarked(spool: Path) -> dict[str, float]:
    """Recordings in the spool without their .done mark: stem -> newest file's mtime."""
    stems: dict[str, float] = {}
    for wav in spool.glob("*.wav"):
        stem = wav.name.removesuffix(".wav").removesuffix("-caller").removesuffix("-agent")
        stems[stem] = max(stems.get(stem, 0.0), _mtime(wav))
    return {st: m for st, m in stems.items() if not spool.joinpath(f"{st}.done").exists()}


def _repair_wav(path: Path) -> bool:
    """Set a WAV's RIFF and data sizes from the file's length (a writer killed before it
    closed the file leaves them as they were at the start); True if it changed them."""
    try:
        with open(path, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return False
            pos, changed = 12, False
            while pos + 8 <= size:
                f.seek(pos)
                chunk, length = struct.unpack("<4sI", f.read(8))
                if chunk == b"data":
                    want = size - pos - 8
                    want -= want % 2  # whole 16-bit samples
                    if length != want:
                        f.seek(pos + 4)
                        f.write(struct.pack("<I", want))
                        changed = True
                    if struct.unpack("<I", head[4:8])[0] != size - 8:
                        f.seek(4)
                        f.write(struct.pack("<I", size - 8))
                        changed = True
                    return changed
                pos += 8 + length + (length & 1)
    except OSError:
        pass
    return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _seconds(path: Path) -> float:
    try:
        with open(path, "rb") as f:
            return _wav_seconds(f)
    except OSError:
        return 0.0


def _seconds_of(audio: bytes) -> float:
    return _wav_seconds(io.BytesIO(audio))


def _wav_seconds(source: BinaryIO) -> float:
    try:
        with wave.open(source, "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except Exception:  # wave raises RuntimeError, struct.error... on damaged headers
        return 0.0


def _init_worker(model_path: str, parent: int) -> None:
    """A transcription worker that ends with its service: killed -9, the service cannot stop
    it, and the pool's queue keeps it waiting for ever (with its model in memory)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    engine.init_worker(model_path)


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            p.kill()
            p.join(2)
