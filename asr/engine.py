"""Vosk decoding: one shared ``Model`` per process, one recognizer per stream.

The offline worker runs in a pool of processes (``init_worker`` loads the model once per
process); live captions use ``Stream`` objects on the service's own model (Vosk's C calls
release the GIL, so streams decode on several cores from threads).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asr.audio import read_wav, resample, rms_dbfs
from asr.text import normalise

# Segments whose audio is quieter than this are noise the model guessed words into.
SILENCE_DBFS = -48.0
CHUNK_S = 0.5

REQUIRED = ("am/final.mdl", "conf/mfcc.conf")


class ModelError(Exception):
    """The configured Vosk model is missing or cannot be loaded."""


def check_model_dir(path: Path) -> None:
    """Structure check, before loading (Vosk only says 'Failed to create a model')."""
    if not path.is_dir():
        raise ModelError(f"no Vosk model at {path} (install one: hotline asr install-model "
                         f"vosk-model-small-cn-0.22.zip)")
    missing = [r for r in REQUIRED if not (path / r).is_file()]
    if not (path / "graph").is_dir() and not (path / "HCLG.fst").is_file():
        missing.append("graph/")
    if missing:
        raise ModelError(f"{path} is not a complete Vosk model: missing {', '.join(missing)}")


def model_rate(path: Path) -> int:
    """The sample rate the model's features expect (mfcc.conf; Kaldi's default 16 kHz)."""
    try:
        conf = (path / "conf" / "mfcc.conf").read_text()
    except OSError:
        return 16000
    m = re.search(r"--sample-frequency=(\d+)", conf)
    return int(m.group(1)) if m else 16000


def load_model(path: Path) -> Any:
    check_model_dir(path)
    import vosk

    vosk.SetLogLevel(-1)
    try:
        return vosk.Model(str(path))
    except Exception as exc:
        raise ModelError(f"Vosk could not load the model at {path}: {exc}") from None


# -- offline (process pool) -------------------------------------------------------------------

_MODEL: Any = None
_MODEL_PATH: Path | None = None
_RATE = 16000


def init_worker(model_path: str) -> None:
    """Pool initializer: the process's one shared Model (load errors surface per job)."""
    global _MODEL, _MODEL_PATH, _RATE
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _MODEL_PATH = Path(model_path)
    _RATE = model_rate(_MODEL_PATH)
    try:
        _MODEL = load_model(_MODEL_PATH)
    except ModelError as exc:
        _MODEL = exc


def _model() -> Any:
    if isinstance(_MODEL, ModelError):
        raise _MODEL
    if _MODEL is None:
        raise ModelError("worker has no model")
    return _MODEL


def worker_ping() -> dict[str, Any]:
    """Loads (or reports) the model in a pool process: used at start to fail clearly."""
    _model()
    return {"pid": os.getpid(), "rate": _RATE, "model": str(_MODEL_PATH)}


def transcribe_file(path: str, speaker: str, offset: float = 0.0) -> list[dict[str, Any]]:
    """Segments of one side's recording: speaker, start, end (s, plus ``offset``), text,
    confidence. AudioError if the file is not readable audio."""
    samples, rate = read_wav(Path(path))
    return decode_samples(_model(), samples, rate, speaker, offset, _RATE)


def decode_samples(model: Any, samples: np.ndarray, rate: int, speaker: str, offset: float,
                   model_rate_hz: int) -> list[dict[str, Any]]:
    import vosk

    audio = resample(samples, rate, model_rate_hz)
    rec = vosk.KaldiRecognizer(model, model_rate_hz)
    rec.SetWords(True)
    step = int(model_rate_hz * CHUNK_S)
    results: list[dict[str, Any]] = []
    for i in range(0, audio.size, step):
        if rec.AcceptWaveform(audio[i:i + step].tobytes()):
            results.append(json.loads(rec.Result()))
    results.append(json.loads(rec.FinalResult()))
    segments = []
    for r in results:
        seg = segment_of(r, speaker, offset, audio, model_rate_hz)
        if seg is not None:
            segments.append(seg)
    return segments


def segment_of(result: dict[str, Any], speaker: str, offset: float,
               audio: np.ndarray | None = None, rate: int = 16000) -> dict[str, Any] | None:
    words = result.get("result") or []
    text = normalise(result.get("text", ""))
    if not words or not text:
        return None
    start, end = float(words[0]["start"]), float(words[-1]["end"])
    if audio is not None:
        span = audio[int(start * rate): max(int(end * rate), int(start * rate) + 1)]
        if rms_dbfs(span) < SILENCE_DBFS:
            return None
    conf = float(np.mean([float(w.get("conf", 0.0)) for w in words]))
    return {"speaker": speaker, "start": round(offset + start, 2),
            "end": round(offset + end, 2), "text": text, "confidence": round(conf, 3)}


# -- live -------------------------------------------------------------------------------------


@dataclass
class Stream:
    """One live side of a call: 8 kHz audio in, partial and final results out."""

    model: Any
    model_rate_hz: int
    in_rate: int = 8000
    position: float = 0.0  # seconds of audio fed
    last_partial: str = ""
    last_end: float = 0.0
    _rec: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import vosk

        self._rec = vosk.KaldiRecognizer(self.model, self.model_rate_hz)
        self._rec.SetWords(True)

    def feed(self, pcm: bytes) -> list[dict[str, Any]]:
        """Feed 8 kHz 16-bit audio; returns caption events (without call/speaker fields)."""
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
        start_pos = self.position
        self.position += samples.size / self.in_rate
        audio = resample(samples, self.in_rate, self.model_rate_hz)
        out: list[dict[str, Any]] = []
        if self._rec.AcceptWaveform(audio.tobytes()):
            out.extend(self._final(json.loads(self._rec.Result())))
        else:
            text = normalise(json.loads(self._rec.PartialResult()).get("partial", ""))
            if text and text != self.last_partial and rms_dbfs(samples) > SILENCE_DBFS - 20:
                self.last_partial = text
                out.append({"text": text, "final": False,
                            "start": round(self.last_end, 2), "end": round(self.position, 2)})
        del start_pos
        return out

    def finish(self) -> list[dict[str, Any]]:
        return self._final(json.loads(self._rec.FinalResult()))

    def _final(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        self.last_partial = ""
        seg = segment_of(result, "", 0.0)
        if seg is None:
            return []
        self.last_end = seg["end"]
        return [{"text": seg["text"], "final": True, "start": seg["start"],
                 "end": seg["end"], "confidence": seg["confidence"]}]

