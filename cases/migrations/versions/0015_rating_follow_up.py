"""一键评价 on the case; 回访 call tasks

``cases.rating`` / ``rated_at``: the caller's key after the agent hung up first
(telephony/calls/rating.py), for the figures (满意率 per city and queue). ``follow_up_tasks``:
the 回访 calls the service makes (agent_desk/followup), one per case and loop round.

Revision ID: 0015_rating_follow_up
Revises: 0014_loop_privacy
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_rating_follow_up"
down_revision = "0014_loop_privacy"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): on SQLite a copied ``cases`` table would be dropped,
    # and with foreign keys on that cascades to every case's timeline, form and tasks.
    op.add_column("cases", sa.Column("rating", sa.String(16), nullable=True))
    op.add_column("cases", sa.Column("rated_at", TS, nullable=True))
    op.create_index("ix_cases_rating", "cases", ["rating"])
    op.create_table(
        "follow_up_tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("city", sa.String(32), nullable=True, index=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", TS, nullable=True, index=True),
        sa.Column("attempt_at", TS, nullable=True),
        sa.Column("last_outcome", sa.String(16), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("satisfaction", sa.String(16), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("created_at", TS, nullable=False, index=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("case_id", "round", name="uq_follow_up_tasks_round"),
    )


def downgrade() -> None:
    op.drop_table("follow_up_tasks")
    op.drop_index("ix_cases_rating", "cases")
    # SQLite 3.35+ drops a column in place (see upgrade: no table copy).
    op.drop_column("cases", "rated_at")
    op.drop_column("cases", "rating")
