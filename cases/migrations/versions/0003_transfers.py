"""transfers: transfer legs to branch centers and emergency lines; the referring line of
handed-over calls

Revision ID: 0003_transfers
Revises: 0002_routing
Create Date: 2026-11-22 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_transfers"
down_revision = "0002_routing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfer_legs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("leg_id", sa.String(length=96), nullable=False),
        sa.Column("destination", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("number", sa.String(length=20), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("initiator", sa.String(length=16), nullable=True),
        sa.Column("channel", sa.String(length=128), nullable=True),
        sa.Column("dialed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("three_way_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_left_how", sa.String(length=16), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("ended_by", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("hangup_cause", sa.Integer(), nullable=True),
        sa.Column("handed_off", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "leg_id", name="uq_transfer_legs_case_leg"),
    )
    with op.batch_alter_table("transfer_legs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfer_legs_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transfer_legs_destination"), ["destination"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_transfer_legs_outcome"), ["outcome"], unique=False)

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("referred_by", sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f("ix_cases_referred_by"), ["referred_by"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_referred_by"))
        batch_op.drop_column("referred_by")
    with op.batch_alter_table("transfer_legs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfer_legs_outcome"))
        batch_op.drop_index(batch_op.f("ix_transfer_legs_destination"))
        batch_op.drop_index(batch_op.f("ix_transfer_legs_case_id"))
    op.drop_table("transfer_legs")
