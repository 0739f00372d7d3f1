"""What routing decides from: earlier cases of a caller, the green channel. (Queue names and
the skill-level ladder are shared: common/queues.py; who is a member: queueing/membership.)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EarlierCase:
    """A caller's open case from the last days: what makes them a repeat caller."""

    number: str
    case_id: int
    agent_id: str | None
    at: float  # when it was answered (epoch seconds)


# Registered callers who go first (绿色通道).
GREEN_CHANNEL = ("elderly", "disabled")
