"""routing: case links, caller profiles (green channel), cases.closed_at

Revision ID: 0002_routing
Revises: 0001
Create Date: 2026-11-22 03:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_routing"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_cases_caller_created", ["caller_hash", "created_at"],
                              unique=False)

    op.create_table(
        "case_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("linked_case_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["linked_case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "linked_case_id", name="uq_case_links_pair"),
    )
    with op.batch_alter_table("case_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_links_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_links_linked_case_id"), ["linked_case_id"],
                              unique=False)

    op.create_table(
        "caller_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("caller_hash", sa.String(length=40), nullable=False),
        sa.Column("caller_enc", sa.Text(), nullable=False),
        sa.Column("caller_masked", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("caller_hash"),
    )


def downgrade() -> None:
    op.drop_table("caller_profiles")
    with op.batch_alter_table("case_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_links_linked_case_id"))
        batch_op.drop_index(batch_op.f("ix_case_links_case_id"))
    op.drop_table("case_links")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_caller_created")
        batch_op.drop_column("closed_at")
