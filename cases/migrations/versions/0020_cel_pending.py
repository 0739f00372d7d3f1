"""cases: a call that was up across an AMI reconnect and ended live waits for CEL's word

Events in the gap of a reconnect may be lost for good (Asterisk's channel list can lag its
events, and CEL rows may not be written yet when the service backfills), so the live end of
such a call can be wrong about what happened (an answer missed: "dropped" instead of
"answered"). The case keeps `cel_pending` until the CEL pass has read the call to its end.

Revision ID: 0020_cel_pending
Revises: 0019_knowledge
Create Date: 2026-12-06 21:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_cel_pending"
down_revision = "0019_knowledge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy of the table): on SQLite a batch move of `cases` would
    # drop the old table, and with foreign keys on that cascades to every case's rows.
    op.add_column("cases", sa.Column("cel_pending", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("cases", "cel_pending")  # SQLite >= 3.35 drops a column in place
