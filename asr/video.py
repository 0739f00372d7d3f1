"""The sign-language seat's video recordings (``[sign_language] record_video``).

Asterisk records the audio of every call (asr/service.py); the video of a sign-language call is
recorded by the seat's console, which holds both pictures: a WebM uploaded in pieces while the
call is up. Piece i is chunk i of one sealed file (common/sealed.py ``append_chunk``: a retried
piece is stored once, a gap refused), beside the call's audio files and named like them
(``<case>-1-video.webm.enc``), on a ``recordings`` row with side ``video``: the same retention,
key rotation, roles and audited playback as the audio. The console's last call finishes the
file; one that never comes (a crash) leaves every piece before it playable.

Only the case's agent uploads, only for a call of the sign-language skill, and not long after
the call has ended."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asr.models import Recording
from cases.models import Case
from common import sealed
from common.db import utcnow
from common.errors import DomainError
from common.queues import split_queue

SIDE = "video"
EBML = bytes.fromhex("1a45dfa3")  # how a WebM begins
# Pieces still taken this long after the call's end (the recorder's last piece, retries).
GRACE_S = 300.0


def _private_dirs(root: Path, folder: Path) -> None:
    for level in (*reversed(folder.relative_to(root).parents), folder.relative_to(root)):
        d = root / level
        d.mkdir(mode=0o700, exist_ok=True)
        d.chmod(0o700)


class VideoRecordings:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keys: sealed.KeyWrapper,
                 root: Path, skill: str):
        self.sessions = sessions
        self.keys = keys
        self.root = root
        self.skill = skill

    async def _case(self, number: str, agent: str) -> Case:
        async with self.sessions() as s:
            case = (await s.execute(select(Case).where(Case.number == number))
                    ).scalar_one_or_none()
        if case is None:
            raise DomainError("not_found", f"no case {number}")
        if case.agent_id != agent:
            raise DomainError("forbidden", f"case {number} is not your call")
        if case.queue is None or split_queue(case.queue)[1] != self.skill:
            raise DomainError("forbidden", f"case {number} is not a sign-language call")
        if case.ended_at is not None and (utcnow() - case.ended_at
                                          > timedelta(seconds=GRACE_S)):
            raise DomainError("call_over", f"the call of case {number} is over")
        return case

    async def _row(self, case: Case, *, create: bool) -> Recording | None:
        async with self.sessions() as s:
            rec = (await s.execute(select(Recording).where(
                Recording.case_id == case.id, Recording.side == SIDE))).scalar_one_or_none()
        if rec is not None or not create:
            return rec
        folder = self.root / case.created_at.astimezone(UTC).strftime("%Y/%m") / case.number
        await asyncio.to_thread(_private_dirs, self.root, folder)
        path = folder / f"{case.number}-1-{SIDE}.webm{sealed.SUFFIX}"
        rec = Recording(case_id=case.id, side=SIDE, part=1, path=str(path),
                        url_name=str(path.relative_to(self.root)), bytes=0)
        try:
            async with self.sessions() as s, s.begin():
                s.add(rec)
        except IntegrityError:  # a retry of piece 0 beat us to it
            return await self._row(case, create=False)
        return rec

    async def put(self, number: str, agent: str, seq: int, data: bytes) -> dict[str, Any]:
        """Store piece ``seq`` (from 0) of the case's video; a piece already stored is not
        stored again."""
        case = await self._case(number, agent)
        if seq == 0 and not data.startswith(EBML):
            raise DomainError("invalid", "piece 0 is not a WebM (no EBML header)")
        rec = await self._row(case, create=seq == 0)
        if rec is None:
            raise DomainError("sequence", f"piece {seq} before piece 0")
        try:
            stored = await asyncio.to_thread(sealed.append_chunk, Path(rec.path), data,
                                             self.keys, seq)
        except sealed.SealedFileError as exc:  # a gap, or the recording is finished
            raise DomainError("sequence", str(exc)) from None
        if stored:
            async with self.sessions() as s, s.begin():
                await s.execute(update(Recording).where(Recording.id == rec.id).values(
                    bytes=Recording.bytes + len(data)))
        return {"case": number, "seq": seq, "stored": stored}

    async def close(self, number: str, agent: str, pieces: int) -> dict[str, Any]:
        """Finish the case's video once it holds ``pieces`` pieces (the console's count):
        fewer is a gap the console fills first."""
        case = await self._case(number, agent)
        rec = await self._row(case, create=False)
        if rec is None:
            raise DomainError("not_found", f"no video recording for case {number}")
        path = Path(rec.path)
        try:
            have, _finished = await asyncio.to_thread(sealed.pieces, path)
        except (OSError, sealed.SealedFileError):
            have = 0
        if have != pieces:
            raise DomainError("sequence", f"{have} pieces stored, {pieces} sent: piece {have} "
                                     f"is missing" if have < pieces else
                              f"{have} pieces stored, not {pieces}")
        await asyncio.to_thread(sealed.finish, path, self.keys)
        seconds = (utcnow() - rec.created_at).total_seconds()
        async with self.sessions() as s, s.begin():
            await s.execute(update(Recording).where(
                Recording.id == rec.id, Recording.seconds.is_(None)).values(
                seconds=round(seconds, 1)))
        return {"case": number, "pieces": pieces, "closed": True}
