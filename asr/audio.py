"""Reading telephone recordings and bringing them to the model's sample rate."""

from __future__ import annotations

import wave
from functools import cache
from pathlib import Path

import numpy as np


class AudioError(Exception):
    """A recording that cannot be read as audio (corrupt, truncated, wrong format)."""


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """16-bit mono PCM samples and their rate; AudioError for anything else."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise AudioError(f"{path.name}: {8 * w.getsampwidth()}-bit audio, need 16-bit")
            rate, channels, frames = w.getframerate(), w.getnchannels(), w.getnframes()
            data = w.readframes(frames)
    except AudioError:
        raise
    except Exception as exc:  # wave raises RuntimeError, struct.error... on bad headers
        raise AudioError(f"{path.name}: not a readable WAV file ({exc})") from None
    if rate < 4000 or rate > 48000:
        raise AudioError(f"{path.name}: implausible sample rate {rate}")
    samples = np.frombuffer(data[: len(data) - len(data) % (2 * channels)], dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    return samples, rate


@cache
def _lowpass(factor: int, taps_per_phase: int = 16) -> np.ndarray:
    """A windowed-sinc low-pass filter at the original Nyquist for upsampling by ``factor``."""
    n = factor * taps_per_phase * 2 + 1
    t = np.arange(n) - (n - 1) / 2
    h = np.sinc(t / factor) * np.kaiser(n, 6.0)
    taps: np.ndarray = h / h.sum() * factor
    return taps.astype(np.float32)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """int16 samples from ``rate`` to ``target`` (8 kHz telephone audio to a 16 kHz model).
    Integer upsampling by zero-stuffing and a windowed-sinc filter; other ratios by linear
    interpolation after the same filter."""
    if rate == target or samples.size == 0:
        return samples.astype("<i2", copy=False)
    x = samples.astype(np.float32)
    if target % rate == 0:
        factor = target // rate
        up = np.zeros(x.size * factor, dtype=np.float32)
        up[::factor] = x
        y = np.convolve(up, _lowpass(factor), mode="same")
    else:
        n = round(x.size * target / rate)
        y = np.interp(np.arange(n) * (rate / target), np.arange(x.size), x).astype(np.float32)
    return np.clip(y, -32768, 32767).astype("<i2")


def rms_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return float(20 * np.log10(max(rms, 1e-6) / 32768.0))
