"""access: need-to-know — users belong to a city (or the province), form versions

- web_users.city: the city whose cases the user sees, or "province" (every city); NULL keeps
  today's meaning for existing users (an agent: the configuration's city of the agent; other
  roles: the province) until an admin narrows it (`hotline web user NAME --city CITY`)
- case_form_versions: every saved state of a case's form, appended (values encrypted with
  the data key). A form saved before this revision has no versions yet: its next change
  first appends the state it had (agent_desk/cases/store.py), so nothing needs the key here.

Revision ID: 0008_access
Revises: 0007_privacy
Create Date: 2026-12-06 15:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_access"
down_revision = "0007_privacy"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("web_users") as t:
        t.add_column(sa.Column("city", sa.String(32), nullable=True))
    op.create_table(
        "case_form_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("values_enc", sa.Text(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("saved_by", sa.String(64), nullable=False),
        sa.Column("saved_at", TS, nullable=False),
        sa.UniqueConstraint("case_id", "version", name="uq_case_form_versions"),
    )


def downgrade() -> None:
    op.drop_table("case_form_versions")
    with op.batch_alter_table("web_users") as t:
        t.drop_column("city")
