"""Recordings as Asterisk leaves them in a node's spool, for the transcription tests and the
drills' parts: speech samples, WAV files, a call's case with its recording, and its status."""

from __future__ import annotations

import asyncio
import os
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from common.facts import CallFact


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> None:
    """A mono 16-bit WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def speech_samples(sounds: dict[str, Path], seconds: float) -> np.ndarray:
    """The caller's speech, repeated with short pauses, cut to ``seconds`` at 8 kHz."""
    with wave.open(str(sounds["caller_speech"]), "rb") as w:
        assert w.getframerate() == 8000
        one = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    reps = int(seconds * 8000 / one.size) + 1
    return np.tile(np.concatenate([one, np.zeros(4000, dtype="<i2")]), reps)[: int(seconds
                                                                                 * 8000)]


async def recorded_call(service: Any, sounds: dict[str, Path], *, seconds: float = 8.0,
                        corrupt: bool = False) -> str:
    """A call's case, and its recording finished in the node's spool as Asterisk leaves it
    (caller speaks, agent silent); returns the case number."""
    node = service.cfg.nodes[0].id
    linkedid = f"{time.time():.6f}"
    call_id = f"{node}:{linkedid}"
    now = time.time()
    await service.store.apply(CallFact("arrived", call_id, node, now - seconds,
                                       {"caller": "13812345678", "dialed": "12345",
                                        "uniqueid": linkedid, "channel": "PJSIP/x-1"}))
    case = await service.store.by_call(call_id)
    stem = service.transcripts.spools[node] / f"{linkedid}-{int(now)}"
    await asyncio.to_thread(_spool_files, sounds, stem, seconds, corrupt)
    return str(case.number)


def _spool_files(sounds: dict[str, Path], stem: Path, seconds: float, corrupt: bool) -> None:
    if corrupt:
        for side in ("-caller", "-agent", ""):
            Path(f"{stem}{side}.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + os.urandom(
                3000))
    else:
        caller = speech_samples(sounds, seconds)
        write_wav(Path(f"{stem}-caller.wav"), caller)
        write_wav(Path(f"{stem}-agent.wav"), np.zeros_like(caller))
        write_wav(Path(f"{stem}.wav"), caller)
    Path(f"{stem}.done").touch()


async def transcript_status(service: Any, number: str, want: tuple[str, ...]) -> Any:
    """The case's transcript if its status is one of ``want``, else None (for eventually)."""
    t = await service.transcripts.for_case(number)
    return t if t["status"] in want else None
