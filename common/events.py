"""AMI events turned into typed domain events.

Only the events the hotline acts on get a type; everything else is an ``OtherEvent`` that
handlers may ignore. An event missing a field its type needs becomes a ``MalformedEvent``
(logged, counted, never a crash).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from common.privacy import mask_number


class MissingField(KeyError):
    pass


def _get(fields: Mapping[str, str], key: str) -> str:
    try:
        value = fields[key]
    except KeyError:
        raise MissingField(key) from None
    if isinstance(value, list):
        # A header an event has once, twice: two messages run together, or garbage.
        raise MissingField(f"{key} (repeated)")
    return str(value)


def _opt(fields: Mapping[str, str], key: str, default: str = "") -> str:
    value = fields.get(key)
    if value is None:
        return default
    if isinstance(value, list):
        raise MissingField(f"{key} (repeated)")
    return str(value)


def _num(fields: Mapping[str, str], key: str) -> float:
    raw = _opt(fields, key, "0") or "0"
    try:
        return float(raw)
    except ValueError:
        raise MissingField(f"{key} (not a number: {raw[:20]!r})") from None


def _caller(value: str) -> str:
    return "" if value in ("", "<unknown>") else value


@dataclass(frozen=True)
class Channel:
    """A channel snapshot as AMI reports it (the fields after an optional prefix)."""

    name: str
    uniqueid: str
    linkedid: str
    state: str = ""
    caller_num: str = field(default="", repr=False)
    caller_name: str = field(default="", repr=False)
    connected_num: str = field(default="", repr=False)
    context: str = ""
    exten: str = ""

    @classmethod
    def parse(cls, f: Mapping[str, str], prefix: str = "") -> Channel:
        return cls(
            name=_get(f, prefix + "Channel"),
            uniqueid=_get(f, prefix + "Uniqueid"),
            linkedid=_opt(f, prefix + "Linkedid") or _get(f, prefix + "Uniqueid"),
            state=_opt(f, prefix + "ChannelStateDesc"),
            caller_num=_caller(_opt(f, prefix + "CallerIDNum")),
            caller_name=_caller(_opt(f, prefix + "CallerIDName")),
            connected_num=_caller(_opt(f, prefix + "ConnectedLineNum")),
            context=_opt(f, prefix + "Context"),
            exten=_opt(f, prefix + "Exten"),
        )

    @property
    def endpoint(self) -> str:
        """PJSIP/1001-00000003 -> 1001; Local/... -> ''."""
        tech, _, rest = self.name.partition("/")
        if tech != "PJSIP":
            return ""
        return rest.rsplit("-", 1)[0]

    def __repr__(self) -> str:
        return (f"Channel({self.name}, uid={self.uniqueid}, linked={self.linkedid}, "
                f"caller={mask_number(self.caller_num)}, ctx={self.context})")


@dataclass(frozen=True)
class DomainEvent:
    node: str
    received_at: float = field(default_factory=time.time, compare=False, kw_only=True)
    ami_name: ClassVar[str] = ""


@dataclass(frozen=True)
class OtherEvent(DomainEvent):
    name: str = ""
    fields: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class MalformedEvent(DomainEvent):
    name: str = ""
    problem: str = ""


# -- connection life cycle (made by the client, not by Asterisk) ------------------------

@dataclass(frozen=True)
class Connected(DomainEvent):
    """AMI (re)connected and logged in; ``snapshot`` is Asterisk's state right then."""

    snapshot: Snapshot | None = None
    reconnect: bool = False


@dataclass(frozen=True)
class Disconnected(DomainEvent):
    reason: str = ""


@dataclass(frozen=True)
class Snapshot:
    """What Asterisk has right now: live channels, callers in queues, queue members."""

    channels: list[ChannelStatus]
    entries: list[QueueEntry]
    members: list[QueueMember]
    taken_at: float = field(default_factory=time.time)
    # When the first list was asked for: what we learnt after it may be missing from it.
    started_at: float = 0.0


@dataclass(frozen=True)
class ChannelStatus:
    channel: Channel
    application: str
    application_data: str
    duration_s: float
    bridge_id: str


@dataclass(frozen=True)
class QueueEntry:
    queue: str
    position: int
    wait_s: float
    channel: Channel


@dataclass(frozen=True)
class QueueMember:
    queue: str
    interface: str
    member_name: str
    penalty: int
    paused: bool
    status: int
    in_call: bool
    paused_reason: str = ""
    membership: str = ""


# -- Asterisk events --------------------------------------------------------------------

@dataclass(frozen=True)
class Newchannel(DomainEvent):
    ami_name = "Newchannel"
    channel: Channel = field(kw_only=True)

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> Newchannel:
        return cls(node, channel=Channel.parse(f))


@dataclass(frozen=True)
class Hangup(DomainEvent):
    ami_name = "Hangup"
    channel: Channel = field(kw_only=True)
    cause: int = 0
    cause_text: str = ""

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> Hangup:
        return cls(node, channel=Channel.parse(f), cause=int(_num(f, "Cause")),
                   cause_text=_opt(f, "Cause-txt"))


@dataclass(frozen=True)
class VarSet(DomainEvent):
    ami_name = "VarSet"
    channel: Channel = field(kw_only=True)
    variable: str = ""
    value: str = ""

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> VarSet:
        return cls(node, channel=Channel.parse(f), variable=_get(f, "Variable"),
                   value=_opt(f, "Value"))


@dataclass(frozen=True)
class QueueCallerJoin(DomainEvent):
    ami_name = "QueueCallerJoin"
    channel: Channel = field(kw_only=True)
    queue: str = ""
    position: int = 0

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> QueueCallerJoin:
        return cls(node, channel=Channel.parse(f), queue=_get(f, "Queue"),
                   position=int(_num(f, "Position")))


@dataclass(frozen=True)
class QueueCallerLeave(DomainEvent):
    ami_name = "QueueCallerLeave"
    channel: Channel = field(kw_only=True)
    queue: str = ""

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> QueueCallerLeave:
        return cls(node, channel=Channel.parse(f), queue=_get(f, "Queue"))


@dataclass(frozen=True)
class QueueCallerAbandon(DomainEvent):
    ami_name = "QueueCallerAbandon"
    channel: Channel = field(kw_only=True)
    queue: str = ""
    hold_time: float = 0.0

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> QueueCallerAbandon:
        return cls(node, channel=Channel.parse(f), queue=_get(f, "Queue"),
                   hold_time=_num(f, "HoldTime"))


@dataclass(frozen=True)
class _AgentEvent(DomainEvent):
    channel: Channel = field(kw_only=True)  # the caller
    agent_channel: Channel | None = None
    queue: str = ""
    member_name: str = ""
    interface: str = ""


@dataclass(frozen=True)
class AgentCalled(_AgentEvent):
    ami_name = "AgentCalled"

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> AgentCalled:
        return cls(node, channel=Channel.parse(f), agent_channel=_dest(f),
                   queue=_get(f, "Queue"), member_name=_opt(f, "MemberName"),
                   interface=_get(f, "Interface"))


@dataclass(frozen=True)
class AgentConnect(_AgentEvent):
    ami_name = "AgentConnect"
    hold_time: float = 0.0
    ring_time: float = 0.0

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> AgentConnect:
        return cls(node, channel=Channel.parse(f), agent_channel=_dest(f),
                   queue=_get(f, "Queue"), member_name=_opt(f, "MemberName"),
                   interface=_get(f, "Interface"), hold_time=_num(f, "HoldTime"),
                   ring_time=_num(f, "RingTime"))


@dataclass(frozen=True)
class AgentComplete(_AgentEvent):
    ami_name = "AgentComplete"
    hold_time: float = 0.0
    talk_time: float = 0.0
    reason: str = ""  # caller | agent | transfer

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> AgentComplete:
        agent = _dest(f)
        if "Channel" in f:
            caller = Channel.parse(f)
        else:
            # Asterisk leaves out the snapshot of a channel already gone when it builds the
            # event (seen in the fault drills: the caller hung up, sometimes the agent's leg
            # too). The agent's leg has the call's linkedid (the inbound caller's uniqueid);
            # without it the tracker finds the call by the agent (CallTracker).
            linked = agent.linkedid if agent is not None else ""
            caller = Channel(name="", uniqueid=linked, linkedid=linked)
        return cls(node, channel=caller, agent_channel=agent,
                   queue=_get(f, "Queue"), member_name=_opt(f, "MemberName"),
                   interface=_get(f, "Interface"), hold_time=_num(f, "HoldTime"),
                   talk_time=_num(f, "TalkTime"), reason=_opt(f, "Reason"))


@dataclass(frozen=True)
class AgentRingNoAnswer(_AgentEvent):
    ami_name = "AgentRingNoAnswer"
    ring_time: float = 0.0

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> AgentRingNoAnswer:
        return cls(node, channel=Channel.parse(f), agent_channel=_dest(f),
                   queue=_get(f, "Queue"), member_name=_opt(f, "MemberName"),
                   interface=_get(f, "Interface"), ring_time=_num(f, "RingTime") / 1000)


def _dest(f: Mapping[str, str]) -> Channel | None:
    return Channel.parse(f, "Dest") if "DestChannel" in f else None


@dataclass(frozen=True)
class QueueMemberEvent(DomainEvent):
    """QueueMemberStatus / Added / Removed / Pause / Penalty / Ringinuse."""

    kind: str = ""
    member: QueueMember = field(kw_only=True)

    @classmethod
    def parse_named(cls, node: str, name: str, f: Mapping[str, str]) -> QueueMemberEvent:
        return cls(node, kind=name.removeprefix("QueueMember"), member=parse_member(f))


def parse_member(f: Mapping[str, str]) -> QueueMember:
    return QueueMember(
        queue=_get(f, "Queue"),
        interface=_opt(f, "Interface") or _opt(f, "Location") or _opt(f, "StateInterface"),
        member_name=_opt(f, "MemberName") or _opt(f, "Name"),
        penalty=int(_num(f, "Penalty")),
        paused=_opt(f, "Paused") == "1",
        status=int(_num(f, "Status")),
        in_call=_opt(f, "InCall") == "1",
        paused_reason=_opt(f, "PausedReason") or _opt(f, "Reason"),
        membership=_opt(f, "Membership"),
    )


@dataclass(frozen=True)
class BridgeEnter(DomainEvent):
    ami_name = "BridgeEnter"
    channel: Channel = field(kw_only=True)
    bridge_id: str = ""
    bridge_type: str = ""
    swap_uniqueid: str = ""

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> BridgeEnter:
        return cls(node, channel=Channel.parse(f), bridge_id=_get(f, "BridgeUniqueid"),
                   bridge_type=_opt(f, "BridgeTechnology"),
                   swap_uniqueid=_opt(f, "SwapUniqueid"))


@dataclass(frozen=True)
class BridgeLeave(DomainEvent):
    ami_name = "BridgeLeave"
    channel: Channel = field(kw_only=True)
    bridge_id: str = ""

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> BridgeLeave:
        return cls(node, channel=Channel.parse(f), bridge_id=_get(f, "BridgeUniqueid"))


@dataclass(frozen=True)
class DialBegin(DomainEvent):
    ami_name = "DialBegin"
    channel: Channel | None = None
    dest: Channel = field(kw_only=True)
    dial_string: str = ""

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> DialBegin:
        return cls(node, channel=Channel.parse(f) if "Channel" in f else None,
                   dest=Channel.parse(f, "Dest"), dial_string=_opt(f, "DialString"))


@dataclass(frozen=True)
class DialEnd(DomainEvent):
    ami_name = "DialEnd"
    channel: Channel | None = None
    dest: Channel = field(kw_only=True)
    status: str = ""

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> DialEnd:
        return cls(node, channel=Channel.parse(f) if "Channel" in f else None,
                   dest=Channel.parse(f, "Dest"), status=_opt(f, "DialStatus"))


@dataclass(frozen=True)
class UserEvent(DomainEvent):
    ami_name = "UserEvent"
    name: str = ""
    channel: Channel | None = None
    fields: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> UserEvent:
        return cls(node, name=_get(f, "UserEvent"),
                   channel=Channel.parse(f) if "Channel" in f else None, fields=_own(f))


@dataclass(frozen=True)
class FullyBooted(DomainEvent):
    ami_name = "FullyBooted"

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> FullyBooted:
        return cls(node)


@dataclass(frozen=True)
class Shutdown(DomainEvent):
    ami_name = "Shutdown"
    restart: bool = False

    @classmethod
    def parse(cls, node: str, f: Mapping[str, str]) -> Shutdown:
        return cls(node, restart=_opt(f, "Restart") == "True")


_PARSERS = {
    c.ami_name: c.parse
    for c in (Newchannel, Hangup, VarSet, QueueCallerJoin, QueueCallerLeave, QueueCallerAbandon,
              AgentCalled, AgentConnect, AgentComplete, AgentRingNoAnswer, BridgeEnter,
              BridgeLeave, DialBegin, DialEnd, UserEvent, FullyBooted, Shutdown)
}
_MEMBER_EVENTS = {"QueueMemberStatus", "QueueMemberAdded", "QueueMemberRemoved",
                  "QueueMemberPause", "QueueMemberPenalty", "QueueMemberRinginuse"}


def _own(fields: Mapping[str, str]) -> dict[str, str]:
    # The reader hands each event its own fresh dict (telephony.ami.parse_fields): no copy.
    return fields if type(fields) is dict else dict(fields)


def parse_event(node: str, fields: Mapping[str, str]) -> DomainEvent:
    """One AMI event (its headers) to a domain event. Never raises."""
    name = fields.get("Event")
    if isinstance(name, list):
        return MalformedEvent(node, name=str(name[0])[:40], problem="Event header repeated")
    if not name:
        return MalformedEvent(node, name="", problem="no Event header")
    try:
        if name in _MEMBER_EVENTS:
            event: DomainEvent = QueueMemberEvent.parse_named(node, name, fields)
        else:
            parser = _PARSERS.get(name)
            event = (OtherEvent(node, name=name, fields=_own(fields)) if parser is None
                     else parser(node, fields))
        # When it happened, by Asterisk (timestampevents = yes), not when it was handled: a
        # service behind the event stream still records true waits and talk times.
        stamp = fields.get("Timestamp")
        if stamp:
            with contextlib.suppress(ValueError, TypeError):
                object.__setattr__(event, "received_at", float(stamp))  # just made, not shared
        return event
    except MissingField as exc:
        return MalformedEvent(node, name=name, problem=f"missing or bad field {exc.args[0]}")
    except (ValueError, TypeError) as exc:
        return MalformedEvent(node, name=name, problem=str(exc)[:200])
