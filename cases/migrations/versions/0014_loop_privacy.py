"""case loop privacy: the address the place-hash was made from, encrypted on case_work

Repeat complaints by place use a keyed hash of the normalised address; after a data-key
rotation (`hotline privacy rekey`) that hash must be recomputed from the address under the
new key, so the row keeps the address it was made from (encrypted; blanked with the case's
other personal fields by the retention job).

Revision ID: 0014_loop_privacy
Revises: 0013_intake
Create Date: 2026-12-06 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_loop_privacy"
down_revision = "0013_intake"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_work") as b:
        b.add_column(sa.Column("address_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_work") as b:
        b.drop_column("address_enc")
