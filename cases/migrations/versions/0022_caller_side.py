"""caller side: why a callback task was made

``callback_tasks.reason``: abandoned (hung up in the queue), message (留言 when nobody was
there), callback_requested (key 1 when nobody was there), dropped (hung up before the queue),
keep_place_failed (排队回呼 that reached nobody after its attempts). Null for earlier tasks
(they were all abandoned calls).

Revision ID: 0022_caller_side
Revises: 0021_agent_figures
Create Date: 2027-01-12 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_caller_side"
down_revision = "0021_agent_figures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy), as 0015 does.
    op.add_column("callback_tasks", sa.Column("reason", sa.String(24), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (as 0015 does).
    op.drop_column("callback_tasks", "reason")
