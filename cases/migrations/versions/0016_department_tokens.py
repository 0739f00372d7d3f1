"""department API tokens

The tokens a department's own system uses for /api/dept/... (agent_desk/departments/models.py):
only their SHA-256 is stored; revoked ones stay listed.

Revision ID: 0016_department_tokens
Revises: 0015_rating_follow_up
Create Date: 2026-12-07 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_department_tokens"
down_revision = "0015_rating_follow_up"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "department_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("department_id", sa.String(32),
                  sa.ForeignKey("departments.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("label", sa.String(64), nullable=False, server_default=""),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("department_tokens")
