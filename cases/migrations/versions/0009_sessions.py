"""sessions: revocable console sessions and a tamper-evident audit log

- web_users.session_version: in every session cookie; a password reset, role change or
  disabling raises it (cookies issued before this revision carry none: sign in again)
- audit_log.chain_seq, prev_hash, hash: the hash chain over the entries
- audit_chain: the chain's head (one row, locked while sealing)

Revision ID: 0009_sessions
Revises: 0007_privacy
Create Date: 2026-12-06 15:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_sessions"
down_revision = "0008_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("web_users") as b:
        b.add_column(sa.Column("session_version", sa.Integer(), nullable=False,
                               server_default="0"))
    with op.batch_alter_table("audit_log") as b:
        b.add_column(sa.Column("chain_seq", sa.Integer(), nullable=True))
        b.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        b.add_column(sa.Column("hash", sa.String(64), nullable=True))
        b.create_unique_constraint("uq_audit_log_chain_seq", ["chain_seq"])
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("head", sa.String(64), nullable=False, server_default=""),
    )
    op.execute("INSERT INTO audit_chain (id, seq, head) VALUES (1, 0, '')")


def downgrade() -> None:
    op.drop_table("audit_chain")
    with op.batch_alter_table("audit_log") as b:
        b.drop_constraint("uq_audit_log_chain_seq", type_="unique")
        b.drop_column("hash")
        b.drop_column("prev_hash")
        b.drop_column("chain_seq")
    with op.batch_alter_table("web_users") as b:
        b.drop_column("session_version")
