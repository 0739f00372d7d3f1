"""agent figures: agents' presence changes (sign-in, pause by reason, ready) as facts, and
quality inspection (质检): the daily sample of calls and their scores (agent_desk/models.py
AgentStateEvent, QaSample, QaScore). New tables only: nothing existing changes.

Revision ID: 0021_agent_figures
Revises: 0020_cel_pending
Create Date: 2027-01-12 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_agent_figures"
down_revision = "0020_cel_pending"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agent_state_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(96), nullable=False),
        sa.Column("agent_id", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.UniqueConstraint("key", name="uq_agent_state_events_key"),
    )
    op.create_index("ix_agent_state_events_at", "agent_state_events", ["at"])
    op.create_index("ix_agent_state_events_agent_at", "agent_state_events", ["agent_id", "at"])
    op.create_table(
        "qa_samples",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("agent_id", sa.String(16), nullable=False),
        sa.Column("city", sa.String(32), nullable=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("drawn_at", TS, nullable=False),
        sa.UniqueConstraint("case_id", name="uq_qa_samples_case"),
    )
    op.create_index("ix_qa_samples_agent_id", "qa_samples", ["agent_id"])
    op.create_index("ix_qa_samples_city", "qa_samples", ["city"])
    op.create_index("ix_qa_samples_day", "qa_samples", ["day"])
    op.create_table(
        "qa_scores",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sample_id", sa.Integer(),
                  sa.ForeignKey("qa_samples.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agent_id", sa.String(16), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("scored_by", sa.String(64), nullable=False),
        sa.Column("scored_at", TS, nullable=False),
        sa.UniqueConstraint("sample_id", name="uq_qa_scores_sample"),
    )
    op.create_index("ix_qa_scores_agent_id", "qa_scores", ["agent_id"])
    op.create_index("ix_qa_scores_scored_at", "qa_scores", ["scored_at"])


def downgrade() -> None:
    op.drop_table("qa_scores")
    op.drop_table("qa_samples")
    op.drop_table("agent_state_events")
