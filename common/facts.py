"""Call facts: what happened to a call, from one source, keyed by Asterisk's own ids.

Every feature that records or reacts to calls (cases, live state, routing, callbacks) speaks
this vocabulary; the call tracker, the CEL reconciler, the router and call control produce it.
Facts carry natural keys, so a sink can apply the same fact twice without counting it twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from common import events as ev

# Where callers' calls enter the dialplan: carriers' trunks, hand-overs, and the
# sign-language page's video calls (docs/webrtc.md).
INBOUND_CONTEXTS = ("from-carrier", "from-handover", "from-sign-language")
TRUNK_PREFIX = "trunk-"


def call_id_of(node: str, linkedid: str) -> str:
    return f"{node}:{linkedid}"


@dataclass(frozen=True)
class CallFact:
    """Something that happened to a call, from one source (live | resync | cel | router)."""

    kind: str
    call_id: str
    node: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)
    source: str = "live"

    @property
    def key(self) -> str:
        """The fact's identity on the case's timeline."""
        d = self.data
        if self.kind in ("queued",):
            return f"{self.kind}:{d.get('queue', '')}"
        if self.kind in ("ringing", "ring_noanswer", "answered", "leg_ended", "agent_left"):
            return f"{self.kind}:{d.get('uniqueid', '')}"
        if self.kind == "widened":  # each widening of a waiting call: "level" or a queue
            return f"{self.kind}:{d.get('step', '')}"
        if self.kind == "linked":  # another case about the same matter
            return f"{self.kind}:{d.get('case', '')}"
        if self.kind.startswith("transfer_"):
            # A transfer leg's id is its destination channel's uniqueid
            # (telephony.transfers.services).
            return f"{self.kind}:{d.get('leg', '')}"
        if self.kind == "announced":  # each position announcement to a waiting caller
            return f"{self.kind}:{d.get('n', '')}"
        if self.kind == "routed" and d.get("key"):
            # Queue first: asked again when a key is pressed while waiting (a new decision).
            return f"{self.kind}:key{d['key']}"
        if self.kind == "requeued":
            return f"{self.kind}:{d.get('uniqueid', '')}"
        return self.kind


# A sink may answer with something: the case store answers with the case it wrote (its
# ``number`` names the call's case, telephony.calls.tracker); the others answer None.
Sink = Callable[[CallFact], Awaitable[object]]


def trunk_of(channel_name: str) -> str | None:
    """PJSIP/trunk-nanjing-00000001 -> nanjing."""
    tech, _, rest = channel_name.partition("/")
    if tech != "PJSIP" or not rest.startswith(TRUNK_PREFIX):
        return None
    return rest[len(TRUNK_PREFIX):].rsplit("-", 1)[0]


def agent_of(interface_or_channel: str) -> str | None:
    """PJSIP/1001 or PJSIP/1001-0000002a -> 1001 (agents' endpoints are their extensions)."""
    tech, _, rest = interface_or_channel.partition("/")
    if tech != "PJSIP":
        return None
    name = rest.split("-", 1)[0] if "-" in rest else rest
    return name if name.isdigit() else None


@dataclass
class SeenSince:
    """Calls as the event stream knows them, where it is newer than a snapshot: ended (the
    snapshot may still list them), up (first heard of after it began), no longer waiting
    (answered), joined a queue after it began (call id -> queue, when)."""

    ended: set[str] = field(default_factory=set)
    up: set[str] = field(default_factory=set)
    not_waiting: set[str] = field(default_factory=set)
    joined: dict[str, tuple[str, float]] = field(default_factory=dict)

    def waiting(self, node: str, snap: ev.Snapshot) -> dict[str, tuple[str, float]]:
        """Who waits in which queue since when: the snapshot's entries, corrected."""
        out = {cid: (e.queue, snap.taken_at - e.wait_s) for e in snap.entries
               if (cid := call_id_of(node, e.channel.linkedid)) not in self.ended
               and cid not in self.not_waiting}
        out.update(self.joined)
        return out
