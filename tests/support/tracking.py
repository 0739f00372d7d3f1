"""The call tracker on its own (pure logic): fed AMI events by hand, its facts collected."""

from __future__ import annotations

from common.facts import CallFact
from telephony.calls.tracker import CallTracker


def tracker_with_facts(node: str = "node1") -> tuple[CallTracker, list[CallFact]]:
    """A tracker on ``node`` and the list the facts it emits go to."""
    facts: list[CallFact] = []

    async def sink(fact: CallFact) -> None:
        facts.append(fact)

    return CallTracker(node, [sink]), facts
