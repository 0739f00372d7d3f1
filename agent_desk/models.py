"""The console's tables: users, the case form (工单内容), missed-call callbacks (漏接回拨) and
the audit log of who viewed, exported or changed a case.

They live beside the call records (same metadata, migrations 0005_console, 0007_privacy,
0008_access) without changing the ``cases`` table: the form is one row per case, written
only by the console, each saved state also appended to ``case_form_versions``. What the
agent writes (subject, address, content) is personal data: encrypted with
``common.privacy.PersonalData`` (``*_enc`` columns); the category and the department stay
in clear for statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, utcnow

CATEGORIES = ("consultation", "help", "complaint", "report", "suggestion", "praise")
# auditor: reads the audit log (and nothing else); department: a 承办单位's staff, who see the
# cases dispatched to their department (cases/loop).
# qa: quality inspectors (质检), who score the day's sampled calls (agent_desk/quality).
ROLES = ("agent", "supervisor", "admin", "auditor", "department", "qa")
# A user's city that means every city.
PROVINCE = "province"


class WebUser(Base):
    __tablename__ = "web_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    # The agent's id (SIP extension) for role "agent".
    agent_id: Mapped[str | None] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(64), default="")
    # The city whose cases the user sees (a city id of the configuration), or PROVINCE (every
    # city). None: an agent's own city (the configuration's), the province for other roles.
    city: Mapped[str | None] = mapped_column(String(32))
    disabled: Mapped[bool] = mapped_column(default=False)
    # For role "department": the department (cases/loop/models.py Department.id) they work for.
    department_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # In every session cookie; raised by a password reset, role change or disabling, so the
    # older cookies stop working (0009_sessions). A new user starts at a random value: an id
    # reused after a deletion never matches an old cookie.
    session_version: Mapped[int] = mapped_column(Integer, default=0)


class CaseForm(Base):
    """What the agent wrote on the case."""

    __tablename__ = "case_forms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         unique=True)
    category: Mapped[str | None] = mapped_column(String(16), index=True)
    # Encrypted (PersonalData): free text about the caller and the matter.
    subject_enc: Mapped[str | None] = mapped_column(Text)
    address_enc: Mapped[str | None] = mapped_column(Text)
    content_enc: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str] = mapped_column(String(64), default="")
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CaseFormVersion(Base):
    """Every saved state of a case's form, in order: appended with each change (never
    updated; the retention job blanks ``values_enc`` when the case's personal data is due),
    so what the caller first said is kept whatever later edits say. ``values_enc``: the whole
    form after the change (JSON), encrypted with PersonalData."""

    __tablename__ = "case_form_versions"
    __table_args__ = (UniqueConstraint("case_id", "version", name="uq_case_form_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         index=True)
    version: Mapped[int] = mapped_column(Integer)
    values_enc: Mapped[str | None] = mapped_column(Text)
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)  # which fields changed
    saved_by: Mapped[str] = mapped_column(String(64))
    saved_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallbackTask(Base):
    """A caller who hung up while queued, to be called back."""

    __tablename__ = "callback_tasks"
    __table_args__ = (UniqueConstraint("case_id", name="uq_callback_tasks_case"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    city: Mapped[str | None] = mapped_column(String(32), index=True)
    queue: Mapped[str | None] = mapped_column(String(64))
    # pending -> calling -> done | failed (attempts used up) | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    outcome: Mapped[str | None] = mapped_column(String(24))
    # Why it was made (agent_desk/callbacks/worker.py REASONS); null for tasks before 0020.
    reason: Mapped[str | None] = mapped_column(String(24))
    # Attempts: {at, agent, attempt, event, note_enc}; the agent's note is encrypted.
    log: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FollowUpTask(Base):
    """A 回访 call to make (agent_desk/followup): one per case and loop round (the natural
    key: the worker restarted, or two of them, never make a second one), or one an operator
    asked for. Each attempt is also a fact on the case's timeline."""

    __tablename__ = "follow_up_tasks"
    __table_args__ = (UniqueConstraint("case_id", "round", name="uq_follow_up_tasks_round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=0)
    city: Mapped[str | None] = mapped_column(String(32), index=True)
    # loop (the case reached 待回访) | operator (a supervisor picked the case)
    origin: Mapped[str] = mapped_column(String(16), default="loop")
    requested_by: Mapped[str] = mapped_column(String(64), default="")
    # pending -> calling -> pending (retry) | answered -> done; refused (never dialled),
    # cancelled (the case left 待回访 first)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    next_at: Mapped[datetime | None] = mapped_column(index=True)
    attempt_at: Mapped[datetime | None] = mapped_column()  # the current/last attempt began
    # The last attempt's outcome: answered, no_answer, busy, failed, no_keys, hung_up, lost
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    # The caller's answers (回访): resolved yes/no, satisfied | basic | unsatisfied.
    resolved: Mapped[bool | None] = mapped_column()
    satisfaction: Mapped[str | None] = mapped_column(String(16))
    # How it ended: closed | reopened | recorded (the case was not in 待回访) | unreached
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(256), default="")  # why refused / cancelled
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """One access to or change of a case (or of the audit log itself): who, in which role,
    from where, when, what. Written in the same transaction as the change it records; never
    updated or deleted by the application (case_number, not a foreign key: the entry outlives
    whatever happens to the case)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_case_at", "case_number", "at"),
                      Index("ix_audit_log_user_at", "username", "at"),
                      UniqueConstraint("chain_seq", name="uq_audit_log_chain_seq"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32), index=True)
    case_number: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The hash chain (agent_desk/audit.py seal/verify): position in the chain, the previous
    # entry's hash and SHA-256(previous hash + this entry's content). Empty until sealed.
    chain_seq: Mapped[int | None] = mapped_column(Integer)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditChain(Base):
    """The head of the audit log's hash chain (one row): sealing locks it, so entries are
    chained one process at a time."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    head: Mapped[str] = mapped_column(String(64), default="")


class AgentStateEvent(Base):
    """One change of an agent's presence as the service made it (agent_desk/presence): signed
    in or out, paused with a reason, ready. The agent figures (agent_desk/figures) count
    signed-in and paused time from these, not from the live state. The natural key is the
    agent, the change and its instant in milliseconds: the same change recorded twice (a
    retried write) is one row."""

    __tablename__ = "agent_state_events"
    __table_args__ = (UniqueConstraint("key", name="uq_agent_state_events_key"),
                      Index("ix_agent_state_events_agent_at", "agent_id", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(96))
    agent_id: Mapped[str] = mapped_column(String(16))
    # signed_in | signed_out | paused | ready
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32), default="")
    at: Mapped[datetime] = mapped_column(index=True)
    by: Mapped[str] = mapped_column(String(64), default="")


class QaSample(Base):
    """A call drawn for quality inspection (质检) on its day: at most once per case (the
    natural key), with the rules that picked it (random, long_call, unsatisfied, complaint,
    emergency_transfer)."""

    __tablename__ = "qa_samples"
    __table_args__ = (UniqueConstraint("case_id", name="uq_qa_samples_case"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(16), index=True)
    city: Mapped[str | None] = mapped_column(String(32), index=True)
    day: Mapped[str] = mapped_column(String(10), index=True)  # local date, 2026-12-06
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    drawn_at: Mapped[datetime] = mapped_column(default=utcnow)


class QaScore(Base):
    """An inspector's score of a sampled call: points per checklist item, the total as a
    percentage of the checklist's points, a comment for the agent. One per sample; scoring
    again replaces it (each change is in the audit log)."""

    __tablename__ = "qa_scores"
    __table_args__ = (UniqueConstraint("sample_id", name="uq_qa_scores_sample"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("qa_samples.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(16), index=True)
    items: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    score: Mapped[float] = mapped_column()
    comment: Mapped[str] = mapped_column(Text, default="")
    scored_by: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
