"""What a waiting caller is told, and when: pure functions of the queue as Asterisk reports it
(the caller's position, the agents able to answer, the queue's own average talk time) and the
configuration ([announce]), free of I/O so unit tests cover them.

The expected wait is the observed rate's: ``position × average talk time / agents able to
answer`` (agents signed in and not paused). Asterisk keeps the average talk time per queue
(QueueStatus TalkTime, a moving average of answered calls); until a queue has answered a call,
``aht_s`` stands in. With no agent able to answer there is no wait to promise: nothing is said
(the caller is offered the province pool, a callback or a message instead, item 4)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.config import AnnounceSection


@dataclass(frozen=True)
class QueueView:
    """One caller in one queue, from Asterisk's QueueStatus."""

    position: int  # 0: not (or no longer) in the queue
    agents: int  # members signed in and not paused
    talk_time_s: float  # Asterisk's average talk time of the queue (0: none yet)


def expected_wait_s(view: QueueView, aht_s: float) -> float | None:
    """Seconds until an agent is expected to answer; None when nobody can."""
    if view.position <= 0 or view.agents <= 0:
        return None
    aht = view.talk_time_s if view.talk_time_s > 0 else aht_s
    return view.position * aht / view.agents


def minutes(seconds: float) -> int:
    """As said to the caller: whole minutes, at least one."""
    return max(1, math.ceil(seconds / 60))


@dataclass(frozen=True)
class Announcement:
    text: str
    position: int
    expected_s: float


def announcement(cfg: AnnounceSection, view: QueueView, *, at_entry: bool
                 ) -> Announcement | None:
    """What to say now; None: nothing. At entry only a wait over the threshold is worth
    saying; at the later looks (every ``every_s``) it is said anyway."""
    expected = expected_wait_s(view, cfg.aht_s)
    if expected is None:
        return None
    if at_entry and expected < cfg.threshold_s:
        return None
    text = cfg.text.format(position=view.position, minutes=minutes(expected))
    return Announcement(text, view.position, expected)


def next_due(cfg: AnnounceSection, *, queued_at: float, welcome_s: float, told: int,
             last_at: float | None) -> float | None:
    """When to look again: at entry (after the prompt the caller hears first), then every
    ``every_s`` seconds after the last look; None: never again."""
    if told == 0 and last_at is None:
        return queued_at + welcome_s + cfg.first_after_s
    if cfg.every_s <= 0:
        return None
    return (last_at or queued_at) + cfg.every_s


# Device states (Asterisk's ast_device_state) of a member who could answer: not in use, in
# use, busy, ringing, ring in use, on hold. Unknown, invalid and unavailable cannot.
ABLE = {1, 2, 3, 6, 7, 8}


def queue_view(entries: list[dict[str, str]], members: list[dict[str, str]],
               params: dict[str, str], channel: str) -> QueueView:
    """The caller's view from QueueStatus's QueueEntry, QueueMember and QueueParams events."""
    position = 0
    for e in entries:
        if e.get("Channel") == channel:
            position = int(e.get("Position") or 0)
    agents = 0
    for m in members:
        try:
            status = int(m.get("Status") or 0)
        except ValueError:
            status = 0
        if m.get("Paused") not in ("1", "true") and status in ABLE:
            agents += 1
    try:
        talk = float(params.get("TalkTime") or 0)
    except ValueError:
        talk = 0.0
    return QueueView(position, agents, talk)
