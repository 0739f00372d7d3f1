"""privacy: personal fields encrypted at rest, the audit log, the retention marker

- case_forms.subject/address/content -> *_enc (encrypted with the data key)
- transcript_segments.text -> text_enc
- callback notes (callback_tasks.log[].note, the timeline's callback facts) -> note_enc
- audit_log: who viewed, exported or changed a case
- cases.personal_purged_at: when the retention job blanked the case's personal fields

Existing rows are converted in place, so the key is needed when there are any: the service and
`hotline db upgrade` pass it in; otherwise it is read from HOTLINE_DATA_KEY.

Revision ID: 0007_privacy
Revises: 0006_surge
Create Date: 2026-11-23 08:00:00
"""

import os
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0007_privacy"
down_revision = "0006_surge"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
FORM = ("subject", "address", "content")
BATCH = 500


def _personal(needed: bool) -> Any:
    pd = context.config.attributes.get("personal")
    if pd is None and os.environ.get("HOTLINE_DATA_KEY"):
        from common.privacy import PersonalData

        pd = PersonalData(os.environ["HOTLINE_DATA_KEY"])
    if pd is None and needed:
        raise RuntimeError(
            "migration 0007_privacy encrypts the existing case forms, transcripts and callback "
            "notes: it needs the data key (run `hotline db upgrade` or the service, or set "
            "HOTLINE_DATA_KEY)")
    return pd


def _count(conn: Any, sql: str) -> int:
    return int(conn.execute(sa.text(sql)).scalar() or 0)


def _json(v: Any) -> Any:
    import json

    return json.loads(v) if isinstance(v, str) else v


def upgrade() -> None:
    conn = op.get_bind()
    # The key first, before any change (SQLite's driver commits DDL as it goes).
    needed = (_count(conn, "SELECT count(*) FROM case_forms") > 0
              or _count(conn, "SELECT count(*) FROM transcript_segments") > 0
              or _count(conn, "SELECT count(*) FROM callback_tasks") > 0)
    pd = _personal(needed)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("case_number", sa.String(32), nullable=True),
        sa.Column("address", sa.String(64), nullable=False, server_default=""),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_case_at", "audit_log", ["case_number", "at"])
    op.create_index("ix_audit_log_user_at", "audit_log", ["username", "at"])

    # Plain ALTER TABLE, never batch mode's copy-and-drop: on SQLite, dropping the cases
    # table would cascade-delete every timeline, form and recording row.
    op.add_column("cases", sa.Column("personal_purged_at", TS, nullable=True))

    for f in FORM:
        op.add_column("case_forms", sa.Column(f"{f}_enc", sa.Text(), nullable=True))
    rows = conn.execute(sa.text("SELECT id, subject, address, content FROM case_forms")).all()
    for r in rows:
        conn.execute(sa.text("UPDATE case_forms SET subject_enc = :s, address_enc = :a, "
                             "content_enc = :c WHERE id = :id"),
                     {"id": r[0], "s": pd.encrypt(r[1] or None), "a": pd.encrypt(r[2] or None),
                      "c": pd.encrypt(r[3] or None)})
    for f in FORM:
        op.drop_column("case_forms", f)

    op.add_column("transcript_segments", sa.Column("text_enc", sa.Text(), nullable=True))
    last = 0
    while True:
        rows = conn.execute(sa.text(
            "SELECT id, text FROM transcript_segments WHERE id > :last ORDER BY id LIMIT :n"),
            {"last": last, "n": BATCH}).all()
        if not rows:
            break
        for r in rows:
            conn.execute(sa.text("UPDATE transcript_segments SET text_enc = :t WHERE id = :id"),
                         {"id": r[0], "t": pd.encrypt(r[1] or None)})
        last = rows[-1][0]
    op.drop_column("transcript_segments", "text")

    _notes(conn, pd, encrypt=True)


def _notes(conn: Any, pd: Any, *, encrypt: bool) -> None:
    """Callback notes in the tasks' logs and on the timeline, to or from note_enc."""
    import json

    src, dst = ("note", "note_enc") if encrypt else ("note_enc", "note")

    def conv(e: dict[str, Any]) -> dict[str, Any]:
        if src not in e:
            return e
        e = dict(e)
        v = e.pop(src)
        e[dst] = (pd.encrypt(v or None) if encrypt else pd.decrypt(v)) or ""
        return e

    for tid, log in conn.execute(sa.text("SELECT id, log FROM callback_tasks")).all():
        entries = _json(log) or []
        new = [conv(e) if isinstance(e, dict) else e for e in entries]
        if new != entries:
            conn.execute(sa.text("UPDATE callback_tasks SET log = :l WHERE id = :id"),
                         {"id": tid, "l": json.dumps(new, ensure_ascii=False)})
    for eid, detail in conn.execute(sa.text(
            "SELECT id, detail FROM call_events WHERE kind LIKE 'callback%'")).all():
        d = _json(detail) or {}
        if isinstance(d, dict) and src in d:
            conn.execute(sa.text("UPDATE call_events SET detail = :d WHERE id = :id"),
                         {"id": eid, "d": json.dumps(conv(d), ensure_ascii=False)})


def downgrade() -> None:
    conn = op.get_bind()
    needed = (_count(conn, "SELECT count(*) FROM case_forms") > 0
              or _count(conn, "SELECT count(*) FROM transcript_segments") > 0
              or _count(conn, "SELECT count(*) FROM callback_tasks") > 0)
    pd = _personal(needed)
    _notes(conn, pd, encrypt=False)
    op.add_column("transcript_segments",
                  sa.Column("text", sa.Text(), nullable=False, server_default=""))
    for r in conn.execute(sa.text("SELECT id, text_enc FROM transcript_segments")).all():
        conn.execute(sa.text("UPDATE transcript_segments SET text = :t WHERE id = :id"),
                     {"id": r[0], "t": pd.decrypt(r[1]) or ""})
    op.drop_column("transcript_segments", "text_enc")
    op.add_column("case_forms",
                  sa.Column("subject", sa.String(128), nullable=False, server_default=""))
    op.add_column("case_forms",
                  sa.Column("address", sa.String(256), nullable=False, server_default=""))
    op.add_column("case_forms", sa.Column("content", sa.Text(), nullable=False,
                                          server_default=""))
    for r in conn.execute(sa.text(
            "SELECT id, subject_enc, address_enc, content_enc FROM case_forms")).all():
        conn.execute(sa.text("UPDATE case_forms SET subject = :s, address = :a, content = :c "
                             "WHERE id = :id"),
                     {"id": r[0], "s": (pd.decrypt(r[1]) or "")[:128],
                      "a": (pd.decrypt(r[2]) or "")[:256], "c": pd.decrypt(r[3]) or ""})
    for f in FORM:
        op.drop_column("case_forms", f"{f}_enc")
    op.drop_column("cases", "personal_purged_at")
    op.drop_table("audit_log")
