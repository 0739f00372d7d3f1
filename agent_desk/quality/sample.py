"""Which calls of a day are inspected (质检抽样): a pure decision, reproducible.

Per agent, every answered call a rule picks (a long call, an unsatisfied rating, a complaint,
a transfer to an emergency line), at most ``max_by_rules`` of them (longest first, then by
case number), plus ``random_per_agent`` calls drawn at random from the rest. The draw's seed
is the day and the agent, so drawing the same day again picks the same calls: the sample
is a function of the day's facts, and storing it twice stores it once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

RULES = ("long_call", "unsatisfied", "complaint", "emergency_transfer")


@dataclass(frozen=True)
class Rules:
    random_per_agent: int = 2
    long_call_s: float = 600.0
    max_by_rules: int = 5


@dataclass(frozen=True)
class CallSeen:
    """An answered call of the day, as the sample sees it."""

    case_id: int
    number: str
    agent: str
    talk_s: float
    rating: str | None = None
    category: str | None = None  # the case form's 诉求类型 (complaint, …)
    emergency_transfer: bool = False


@dataclass(frozen=True)
class Pick:
    case_id: int
    agent: str
    reasons: tuple[str, ...]


def reasons_of(call: CallSeen, rules: Rules) -> tuple[str, ...]:
    out = []
    if call.talk_s >= rules.long_call_s:
        out.append("long_call")
    if call.rating == "unsatisfied":
        out.append("unsatisfied")
    if call.category == "complaint":
        out.append("complaint")
    if call.emergency_transfer:
        out.append("emergency_transfer")
    return tuple(out)


def decide(day: str, calls: list[CallSeen], rules: Rules) -> list[Pick]:
    """The day's sample (``day``: the local date, part of the random draw's seed)."""
    by_agent: dict[str, list[CallSeen]] = {}
    for c in calls:
        by_agent.setdefault(c.agent, []).append(c)
    picks: list[Pick] = []
    for agent in sorted(by_agent):
        mine = sorted(by_agent[agent], key=lambda c: c.number)
        flagged = [(c, r) for c in mine if (r := reasons_of(c, rules))]
        flagged.sort(key=lambda cr: (-cr[0].talk_s, cr[0].number))
        chosen = flagged[: rules.max_by_rules]
        taken = {c.case_id for c, _ in chosen}
        rest = [c for c in mine if c.case_id not in taken]
        rng = random.Random(f"{day}:{agent}")
        drawn = rng.sample(rest, min(rules.random_per_agent, len(rest)))
        picks += [Pick(c.case_id, agent, r) for c, r in chosen]
        picks += [Pick(c.case_id, agent, ("random",))
                  for c in sorted(drawn, key=lambda c: c.number)]
    return picks
