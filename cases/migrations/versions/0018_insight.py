"""insight: keyword counts (hashed), hot-topic alerts, suggested classification, classifier

The insight room's tables (agent_desk/insight/models.py): the words of each case as keyed
hashes with its city and arrival (keyword counts), how far each case was counted, the alerts
with their cases, the suggestions shown on case forms, and the trained classifiers with their
held-back accuracy.

Revision ID: 0018_insight
Revises: 0017_loop_reports
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_insight"
down_revision = "0017_loop_reports"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _case_fk() -> sa.ForeignKey:
    return sa.ForeignKey("cases.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "insight_case_terms",
        sa.Column("case_id", sa.Integer(), _case_fk(), primary_key=True),
        sa.Column("term", sa.String(16), primary_key=True),
        sa.Column("city", sa.String(32), nullable=True),
        sa.Column("at", TS, nullable=False, index=True),
    )
    op.create_table(
        "insight_indexed",
        sa.Column("case_id", sa.Integer(), _case_fk(), primary_key=True),
        sa.Column("form_version", sa.Integer(), nullable=False),
        sa.Column("transcript", sa.Boolean(), nullable=False),
        sa.Column("indexed_at", TS, nullable=False),
    )
    op.create_table(
        "insight_alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("series", sa.String(200), nullable=False),
        sa.Column("city", sa.String(32), nullable=True, index=True),
        sa.Column("district", sa.String(32), nullable=True),
        sa.Column("matter", sa.String(128), nullable=True),
        sa.Column("term", sa.String(32), nullable=True),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("open_key", sa.String(200), nullable=True, unique=True),
        sa.Column("opened_at", TS, nullable=False, index=True),
        sa.Column("last_warm_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True, index=True),
        sa.Column("observed", sa.Integer(), nullable=False),
        sa.Column("expected", sa.Float(), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=False),
        sa.Column("peak", sa.Integer(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("merged_into", sa.String(32), nullable=True),
        sa.Column("merged_by", sa.String(64), nullable=True),
        sa.Column("merged_at", TS, nullable=True),
    )
    op.create_table(
        "insight_alert_cases",
        sa.Column("alert_id", sa.Integer(),
                  sa.ForeignKey("insight_alerts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("case_id", sa.Integer(), _case_fk(), primary_key=True, index=True),
        sa.Column("added_at", TS, nullable=False),
    )
    op.create_table(
        "insight_suggestions",
        sa.Column("case_id", sa.Integer(), _case_fk(), primary_key=True),
        sa.Column("matter", sa.String(128), nullable=True),
        sa.Column("department", sa.String(32), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("shown_at", TS, nullable=False, index=True),
        sa.Column("shown_to", sa.String(64), nullable=False),
        sa.Column("confirmed_matter", sa.String(128), nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=True),
        sa.Column("confirmed_at", TS, nullable=True),
    )
    op.create_table(
        "insight_models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trained_at", TS, nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("held_back", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("rules_accuracy", sa.Float(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("params", sa.LargeBinary(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("insight_models")
    op.drop_table("insight_suggestions")
    op.drop_table("insight_alert_cases")
    op.drop_table("insight_alerts")
    op.drop_table("insight_indexed")
    op.drop_table("insight_case_terms")
