"""webhooks: the outbox of deliveries to departments' systems, their signing keys

``webhook_deliveries`` is the transactional outbox (cases/loop/outbox.py): one row per
department and change, written with the change, delivered by agent_desk/webhooks (pending →
delivered, or dead after its attempts). ``webhook_keys`` holds each department's signing key
generation (the secret itself is derived from the master secret, never stored) and when it
was shown to an admin.

Revision ID: 0012_webhooks
Revises: 0011_case_loop
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_webhooks"
down_revision = "0011_case_loop"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("idempotency_key", sa.String(160), nullable=False, unique=True),
        sa.Column("department_id", sa.String(32),
                  sa.ForeignKey("departments.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("event", sa.String(48), nullable=False),
        sa.Column("case_number", sa.String(32), nullable=True, index=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(256), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries",
                    ["state", "next_attempt_at"])
    op.create_table(
        "webhook_keys",
        sa.Column("department_id", sa.String(32),
                  sa.ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("previous_generation", sa.Integer(), nullable=True),
        sa.Column("rotated_at", TS, nullable=True),
        sa.Column("revealed_at", TS, nullable=True),
        sa.Column("updated_by", sa.String(64), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("webhook_keys")
    op.drop_index("ix_webhook_deliveries_due", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
