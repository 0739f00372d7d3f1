"""Looking into recordings: is there sound, and whose (parties play distinct tones)?"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def samples(path: Path, start_s: float = 0.0, end_s: float | None = None) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        if w.getnchannels() > 1:
            data = data[:: w.getnchannels()]
    a = int(start_s * rate)
    b = None if end_s is None else int(end_s * rate)
    return data[a:b].astype(np.float64) / 32768.0, rate


def duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def rms(path: Path, start_s: float = 0.0, end_s: float | None = None) -> float:
    x, _ = samples(path, start_s, end_s)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


def tone_level(path: Path, freq: float, start_s: float = 0.0, end_s: float | None = None,
               width: float = 25.0) -> float:
    """Share of the signal's energy within ``width`` Hz of ``freq`` (0..1)."""
    x, rate = samples(path, start_s, end_s)
    if len(x) < rate // 10:
        return 0.0
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    total = spec.sum()
    if total <= 0:
        return 0.0
    band = spec[(freqs > freq - width) & (freqs < freq + width)].sum()
    return float(band / total)


def speech_like(path: Path, start_s: float = 0.0, end_s: float | None = None) -> bool:
    """Energy spread over the voice band rather than one tone, and loud enough to be heard."""
    x, rate = samples(path, start_s, end_s)
    if len(x) < rate // 2 or float(np.sqrt(np.mean(x * x))) < 0.01:
        return False
    spec = np.abs(np.fft.rfft(x)) ** 2
    peak_share = spec.max() / spec.sum()
    return bool(peak_share < 0.2)
