"""secrets: callers' look-up hashes under the HKDF-derived key; no caller name

The data key's keys are now derived with HKDF-SHA256 (common/secrets.py) instead of one
SHA-256. Values encrypted before still decrypt (the old derivation stays, for decryption
only; `hotline privacy rekey` re-encrypts them), but a look-up hash must equal the one
computed for the caller now: every stored hash (cases, caller_profiles) is recomputed here,
from the encrypted number, before the service looks anything up. The key is needed when there
are such rows: the service and `hotline db upgrade` pass it in; otherwise it is read from
HOTLINE_DATA_KEY.

cases.caller_name_enc is dropped: the caller's CallerIDName was stored (encrypted) but never
shown or used; minimum necessary says not to keep it. The agent asks the name when the case
needs it, and writes it on the form.

Revision ID: 0010_secrets
Revises: 0007_privacy
Create Date: 2026-12-06 15:30:00
"""

import os
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0010_secrets"
down_revision = "0009_sessions"
branch_labels = None
depends_on = None

BATCH = 500
TABLES = ("cases", "caller_profiles")


def _personal(conn: Any) -> Any:
    pd = context.config.attributes.get("personal")
    if pd is None and os.environ.get("HOTLINE_DATA_KEY"):
        from common.privacy import PersonalData

        pd = PersonalData(os.environ["HOTLINE_DATA_KEY"],
                          os.environ.get("HOTLINE_DATA_KEY_PREVIOUS", "").split())
    needed = any(conn.execute(sa.text(
        f"SELECT count(*) FROM {t} WHERE caller_enc IS NOT NULL")).scalar() for t in TABLES)
    if pd is None and needed:
        raise RuntimeError(
            "migration 0010_secrets recomputes the callers' look-up hashes: it needs the data "
            "key (run `hotline db upgrade` or the service, or set HOTLINE_DATA_KEY)")
    return pd


def _rehash(conn: Any, pd: Any, *, legacy: bool) -> None:
    """Every stored look-up hash from the encrypted number, one batch of ids at a time."""
    hash_of = pd.legacy_lookup_hash if legacy else pd.lookup_hash
    for table in TABLES:
        last = 0
        while True:
            rows = conn.execute(sa.text(
                f"SELECT id, caller_enc FROM {table} WHERE id > :last "
                f"AND caller_enc IS NOT NULL ORDER BY id LIMIT :n"),
                {"last": last, "n": BATCH}).all()
            if not rows:
                break
            for row_id, token in rows:
                conn.execute(sa.text(f"UPDATE {table} SET caller_hash = :h WHERE id = :id"),
                             {"id": row_id, "h": hash_of(pd.decrypt(token))})
            last = rows[-1][0]


def upgrade() -> None:
    conn = op.get_bind()
    pd = _personal(conn)
    if pd is not None:
        _rehash(conn, pd, legacy=False)
    # Plain ALTER TABLE, never batch mode's copy-and-drop (it would cascade-delete every
    # timeline, form and recording row of the cases on SQLite).
    op.drop_column("cases", "caller_name_enc")


def downgrade() -> None:
    # Hashes only: values encrypted since the upgrade stay under the HKDF key (decrypt them
    # with this version's code, or keep the upgrade).
    conn = op.get_bind()
    op.add_column("cases", sa.Column("caller_name_enc", sa.Text(), nullable=True))
    pd = _personal(conn)
    if pd is not None:
        _rehash(conn, pd, legacy=True)
