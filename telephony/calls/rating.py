"""一键评价: the caller's one key after the agent hung up first, as the case keeps it.

The dialplan ([hotline-rating]) sets ``HOTLINE_RATED`` to ``key:<what was pressed>`` and writes
the same key as a CEL user event; the tracker (live) and the CEL reconciler (after an outage)
turn either into one ``rated`` fact (natural key ``rated``: the first source wins, the others
are duplicates). An answered call that ends without one is ``none``: the caller hung up first
or during the prompt, pressed nothing or another key, or was never asked (a transfer)."""

from __future__ import annotations

from typing import Final

NOT_RATED: Final = "none"
KEYS: Final = {"1": "satisfied", "2": "basic", "3": "unsatisfied"}
RATINGS: Final = (*KEYS.values(), NOT_RATED)


def rating_of(key: str) -> str:
    """The rating for what the caller pressed (``key:1`` from the dialplan, or ``1``)."""
    return KEYS.get(key.removeprefix("key:").strip(), NOT_RATED)


def unrated_why(hangup_by: str | None) -> str:
    """Why an answered call has no rating: the agent hung up first (the caller was asked and
    left or pressed nothing during the prompt), the caller first, or neither (not asked)."""
    if hangup_by == "agent":
        return "no_key"
    if hangup_by == "caller":
        return "caller_hung_up"
    return "not_asked"
