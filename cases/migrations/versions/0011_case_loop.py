"""case loop: departments, case work, dispatches, 督办单; department users

The loop beside the call record (cases/loop/models.py): the 承办单位 directory and its
defaults per 事项 and city, one ``case_work`` row per case in the loop, one ``case_dispatches``
row per department per round, and ``supervision_orders`` (督办单). Console users of the new
``department`` role belong to one department (``web_users.department_id``).

Revision ID: 0011_case_loop
Revises: 0010_secrets
Create Date: 2026-12-06 18:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_case_loop"
down_revision = "0010_secrets"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("city", sa.String(32), nullable=True, index=True),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("unit", sa.String(32), nullable=False, server_default=""),
        sa.Column("webhook_url", sa.String(256), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "department_defaults",
        sa.Column("matter", sa.String(128), primary_key=True),
        sa.Column("city", sa.String(32), primary_key=True, server_default=""),
        sa.Column("department_id", sa.String(32),
                  sa.ForeignKey("departments.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_table(
        "case_work",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("city", sa.String(32), nullable=True, index=True),
        sa.Column("district", sa.String(32), nullable=True),
        sa.Column("appeal_type", sa.String(16), nullable=True, index=True),
        sa.Column("matter", sa.String(128), nullable=True, index=True),
        sa.Column("address_hash", sa.String(40), nullable=True, index=True),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("lead_department", sa.String(32), nullable=True, index=True),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("return_count", sa.Integer(), nullable=False),
        sa.Column("sign_due_at", TS, nullable=True),
        sa.Column("due_at", TS, nullable=True, index=True),
        sa.Column("light", sa.String(8), nullable=False, index=True),
        sa.Column("supervised", sa.Boolean(), nullable=False),
        sa.Column("followup_resolved", sa.Boolean(), nullable=True),
        sa.Column("followup_satisfaction", sa.String(16), nullable=True),
        sa.Column("followup_at", TS, nullable=True),
        sa.Column("closed_how", sa.String(16), nullable=True),
        sa.Column("merged_into", sa.Integer(), sa.ForeignKey("cases.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("accepted_at", TS, nullable=False, index=True),
        sa.Column("dispatched_at", TS, nullable=True),
        sa.Column("replied_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "case_dispatches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("department_id", sa.String(32), sa.ForeignKey("departments.id"),
                  nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("dispatched_at", TS, nullable=False),
        sa.Column("dispatched_by", sa.String(64), nullable=False),
        sa.Column("sign_due_at", TS, nullable=True),
        sa.Column("signed_at", TS, nullable=True),
        sa.Column("signed_by", sa.String(64), nullable=True),
        sa.Column("due_at", TS, nullable=True, index=True),
        sa.Column("returned_at", TS, nullable=True),
        sa.Column("return_reason_enc", sa.Text(), nullable=True),
        sa.Column("replied_at", TS, nullable=True),
        sa.Column("replied_by", sa.String(64), nullable=True),
        sa.Column("reply_enc", sa.Text(), nullable=True),
        sa.Column("contacted_caller", sa.Boolean(), nullable=True),
        sa.Column("extension_state", sa.String(16), nullable=True),
        sa.Column("extension_days", sa.Integer(), nullable=False),
        sa.Column("extension_reason_enc", sa.Text(), nullable=True),
        sa.Column("extension_granted_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("case_id", "department_id", "round", name="uq_case_dispatches"),
    )
    op.create_index("ix_case_dispatches_dept_state", "case_dispatches",
                    ["department_id", "state"])
    op.create_table(
        "supervision_orders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("dispatch_id", sa.Integer(),
                  sa.ForeignKey("case_dispatches.id", ondelete="CASCADE"), nullable=False),
        sa.Column("department_id", sa.String(32), nullable=False, index=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("opened_at", TS, nullable=False, index=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("note", sa.String(256), nullable=False),
        sa.UniqueConstraint("dispatch_id", "kind", name="uq_supervision_orders"),
    )
    with op.batch_alter_table("web_users") as b:
        b.add_column(sa.Column("department_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_users") as b:
        b.drop_column("department_id")
    op.drop_table("supervision_orders")
    op.drop_index("ix_case_dispatches_dept_state", "case_dispatches")
    op.drop_table("case_dispatches")
    op.drop_table("case_work")
    op.drop_table("department_defaults")
    op.drop_table("departments")
