"""loop reports: indexes for the per-period figures and the 督办 list, the dispatch's city

The report's aggregates (cases/loop/reports.py) each read the rows whose own instant falls in
the period: followed up (``case_work.followup_at``), due to be signed
(``case_dispatches.sign_due_at``) and replied (``case_dispatches.replied_at``). Without these
indexes each is a scan of the whole history. ``case_dispatches.city`` is the case's city,
copied when the dispatch is made (the loop store) and here for the existing rows: a report by
city or within one city reads a period's dispatches alone instead of joining every case of
the city's history (bench/case_loop_scale.py on a million cases; the plans before and after
are in bench/results/case_loop_scale.md).

Revision ID: 0017_loop_reports
Revises: 0016_department_tokens
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_loop_reports"
down_revision = "0016_department_tokens"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_case_work_followup_at", "case_work", ["followup_at"]),
    ("ix_case_dispatches_sign_due_at", "case_dispatches", ["sign_due_at"]),
    ("ix_case_dispatches_replied_at", "case_dispatches", ["replied_at"]),
)
# The 督办 page's extension requests waiting for a decision (cases/loop/lists.py): a partial
# index over those few rows instead of a scan of every dispatch.
REQUESTED = sa.text("extension_state = 'requested'")


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): on SQLite a copied table would be dropped, and with
    # foreign keys on that cascades to the supervision orders.
    op.add_column("case_dispatches", sa.Column("city", sa.String(32), nullable=True))
    op.execute("UPDATE case_dispatches SET city = (SELECT w.city FROM case_work w "
               "WHERE w.case_id = case_dispatches.case_id)")
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.create_index("ix_case_dispatches_extension_requested", "case_dispatches",
                    ["updated_at", "id"], postgresql_where=REQUESTED, sqlite_where=REQUESTED)


def downgrade() -> None:
    op.drop_index("ix_case_dispatches_extension_requested", "case_dispatches")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table)
    # SQLite 3.35+ drops a column in place (see upgrade: no table copy).
    op.drop_column("case_dispatches", "city")
