"""Prompts and music on hold, made at build time with espeak-ng and sox (no downloads)."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path


class SoundError(Exception):
    pass


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SoundError(f"{tool} is not installed: run `apt-get install {package}`")
    return path


def speak(text: str, out: Path, *, voice: str = "cmn", rate: int = 8000, speed: int = 190,
          tempo: float = 1.0) -> Path:
    """Mandarin (by default) speech as a mono 16-bit WAV at ``rate`` Hz. Cached by content.
    ``tempo`` > 1 speeds speech up without raising its pitch (espeak-ng's Mandarin is slow)."""
    key = hashlib.sha256(f"{voice}|{rate}|{speed}|{tempo}|{text}".encode()).hexdigest()[:16]
    stamp = out.with_suffix(".src")
    if out.exists() and stamp.exists() and stamp.read_text() == key:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written under names of this process's own, then moved into place: several processes
    # (test workers) may make the same file at once, and none may read a half-written one.
    mine = f".{os.getpid()}.{secrets.token_hex(3)}"
    raw = out.with_name(out.stem + mine + ".raw.wav")
    made = out.with_name(out.stem + mine + ".wav")
    try:
        subprocess.run(
            [_need("espeak-ng", "espeak-ng"), "-v", voice, "-s", str(speed), "-w", str(raw),
             text],
            check=True, capture_output=True,
        )
        subprocess.run(
            # Trim leading and trailing silence: every second of prompt is a second of waiting.
            [_need("sox", "sox"), str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(made),
             "silence", "1", "0.05", "1%", "reverse", "silence", "1", "0.05", "1%", "reverse",
             "tempo", "-s", str(tempo), "norm", "-3"],
            check=True, capture_output=True,
        )
        os.replace(made, out)
        made_stamp = stamp.with_name(stamp.name + mine)
        made_stamp.write_text(key)
        os.replace(made_stamp, stamp)
    finally:
        raw.unlink(missing_ok=True)
        made.unlink(missing_ok=True)
    return out


def tone(out: Path, *, freq: float, seconds: float, rate: int = 8000, gain_db: float = -6) -> Path:
    """A steady sine tone: parties in tests play distinct tones so each can be told apart."""
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_need("sox", "sox"), "-n", "-r", str(rate), "-c", "1", "-b", "16", str(out),
         "synth", str(seconds), "sine", str(freq), "gain", str(gain_db)],
        check=True, capture_output=True,
    )
    return out


def music_on_hold(out: Path, *, rate: int = 8000, gain_db: float = -26) -> Path:
    """A calm, looping chime sequence for callers on hold; well under the prompts' level, so
    what is said over it while they wait (position, expected wait) is understood."""
    # A hidden stamp: Asterisk plays every other file in the folder.
    stamp = out.with_name(f".{out.stem}.src")
    key = f"chimes|{rate}|{gain_db}"
    if out.exists() and stamp.exists() and stamp.read_text() == key:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    notes = ["523.25", "659.25", "783.99", "659.25", "587.33", "698.46", "880", "698.46"]
    parts = []
    sox = _need("sox", "sox")
    for i, f in enumerate(notes):
        part = out.with_name(f".note{i}.wav")
        subprocess.run(
            [sox, "-n", "-r", str(rate), "-c", "1", "-b", "16", str(part), "synth", "0.9",
             "sine", f, "fade", "q", "0.05", "0.9", "0.4", "gain", str(gain_db)],
            check=True, capture_output=True,
        )
        parts.append(str(part))
    subprocess.run([sox, *parts, str(out)], check=True, capture_output=True)
    for p in parts:
        Path(p).unlink()
    stamp.write_text(key)
    return out
