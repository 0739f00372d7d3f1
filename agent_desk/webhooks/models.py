"""Each department's webhook signing key: which generation signs (the secret is derived from
the master secret, common/secrets.py ``webhook_secret``; nothing secret is stored), the one
before it during a rotation's grace, and whether an admin has been shown it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base


class WebhookKey(Base):
    __tablename__ = "webhook_keys"

    department_id: Mapped[str] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    previous_generation: Mapped[int | None] = mapped_column(Integer)
    rotated_at: Mapped[datetime | None] = mapped_column()
    # When the current generation's secret was shown (once; rotate to see a new one).
    revealed_at: Mapped[datetime | None] = mapped_column()
    updated_by: Mapped[str] = mapped_column(String(64), default="")
