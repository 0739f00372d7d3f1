"""The departments room's table (migration 0016_department_tokens): the API tokens a
department's own system uses (``Authorization: Bearer``), issued by an admin.

The token is shown once, when issued; only its SHA-256 is kept (a token is 32 random bytes:
a plain hash is as good as a keyed one, and survives a change of the session secret). A
revoked token stays listed, with who revoked it and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, utcnow


class DepartmentToken(Base):
    __tablename__ = "department_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_id: Mapped[str] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64), default="")  # "区城管局办件系统"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256
    hint: Mapped[str] = mapped_column(String(16))  # the token's first characters
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column()
