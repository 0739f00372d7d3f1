"""The intake's tables (migration 0013_intake).

- ``intake_records``: one row per case that arrived without a call, beside the case record
  (``cases``, made by cases/loop CaseLoop.create_case) and its form (``case_forms``): the
  channel, the token that sent it, the channel's idempotency key and reference, the name the
  citizen gave (personal: encrypted), the hash of the query code, the classification the
  citizen or channel suggested (the hotline classifies), the consent to the notice.
- ``intake_tokens``: the channels' API tokens, stored as SHA-256 of the token (a token is 256
  random bits: nothing to guess from its hash), revocable.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, utcnow

# The channels that send cases through the API; "web" is the public form.
API_CHANNELS = ("wechat", "miniprogram", "app", "partner", "email")


class IntakeToken(Base):
    __tablename__ = "intake_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")  # "微信公众号 (省大数据局)"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's first characters, to tell tokens apart in a list ("hli_wechat_3fA9…").
    hint: Mapped[str] = mapped_column(String(24), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column()


class IntakeRecord(Base):
    __tablename__ = "intake_records"
    __table_args__ = (
        # The same key from the same channel is the same case, never a second one.
        UniqueConstraint("channel", "idempotency_key", name="uq_intake_records_idempotency"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         unique=True)
    channel: Mapped[str] = mapped_column(String(16), index=True)
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("intake_tokens.id", ondelete="SET NULL"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    # SHA-256 of the request: the same key with another request is refused, not replayed.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # The channel's own id of the matter (its ticket number), to find the case by.
    external_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    name_enc: Mapped[str | None] = mapped_column(Text)  # the citizen's name (personal)
    # SHA-256 of "<case number>:<query code>": the code itself is only shown once.
    query_code_hash: Mapped[str | None] = mapped_column(String(64))
    # What the citizen or channel suggested (诉求类型, 事项 code); the hotline classifies.
    appeal_type_hint: Mapped[str | None] = mapped_column(String(16))
    matter_hint: Mapped[str | None] = mapped_column(String(128))
    consent_at: Mapped[datetime | None] = mapped_column()
    consent_version: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
