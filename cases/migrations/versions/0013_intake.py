"""intake: cases without a call (web form, channel API) and the channels' API tokens

``intake_records``: one row per case that came through the public form or a channel's API
(agent_desk/intake/models.py): channel, token, idempotency key (unique per channel),
reference, the citizen's name (encrypted), the query code's hash, suggested classification,
consent. ``intake_tokens``: the channels' API tokens (SHA-256 only), revocable.

Revision ID: 0013_intake
Revises: 0012_webhooks
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_intake"
down_revision = "0012_webhooks"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "intake_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(24), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
    )
    op.create_table(
        "intake_records",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"),
                  nullable=False, unique=True),
        sa.Column("channel", sa.String(16), nullable=False, index=True),
        sa.Column("token_id", sa.Integer(),
                  sa.ForeignKey("intake_tokens.id", ondelete="SET NULL"), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("external_ref", sa.String(64), nullable=True, index=True),
        sa.Column("name_enc", sa.Text(), nullable=True),
        sa.Column("query_code_hash", sa.String(64), nullable=True),
        sa.Column("appeal_type_hint", sa.String(16), nullable=True),
        sa.Column("matter_hint", sa.String(128), nullable=True),
        sa.Column("consent_at", TS, nullable=True),
        sa.Column("consent_version", sa.String(32), nullable=True),
        sa.Column("created_at", TS, nullable=False, index=True),
        sa.UniqueConstraint("channel", "idempotency_key",
                            name="uq_intake_records_idempotency"),
    )


def downgrade() -> None:
    op.drop_table("intake_records")
    op.drop_table("intake_tokens")
