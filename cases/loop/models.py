"""The case loop's tables (migration 0011_case_loop).

- ``departments``: the 承办单位 directory (levels province/city/district/street, functional
  units), seeded from config or CSV and edited by admins;
- ``department_defaults``: the department a 事项 goes to in a city (the dispatch suggestion);
- ``case_work``: one row per case, the loop's state beside the call record (created when the
  case is first classified, dispatched or entered without a call);
- ``case_dispatches``: one row per department per round (主办 lead / 协办 assist);
- ``supervision_orders``: 督办单, opened when a time limit is overdue (one per dispatch and
  kind: the natural key makes the sweep idempotent).

Every change of state is also a fact on the case's timeline (``call_events``, kind
``loop.<action>``), with who, when and why. Free text (notes, replies, reasons that may name
people) is personal data: encrypted in the facts' ``detail`` and in ``reply_enc``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, utcnow

LEVELS = ("province", "city", "district", "street")
CHANNELS = ("phone", "web", "wechat", "miniprogram", "app", "partner", "email", "api")


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))  # LEVELS
    # The city the department serves (a city id of the configuration); None: province-wide.
    city: Mapped[str | None] = mapped_column(String(32), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(32))
    # The functional unit it is, for reports across cities: "人社局", "城管局", "供电公司".
    unit: Mapped[str] = mapped_column(String(32), default="")
    # The department's own system, if it takes cases by webhook (agent_desk/webhooks).
    webhook_url: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DepartmentDefault(Base):
    """The department a 事项 goes to in a city ("" city: any city without its own)."""

    __tablename__ = "department_defaults"

    matter: Mapped[str] = mapped_column(String(128), primary_key=True)
    city: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"))


class CaseWork(Base):
    __tablename__ = "case_work"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="accepted", index=True)
    # Where the case came in: phone (a call), web (市长信箱 form), wechat, miniprogram …
    channel: Mapped[str] = mapped_column(String(16), default="phone")
    city: Mapped[str | None] = mapped_column(String(32), index=True)
    # The county/district the matter is in (hot-topic counts, repeat complaints by place).
    district: Mapped[str | None] = mapped_column(String(32))
    appeal_type: Mapped[str | None] = mapped_column(String(16), index=True)  # 诉求类型
    matter: Mapped[str | None] = mapped_column(String(128), index=True)  # 事项 code
    # Keyed hash of the normalised address (repeat complaints by place; the address itself is
    # on the form, encrypted).
    address_hash: Mapped[str | None] = mapped_column(String(40), index=True)
    # The normalised address the hash was made from (encrypted): a key rotation recomputes
    # the hash from it (cases/loop/retention.py).
    address_enc: Mapped[str | None] = mapped_column(Text)
    round: Mapped[int] = mapped_column(Integer, default=0)
    lead_department: Mapped[str | None] = mapped_column(String(32), index=True)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)  # 重办
    return_count: Mapped[int] = mapped_column(Integer, default=0)  # 退单
    # The current round's time limits (the lead dispatch's), and the 红黄灯 the sweep keeps.
    sign_due_at: Mapped[datetime | None] = mapped_column()
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    light: Mapped[str] = mapped_column(String(8), default="none", index=True)
    supervised: Mapped[bool] = mapped_column(default=False)  # an open 督办单
    # 回访: the caller's answers (satisfied | basic | unsatisfied; resolved yes/no).
    followup_resolved: Mapped[bool | None] = mapped_column()
    followup_satisfaction: Mapped[str | None] = mapped_column(String(16))
    followup_at: Mapped[datetime | None] = mapped_column(index=True)  # reports (0017)
    closed_how: Mapped[str | None] = mapped_column(String(16))  # direct|follow_up|supervisor
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    accepted_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column()
    replied_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    # Raised by every change (optimistic concurrency: the change's fact key carries it).
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Dispatch(Base):
    __tablename__ = "case_dispatches"
    __table_args__ = (
        UniqueConstraint("case_id", "department_id", "round", name="uq_case_dispatches"),
        Index("ix_case_dispatches_dept_state", "department_id", "state"),
        # The extension requests waiting for a supervisor (the 督办 page's list, lists.py):
        # a handful of rows, instead of a scan of every dispatch ever made (0017).
        Index("ix_case_dispatches_extension_requested", "updated_at", "id",
              postgresql_where=text("extension_state = 'requested'"),
              sqlite_where=text("extension_state = 'requested'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         index=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    round: Mapped[int] = mapped_column(Integer, default=1)
    # The case's city, copied (as case_work's is): reports by city read the dispatches of a
    # period without joining every case of the city's history (0017).
    city: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(8), default="lead")  # lead | assist
    # pending (待签收) -> signed -> replied; returned (退单); cancelled
    state: Mapped[str] = mapped_column(String(16), default="pending")
    dispatched_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_by: Mapped[str] = mapped_column(String(64), default="")
    sign_due_at: Mapped[datetime | None] = mapped_column(index=True)  # reports (0017)
    signed_at: Mapped[datetime | None] = mapped_column()
    signed_by: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    returned_at: Mapped[datetime | None] = mapped_column()
    return_reason_enc: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column(index=True)  # reports (0017)
    replied_by: Mapped[str | None] = mapped_column(String(64))
    reply_enc: Mapped[str | None] = mapped_column(Text)  # what was done (encrypted)
    contacted_caller: Mapped[bool | None] = mapped_column()
    # 延期申请: requested -> approved | refused (by a supervisor)
    extension_state: Mapped[str | None] = mapped_column(String(16))
    extension_days: Mapped[int] = mapped_column(Integer, default=0)
    extension_reason_enc: Mapped[str | None] = mapped_column(Text)
    extension_granted_days: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SupervisionOrder(Base):
    """督办单: a time limit overdue (kind "sign": not signed in time; "handle": not replied in
    time), on the supervisors' list until the case moves on."""

    __tablename__ = "supervision_orders"
    __table_args__ = (UniqueConstraint("dispatch_id", "kind", name="uq_supervision_orders"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         index=True)
    dispatch_id: Mapped[int] = mapped_column(ForeignKey("case_dispatches.id",
                                                        ondelete="CASCADE"))
    department_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # sign | handle
    opened_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    closed_at: Mapped[datetime | None] = mapped_column()
    note: Mapped[str] = mapped_column(String(256), default="")
