"""The announce room, wired: the announcer (itself the plugin: start, stop) with each node's
AMI, the node's sounds folder and espeak-ng as collaborators; its ``on_fact`` is a call-tracker
sink (hotline/service.py)."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

from common.config import Config
from queueing.announce.announcer import Ami, Announcer, Recorder, Speak


def wav_seconds(path: Path) -> float:
    """How long the prompt the caller hears first lasts (0 if there is none)."""
    try:
        with wave.open(str(path)) as w:
            return float(w.getnframes()) / float(w.getframerate())
    except (OSError, wave.Error, EOFError):
        return 0.0


def build(cfg: Config, *, ami_of: Callable[[str], Ami],
          sounds_of: Callable[[str], Path | None], speak: Speak,
          record: Recorder) -> Announcer:
    welcome: dict[str, float] = {}

    def welcome_s_of(node: str) -> float:
        # Queue first: the caller hears the prompt before anything else.
        if cfg.menu.first != "queue":
            return 0.0
        if node not in welcome:
            where = sounds_of(node)
            welcome[node] = wav_seconds(where / "welcome.wav") if where else 0.0
        return welcome[node]

    keep = cfg.keep_place
    offer = ((float(keep.offer_after_s), keep.offer)
             if keep.enabled and cfg.menu.first == "queue" else None)
    return Announcer(cfg.announce, ami_of=ami_of, sounds_of=sounds_of, speak=speak,
                     record=record, welcome_s_of=welcome_s_of, keep_offer=offer)
