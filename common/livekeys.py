"""The live state's Redis key schema and channel names, for the writer (telephony.live.state,
its Lua scripts included) and every reader (the wallboard, surge, presence, softphones, the
tests and benchmarks). Nothing else spells these names.

Keys under ``<prefix>``:

* ``call:<call id>`` — hash: one call's state (expires a while after it ended);
* ``calls:<node>`` — set: the calls up on a node;
* ``agent:<agent>`` — hash: an agent's state (state, paused, reason, since, borrowed_by, …);
* ``agent:<agent>:queues`` — hash: the agent's queues, queue → ``{"penalty", "paused"}``;
* ``agents:<node>`` — set: the agents seen on a node;
* ``queue:<queue>:waiting`` — sorted set: waiting calls, scored by when they joined.

Channels: ``events`` (every change, JSON with a ``type``), ``captions`` (live transcripts),
``softphone:<agent>`` (commands from the console to an agent's softphone).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyPattern:
    """A family of keys: ``head + id + tail``. The Lua scripts get head and tail as arguments,
    so they build the same names as Python does."""

    head: str
    tail: str = ""

    def __call__(self, ident: str) -> str:
        return f"{self.head}{ident}{self.tail}"

    @property
    def glob(self) -> str:
        """A SCAN pattern for every key of the family."""
        return f"{self.head}*{self.tail}"


class LiveKeys:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.events = f"{prefix}:events"
        self.captions = f"{prefix}:captions"
        self.softphone = KeyPattern(f"{prefix}:softphone:")
        self.call = KeyPattern(f"{prefix}:call:")
        self.calls = KeyPattern(f"{prefix}:calls:")
        self.agent = KeyPattern(f"{prefix}:agent:")
        self.agent_queues = KeyPattern(f"{prefix}:agent:", ":queues")
        self.agents = KeyPattern(f"{prefix}:agents:")
        self.waiting = KeyPattern(f"{prefix}:queue:", ":waiting")
