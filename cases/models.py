"""Case records (工单) on SQLAlchemy 2.

A case is made for every inbound call. Its timeline holds *facts* with natural keys built from
Asterisk's own ids ("queued:nanjing-general", "ringing:<agent channel uniqueid>"), so the same
fact learnt twice — live from AMI, again from the resync after a reconnect, again from
Asterisk's CEL after an outage — is stored once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false

from common.db import Base, utcnow


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    # "<node>:<linkedid>": one case per call, whichever source sees the call first.
    call_id: Mapped[str | None] = mapped_column(String(96), unique=True)
    node: Mapped[str | None] = mapped_column(String(32))

    # Personal data: encrypted, looked up by keyed hash, shown masked.
    caller_enc: Mapped[str | None] = mapped_column(Text)
    caller_hash: Mapped[str | None] = mapped_column(String(40), index=True)
    caller_masked: Mapped[str | None] = mapped_column(String(32))
    # When the retention job blanked the case's personal fields ([privacy]
    # case_personal_retention_days); the anonymous figures stay.
    personal_purged_at: Mapped[datetime | None] = mapped_column()

    city: Mapped[str | None] = mapped_column(String(32), index=True)
    dialed_number: Mapped[str | None] = mapped_column(String(32))
    trunk: Mapped[str | None] = mapped_column(String(32))
    menu_key: Mapped[str | None] = mapped_column(String(4))
    route_queue: Mapped[str | None] = mapped_column(String(64))
    route_reasons: Mapped[str | None] = mapped_column(Text)
    route_source: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)

    queue: Mapped[str | None] = mapped_column(String(64), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(16), index=True)
    arrived_at: Mapped[datetime | None] = mapped_column()
    queued_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    hangup_by: Mapped[str | None] = mapped_column(String(16))
    # answered | abandoned | dropped (ended before the queue) | unknown
    outcome: Mapped[str | None] = mapped_column(String(16), index=True)
    # call: active -> ended. Work on the case (form, dispatch) has its own fields.
    call_state: Mapped[str] = mapped_column(String(16), default="active", index=True)
    # Where the case was first learnt: live (AMI/FastAGI), resync (after reconnect), cel.
    source: Mapped[str] = mapped_column(String(16), default="live")
    # Up across an AMI reconnect and ended live: what the gap hid (an answer) may be missing
    # until the CEL pass has read the call to its end (telephony/calls/cel.py).
    cel_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the work on the case was finished (办结); until then the case is open, and a caller
    # with an open case is a repeat caller (queueing/routing/lookups.py).
    closed_at: Mapped[datetime | None] = mapped_column()
    # 一键评价 after the call (telephony/calls/rating.py): satisfied | basic | unsatisfied |
    # none (answered, not rated); None: not answered, or not ended yet.
    rating: Mapped[str | None] = mapped_column(String(16), index=True)
    rated_at: Mapped[datetime | None] = mapped_column()

    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="case", order_by="CallEvent.at", cascade="all, delete-orphan"
    )
    legs: Mapped[list[CallLeg]] = relationship(
        back_populates="case", order_by="CallLeg.started_at", cascade="all, delete-orphan"
    )
    # The line that handed the call over to 12345 ("119"), for calls on a handover trunk.
    referred_by: Mapped[str | None] = mapped_column(String(20), index=True)
    # Transfers to branch centers and emergency lines; loaded with the case.
    transfers: Mapped[list[TransferRecord]] = relationship(
        back_populates="case", order_by="TransferRecord.dialed_at",
        cascade="all, delete-orphan", lazy="selectin"
    )


class CallEvent(Base):
    """One fact on a case's timeline."""

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("case_id", "key", name="uq_call_events_case_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column()
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(16), default="live")

    case: Mapped[Case] = relationship(back_populates="events")


class CallLeg(Base):
    """A channel that took part in the call: the caller, an agent, a transfer destination."""

    __tablename__ = "call_legs"
    __table_args__ = (UniqueConstraint("case_id", "uniqueid", name="uq_call_legs_case_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    uniqueid: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))  # caller | agent | transfer
    party: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(24))
    hangup_cause: Mapped[int | None] = mapped_column(Integer)

    case: Mapped[Case] = relationship(back_populates="legs")


class TransferRecord(Base):
    """One transfer leg: the case's caller offered to a branch center or an emergency line.

    ``leg_id`` is the destination channel's uniqueid, which the service gives the channel when
    it dials: the same leg reported live and again after a reconnect is one row."""

    __tablename__ = "transfer_legs"
    __table_args__ = (UniqueConstraint("case_id", "leg_id", name="uq_transfer_legs_case_leg"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    leg_id: Mapped[str] = mapped_column(String(96))
    destination: Mapped[str] = mapped_column(String(32), index=True)  # config id: "tax"
    kind: Mapped[str | None] = mapped_column(String(16))  # branch_center | emergency_line
    number: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str | None] = mapped_column(String(16))  # consult | emergency
    initiator: Mapped[str | None] = mapped_column(String(16))  # the agent who started it
    channel: Mapped[str | None] = mapped_column(String(128))
    dialed_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    three_way_at: Mapped[datetime | None] = mapped_column()
    agent_left_at: Mapped[datetime | None] = mapped_column()
    # left (the agent's action) | hung_up (the softphone hung up) | lost (the softphone died)
    agent_left_how: Mapped[str | None] = mapped_column(String(16))
    ended_at: Mapped[datetime | None] = mapped_column()
    # answered | busy | no_answer | failed | caller_hung_up | cancelled
    outcome: Mapped[str | None] = mapped_column(String(24), index=True)
    # After an answer: who ended the leg (destination | caller | agent | system).
    ended_by: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    # The caller stayed with the destination after the agent left.
    handed_off: Mapped[bool] = mapped_column(default=False)

    case: Mapped[Case] = relationship(back_populates="transfers")


class CaseCounter(Base):
    """Readable case numbers: day + sequence, e.g. 20261122000042."""

    __tablename__ = "case_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)


class NodeCheckpoint(Base):
    """How far the service has read each node's CEL (Asterisk's own call records)."""

    __tablename__ = "node_checkpoints"

    node: Mapped[str] = mapped_column(String(32), primary_key=True)
    cel_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CaseLink(Base):
    """Two cases about the same matter, e.g. a repeat caller's new case and the open one."""

    __tablename__ = "case_links"
    __table_args__ = (UniqueConstraint("case_id", "linked_case_id", name="uq_case_links_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    linked_case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                                index=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallerProfile(Base):
    """A registered caller who goes first (绿色通道): elderly or disabled. Found by the keyed
    hash of the number; the number itself is encrypted."""

    __tablename__ = "caller_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    caller_hash: Mapped[str] = mapped_column(String(40), unique=True)
    caller_enc: Mapped[str] = mapped_column(Text)
    caller_masked: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(16))  # elderly | disabled
    registered_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


Index("ix_cases_node_state", Case.node, Case.call_state)
Index("ix_cases_caller_created", Case.caller_hash, Case.created_at)
