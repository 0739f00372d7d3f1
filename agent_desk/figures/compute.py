"""Agent figures from facts, pure (no I/O): what each agent did in a period, and its sums
per team and city (docs/agent-figures.md).

Inputs are the facts of the period as the store reads them (agent_desk/figures/store.py):
the agent legs of calls (answered or rung unanswered), transfers the agent started, the
ratings of the calls the agent answered, the presence changes (sign-in, pause with its
reason, ready) and the quality scores. Each is anchored on one instant, so a period counts it
once:

- handled: agent legs answered in the period; talk: each leg's answer to its end (or the
  call's end), counted whole on the period of its answer;
- wrap-up: time paused with reason ``after_call_work`` inside the period;
- paused by reason: time paused inside the period, per reason (wrap-up included);
- signed in: time signed in inside the period;
- occupancy = (talk + wrap-up) / (signed in − paused for other reasons than wrap-up): the
  share of the time the agent was available that went on calls;
- missed rings: agent legs rung in the period and not answered (ring no answer);
- transfers: transfer legs the agent dialled in the period (to emergency lines apart);
- 满意率 = (满意 + 基本满意) / rated calls, of the calls the agent answered in the period;
- quality: the mean of the 质检 scores of the agent's calls answered in the period (a score
  counts on its call's day, whenever it was given).

Sums per team or city add the numerators and denominators of their agents, then divide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

AFTER_CALL_WORK = "after_call_work"
RATED = ("satisfied", "basic", "unsatisfied")
GOOD = ("satisfied", "basic")


@dataclass(frozen=True)
class AnsweredLeg:
    agent: str
    answered_at: datetime
    talk_s: float
    rating: str | None = None  # the call's 一键评价 (None: not rated yet)


@dataclass(frozen=True)
class MissedRing:
    agent: str
    at: datetime


@dataclass(frozen=True)
class TransferMade:
    agent: str
    at: datetime
    kind: str | None  # branch_center | emergency_line


@dataclass(frozen=True)
class StateChange:
    """signed_in | signed_out | paused (with its reason) | ready."""

    agent: str
    at: datetime
    kind: str
    reason: str = ""


@dataclass(frozen=True)
class QaMark:
    agent: str
    at: datetime
    score: float  # 0..100


@dataclass
class Figures:
    """Numerators and denominators; the rates are computed from them (``as_dict``)."""

    handled: int = 0
    talk_s: float = 0.0
    wrap_s: float = 0.0
    paused_s: dict[str, float] = field(default_factory=dict)
    signed_in_s: float = 0.0
    missed: int = 0
    transfers: int = 0
    emergency_transfers: int = 0
    rated: int = 0
    satisfied: int = 0
    qa_count: int = 0
    qa_sum: float = 0.0
    agents: int = 0

    def add(self, other: Figures) -> None:
        for name in ("handled", "talk_s", "wrap_s", "signed_in_s", "missed", "transfers",
                     "emergency_transfers", "rated", "satisfied", "qa_count", "qa_sum",
                     "agents"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, s in other.paused_s.items():
            self.paused_s[reason] = self.paused_s.get(reason, 0.0) + s

    @property
    def available_s(self) -> float:
        other_pauses = sum(s for r, s in self.paused_s.items() if r != AFTER_CALL_WORK)
        return max(0.0, self.signed_in_s - other_pauses)

    @property
    def occupancy(self) -> float | None:
        if self.available_s <= 0:
            return None
        return min(1.0, (self.talk_s + self.wrap_s) / self.available_s)

    def as_dict(self) -> dict[str, Any]:
        h = self.handled
        return {
            "handled": h, "talk_s": round(self.talk_s, 1), "wrap_s": round(self.wrap_s, 1),
            "avg_talk_s": round(self.talk_s / h, 1) if h else None,
            "avg_wrap_s": round(self.wrap_s / h, 1) if h else None,
            "paused_s": {r: round(s, 1) for r, s in sorted(self.paused_s.items())},
            "signed_in_s": round(self.signed_in_s, 1),
            "occupancy": None if self.occupancy is None else round(self.occupancy, 4),
            "missed": self.missed, "transfers": self.transfers,
            "emergency_transfers": self.emergency_transfers,
            "rated": self.rated, "satisfied": self.satisfied,
            "satisfaction_rate": round(self.satisfied / self.rated, 4) if self.rated else None,
            "qa_count": self.qa_count,
            "qa_avg": round(self.qa_sum / self.qa_count, 1) if self.qa_count else None,
        }


def _inside(at: datetime, start: datetime, end: datetime) -> bool:
    return start <= at < end


def presence_time(changes: Iterable[StateChange], start: datetime, end: datetime
                  ) -> dict[str, tuple[float, dict[str, float]]]:
    """Per agent: seconds signed in and seconds paused per reason, inside [start, end).

    ``changes`` may begin before ``start`` (the state at the period's start follows from the
    last change before it). A pause while signed out does not count; signing out ends a pause.
    """
    out: dict[str, tuple[float, dict[str, float]]] = {}
    by_agent: dict[str, list[StateChange]] = {}
    for change in changes:
        by_agent.setdefault(change.agent, []).append(change)
    for agent, seq in by_agent.items():
        seq.sort(key=lambda x: x.at)
        signed = False
        pause: str | None = None
        since = start
        signed_s = 0.0
        paused: dict[str, float] = {}
        steps: list[StateChange | None] = [*(x for x in seq if x.at < end), None]
        for c in steps:
            until = end if c is None else c.at
            span = (min(until, end) - max(since, start)).total_seconds()
            if signed and span > 0:
                signed_s += span
                if pause is not None:
                    paused[pause] = paused.get(pause, 0.0) + span
            if c is None:
                break
            since = c.at
            if c.kind == "signed_in":
                signed = True
            elif c.kind == "signed_out":
                signed, pause = False, None
            elif c.kind == "paused":
                pause = c.reason or "unspecified"
            elif c.kind == "ready":
                pause = None
        out[agent] = (signed_s, paused)
    return out


def agent_figures(start: datetime, end: datetime, *, answered: Iterable[AnsweredLeg] = (),
                  missed: Iterable[MissedRing] = (), transfers: Iterable[TransferMade] = (),
                  changes: Iterable[StateChange] = (), scores: Iterable[QaMark] = ()
                  ) -> dict[str, Figures]:
    """Each agent's figures over [start, end)."""
    out: dict[str, Figures] = {}

    def of(agent: str) -> Figures:
        f = out.get(agent)
        if f is None:
            f = out[agent] = Figures(agents=1)
        return f

    for leg in answered:
        if not _inside(leg.answered_at, start, end):
            continue
        f = of(leg.agent)
        f.handled += 1
        f.talk_s += max(0.0, leg.talk_s)
        if leg.rating in RATED:
            f.rated += 1
            f.satisfied += leg.rating in GOOD
    for ring in missed:
        if _inside(ring.at, start, end):
            of(ring.agent).missed += 1
    for t in transfers:
        if _inside(t.at, start, end):
            f = of(t.agent)
            f.transfers += 1
            f.emergency_transfers += t.kind == "emergency_line"
    for agent, (signed_s, paused) in presence_time(changes, start, end).items():
        if signed_s <= 0 and agent not in out:
            continue
        f = of(agent)
        f.signed_in_s += signed_s
        for reason, s in paused.items():
            f.paused_s[reason] = f.paused_s.get(reason, 0.0) + s
        f.wrap_s += paused.get(AFTER_CALL_WORK, 0.0)
    for mark in scores:
        if _inside(mark.at, start, end):
            f = of(mark.agent)
            f.qa_count += 1
            f.qa_sum += mark.score
    return out


def rolled_up(per_agent: dict[str, Figures], group_of: Callable[[str], str]
              ) -> dict[str, Figures]:
    """The agents' figures summed per group (a team, a city)."""
    out: dict[str, Figures] = {}
    for agent, f in per_agent.items():
        out.setdefault(group_of(agent), Figures()).add(f)
    return out
