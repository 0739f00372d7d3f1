"""surge: the audit of agents lent across cities (多援一) and their returns

Revision ID: 0006_surge
Revises: 0005_console
Create Date: 2026-11-22 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_surge"
down_revision = "0005_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "surge_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("move_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("agent", sa.String(length=16), nullable=False),
        sa.Column("from_city", sa.String(length=32), nullable=False),
        sa.Column("to_city", sa.String(length=32), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposal_id", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("surge_moves", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_surge_moves_move_id"), ["move_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_surge_moves_agent"), ["agent"], unique=False)
        batch_op.create_index(batch_op.f("ix_surge_moves_at"), ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("surge_moves")
