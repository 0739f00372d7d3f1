"""Personal data at rest, on both databases: migration 0007 encrypts the rows it finds (and
gives them back on downgrade), the schema equals the models, no personal text is left in
clear anywhere in the database, and the retention job deletes recordings (real files),
transcripts and the personal fields of old cases, on the timeline and in the audit log."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from agent_desk.access import Scope
from agent_desk.audit import Actor
from agent_desk.cases.store import ConsoleStore
from agent_desk.models import AuditEntry, CallbackTask, CaseForm
from asr.models import Recording, Transcript, TranscriptSegment
from cases.db import make_engine, migrate, sessionmaker
from cases.models import CallEvent, CallLeg, Case
from cases.store import CaseStore
from common.db import Base
from common.facts import CallFact
from common.privacy import PersonalData
from hotline.privacy import rekey_tables, retention_job
from lab.harness import lab_config
from telephony.calls.retention import CelPurger
from tests.support.servers import make_pg_database

CALLER = "13812345678"
SECRETS = ("张先生反映噪音", "南京市玄武区珠江路88号", "晚上施工扰民，回电13812345678",
           "他说晚点再打", "我家楼下在施工")


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request, tmp_path, pg_admin):
    drop = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}"
    else:
        url, drop = await make_pg_database(pg_admin)
    engine = make_engine(url)
    yield engine, request.param, tmp_path / "hotline.db"
    await engine.dispose()
    if drop is not None:
        await drop()


def _t(name, *cols):
    return sa.table(name, *(sa.column(c, t) if t is not None else sa.column(c) for c, t in cols))


TS = sa.DateTime(timezone=True)
CASES = _t("cases", ("id", None), ("number", None), ("call_state", None), ("source", None),
           ("priority", None), ("flags", sa.JSON()), ("created_at", TS), ("updated_at", TS),
           ("caller_enc", None), ("caller_masked", None))
FORMS = _t("case_forms", ("case_id", None), ("category", None), ("subject", None),
           ("address", None), ("content", None), ("department", None), ("updated_by", None),
           ("version", None), ("updated_at", TS))
TRANSCRIPTS = _t("transcripts", ("id", None), ("case_id", None), ("status", None),
                 ("attempts", None), ("updated_at", TS))
SEGMENTS = _t("transcript_segments", ("transcript_id", None), ("speaker", None),
              ("start", None), ("end", None), ("text", None))
TASKS = _t("callback_tasks", ("case_id", None), ("status", None), ("attempts", None),
           ("max_attempts", None), ("log", sa.JSON()), ("created_at", TS), ("updated_at", TS))
EVENTS = _t("call_events", ("case_id", None), ("key", None), ("kind", None), ("at", TS),
            ("detail", sa.JSON()), ("source", None))


async def _dump(engine) -> str:
    """Every row of every table, as text."""
    out = []
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        for name in names:
            for row in (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all():
                out.append(f"{name}: {tuple(row)!r}")
    return "\n".join(out)


async def _version(engine) -> str:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                ).scalar_one()


async def test_migration_encrypts_existing_rows_and_downgrade_gives_them_back(
        db, monkeypatch):
    engine, backend, path = db
    pd = PersonalData(os.environ["HOTLINE_DATA_KEY"])
    await migrate(engine, "0006_surge")
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(CASES.insert().values(
            id=1, number="20261122000001", call_state="ended", source="live", priority=0,
            flags=[], created_at=now, updated_at=now, caller_enc=pd.encrypt(CALLER),
            caller_masked="138****5678"))
        await conn.execute(FORMS.insert().values(
            case_id=1, category="complaint", subject=SECRETS[0], address=SECRETS[1],
            content=SECRETS[2], department="城管局", updated_by="agent1001", version=1,
            updated_at=now))
        await conn.execute(TRANSCRIPTS.insert().values(id=1, case_id=1, status="done",
                                                       attempts=1, updated_at=now))
        await conn.execute(SEGMENTS.insert().values(transcript_id=1, speaker="caller",
                                                    start=0.5, end=2.0, text=SECRETS[4]))
        await conn.execute(TASKS.insert().values(
            case_id=1, status="pending", attempts=1, max_attempts=3, created_at=now,
            updated_at=now, log=[{"event": "no_answer", "agent": "1001", "note": SECRETS[3]}]))
        await conn.execute(EVENTS.insert().values(
            case_id=1, key="callback_1_no_answer", kind="callback_1_no_answer", at=now,
            source="console", detail={"by": "agent1001", "note": SECRETS[3]}))
    assert SECRETS[0] in await _dump(engine)

    # Without the key the conversion refuses, clearly, and changes nothing.
    monkeypatch.delenv("HOTLINE_DATA_KEY")
    with pytest.raises(RuntimeError, match="data key"):
        await migrate(engine)
    monkeypatch.undo()
    assert await _version(engine) == "0006_surge"
    assert SECRETS[0] in await _dump(engine)

    await migrate(engine, "0007_privacy", personal=pd)
    assert await _version(engine) == "0007_privacy"
    dump = await _dump(engine)
    for secret in (*SECRETS, CALLER):
        assert secret not in dump, secret
    if backend == "sqlite":
        await engine.dispose()  # checkpoints the WAL into the file
        raw = path.read_bytes()
        for secret in (*SECRETS, CALLER):
            assert secret.encode() not in raw, f"{secret} left in the SQLite file"

    # What the console reads is what was written (through today's models: at head).
    await migrate(engine, personal=pd)
    sessions = sessionmaker(engine)
    detail = await ConsoleStore(sessions, pd).detail("20261122000001", clear=True,
                                                    scope=Scope.everything())
    assert detail["form"]["subject"] == SECRETS[0] and detail["form"]["address"] == SECRETS[1]
    assert detail["form"]["content"] == SECRETS[2] and detail["form"]["department"] == "城管局"
    assert detail["callback"]["log"][0]["note"] == SECRETS[3]
    assert next(e for e in detail["timeline"] if e["kind"] == "callback_1_no_answer"
                )["detail"]["note"] == SECRETS[3]
    async with sessions() as s:
        seg = (await s.execute(select(TranscriptSegment))).scalar_one()
    assert pd.decrypt(seg.text_enc) == SECRETS[4]

    from alembic import command

    from cases.db import alembic_config

    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c, personal=pd),
                                                        "0006_surge"))
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT subject, address, content FROM case_forms"))
               ).one()
        text = (await conn.execute(sa.text("SELECT text FROM transcript_segments"))).scalar()
    assert tuple(row) == SECRETS[:3] and text == SECRETS[4]
    assert SECRETS[3] in await _dump(engine)


async def test_schema_after_migrations_equals_the_models(db):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    # Every table in the metadata.
    import agent_desk.departments.models
    import agent_desk.insight.models
    import agent_desk.intake.models
    import agent_desk.models
    import agent_desk.webhooks.models  # noqa: F401
    import asr.models  # noqa: F401
    import cases.loop.models
    import cases.loop.outbox  # noqa: F401

    engine, _, _ = db
    await migrate(engine)

    def diff(conn):
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        return compare_metadata(ctx, Base.metadata)

    async with engine.connect() as conn:
        changes = await conn.run_sync(diff)
    mine = {"audit_log", "case_forms", "transcript_segments", "cases", "callback_tasks",
            "departments", "department_defaults", "case_work", "case_dispatches",
            "supervision_orders", "web_users", "webhook_deliveries", "webhook_keys",
            "intake_records", "intake_tokens",
            "department_tokens", "insight_case_terms", "insight_indexed",
            "insight_alerts", "insight_alert_cases", "insight_suggestions", "insight_models",
            "agent_state_events", "qa_samples", "qa_scores"}

    def table_of(change):
        for part in change if isinstance(change, tuple) else (change,):
            for obj in (part if isinstance(part, tuple) else (part,)):
                name = getattr(obj, "name", None)
                table = getattr(obj, "table", None)
                if table is not None:
                    return table.name
                if isinstance(obj, str) and obj in mine:
                    return obj
                if name in mine:
                    return name
        return None
    relevant = [c for c in changes if table_of(c) in mine]
    assert relevant == [], relevant


async def _case(store: CaseStore, call: str, *, created: datetime, sessions) -> Case:
    at = created.timestamp()
    for kind, data in (("arrived", {"caller": CALLER, "caller_name": "张三", "dialed": "12345",
                                    "uniqueid": f"{call}.1", "channel": "PJSIP/trunk-1"}),
                       ("routed", {"queue": "nanjing-general", "city": "nanjing"}),
                       ("queued", {"queue": "nanjing-general"}),
                       ("answered", {"agent": "1001", "uniqueid": f"{call}.2",
                                     "hold_time": 3}),
                       ("ended", {})):
        await store.apply(CallFact(kind, f"node1:{call}", "node1", at, data))
    async with sessions() as s, s.begin():
        case = (await s.execute(select(Case).where(Case.call_id == f"node1:{call}"))
                ).scalar_one()
        case.created_at = created
    return case


async def test_retention_deletes_recordings_transcripts_and_personal_fields_when_due(
        db, tmp_path):
    engine, _, _ = db
    pd = PersonalData(os.environ["HOTLINE_DATA_KEY"])
    await migrate(engine, personal=pd)
    sessions = sessionmaker(engine)
    base = lab_config(tmp_path / "lab")
    cfg = base.model_copy(update={
        "recording": base.recording.model_copy(update={"retention_days": 180}),
        "privacy": base.privacy.model_copy(update={"transcript_retention_days": 90,
                                                   "case_personal_retention_days": 365})})
    store = CaseStore(sessions, pd)
    console = ConsoleStore(sessions, pd)
    now = datetime.now(UTC)
    ages = {"old": 400, "middle": 200, "recent": 10}  # days
    cases = {k: await _case(store, f"ret-{k}-{now.timestamp()}", created=now - timedelta(days=d),
                            sessions=sessions) for k, d in ages.items()}
    files: dict[str, Path] = {}
    async with sessions() as s, s.begin():
        for k, case in cases.items():
            f = tmp_path / "recordings" / f"{case.number}-1-mix.wav"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"RIFF....WAVEfmt " + k.encode())
            files[k] = f
            s.add(Recording(case_id=case.id, side="mix", part=1, path=str(f),
                            url_name=f.name, offset=0.0,
                            created_at=now - timedelta(days=ages[k])))
            t = Transcript(case_id=case.id, status="done", attempts=1, updated_at=now)
            s.add(t)
            await s.flush()
            s.add(TranscriptSegment(transcript_id=t.id, speaker="caller", start=0.0, end=1.0,
                                    text_enc=pd.encrypt(SECRETS[4])))
            s.add(CallbackTask(case_id=case.id, status="done", attempts=1, max_attempts=3,
                               log=[{"event": "reached", "note_enc": pd.encrypt(SECRETS[3])}]))
    agent = Actor("agent1001", "agent", "127.0.0.1")
    for case in cases.values():
        await console.save_form(case.number, {"category": "complaint", "subject": SECRETS[0],
                                              "address": SECRETS[1], "content": SECRETS[2],
                                              "department": "城管局"}, by="agent1001",
                                scope=Scope.everything(), actor=agent)

    retention = retention_job(cfg, sessions, store)
    dry = await retention.run(dry_run=True)
    # old: everything; middle: recording (>180 d) and transcript (>90 d); recent: nothing.
    assert (dry.recordings, dry.transcripts, dry.cases) == (2, 2, 1), dry
    assert all(f.exists() for f in files.values())
    report = await retention.run()
    assert (report.recordings, report.transcripts, report.cases) == (2, 2, 1), report
    assert not files["old"].exists() and not files["middle"].exists()
    assert files["recent"].exists()

    async with sessions() as s:
        def one(model, case, *where):
            return s.execute(select(model).where(model.case_id == case.id, *where))
        old, middle, recent = [await s.get(Case, cases[k].id) for k in ("old", "middle",
                                                                       "recent")]
        assert old.caller_enc is None and old.caller_hash is None and old.caller_masked is None
        assert old.personal_purged_at is not None
        # The anonymous figures stay.
        assert old.outcome == "answered" and old.agent_id == "1001" and old.city == "nanjing"
        assert middle.caller_enc and recent.caller_enc and middle.personal_purged_at is None
        form = (await one(CaseForm, old)).scalar_one()
        assert (form.subject_enc, form.address_enc, form.content_enc) == (None, None, None)
        assert form.category == "complaint" and form.department == "城管局"
        task = (await one(CallbackTask, old)).scalar_one()
        assert task.log == [{"event": "reached"}]
        legs = (await one(CallLeg, old, CallLeg.role == "caller")).scalars().all()
        assert [leg.party for leg in legs] == [None]
        for k, status in (("old", "purged"), ("middle", "purged"), ("recent", "done")):
            t = (await one(Transcript, cases[k])).scalar_one()
            n = (await s.execute(select(sa.func.count()).select_from(TranscriptSegment).where(
                TranscriptSegment.transcript_id == t.id))).scalar_one()
            assert (t.status, n) == (status, 0 if status == "purged" else 1), k
        for k, deleted in (("old", True), ("middle", True), ("recent", False)):
            rec = (await one(Recording, cases[k])).scalar_one()
            assert (rec.deleted_at is not None) == deleted, k
        kinds = {k: [e.kind for e in (await one(CallEvent, cases[k])).scalars()]
                 for k in cases}
        audit = (await s.execute(select(AuditEntry.case_number, AuditEntry.action).where(
            AuditEntry.username == "system"))).all()
    assert {"personal_data_deleted", "recordings_deleted", "transcript_deleted"} - set(
        kinds["old"]) == {"transcript_deleted"}  # the personal purge took it along
    assert {"recordings_deleted", "transcript_deleted"} <= set(kinds["middle"])
    assert not {"recordings_deleted", "transcript_deleted"} & set(kinds["recent"])
    assert sorted(audit) == sorted([
        (cases["old"].number, "retention.personal"),
        (cases["middle"].number, "retention.recordings"),
        (cases["middle"].number, "retention.transcript")])
    # Done once: a second run finds nothing more.
    again = await retention.run()
    assert (again.recordings, again.transcripts, again.cases) == (0, 0, 0)
    dump = await _dump(engine)
    assert CALLER not in dump and SECRETS[0] not in dump


def test_privacy_purge_command_dry_run_and_run(tmp_path, capsys):
    import asyncio

    from hotline.cli import main
    from lab.harness import lab_config_toml

    db_path = tmp_path / "data" / "hotline.db"
    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(lab_config_toml(tmp_path / "data", overrides={
        "privacy.case_personal_retention_days": 30}), encoding="utf-8")

    async def seed():
        engine = make_engine(f"sqlite+aiosqlite:///{db_path}")
        pd = PersonalData(os.environ["HOTLINE_DATA_KEY"])
        await migrate(engine, personal=pd)
        sessions = sessionmaker(engine)
        await _case(CaseStore(sessions, pd), "cli-old", sessions=sessions,
                    created=datetime.now(UTC) - timedelta(days=40))
        await engine.dispose()
    asyncio.run(seed())
    assert main(["--config", str(cfg_path), "privacy", "purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "cases whose personal fields would be blanked: 1 (older than 30 days)" in out, out
    assert main(["--config", str(cfg_path), "privacy", "purge"]) == 0
    assert "personal fields blanked: 1" in capsys.readouterr().out
    assert main(["--config", str(cfg_path), "privacy", "purge", "--dry-run"]) == 0
    assert "would be blanked: 0" in capsys.readouterr().out


async def test_key_rotation_reencrypts_and_rehashes(db, monkeypatch):
    from common.rekey import rekey

    engine, _, _ = db
    old = PersonalData("the-old-data-key-1234")
    await migrate(engine, personal=old)
    sessions = sessionmaker(engine)
    case = await _case(CaseStore(sessions, old), "rekey", created=datetime.now(UTC),
                       sessions=sessions)
    await ConsoleStore(sessions, old).save_form(case.number, {"content": SECRETS[2]},
                                                by="agent1001", scope=Scope.everything())
    new = PersonalData("the-new-data-key-5678", previous=["the-old-data-key-1234"])
    out = await rekey(sessions, rekey_tables(new))
    assert out["cases"] == 1 and out["case_forms"] == 1
    only_new = PersonalData("the-new-data-key-5678")
    detail = await ConsoleStore(sessions, only_new).detail(case.number, clear=True,
                                                           scope=Scope.everything())
    assert detail["caller"] == CALLER and detail["form"]["content"] == SECRETS[2]
    async with sessions() as s:
        c = await s.get(Case, case.id)
    assert c.caller_hash == only_new.lookup_hash(CALLER) != old.lookup_hash(CALLER)
    with pytest.raises(ValueError, match="wrong data key"):
        await ConsoleStore(sessions, old).detail(case.number, clear=True,
                                                 scope=Scope.everything())


async def test_asterisk_cel_rows_are_deleted_once_read_and_past_their_period(db, tmp_path):
    import sqlite3

    engine, _, _ = db
    pd = PersonalData(os.environ["HOTLINE_DATA_KEY"])
    await migrate(engine, personal=pd)
    sessions = sessionmaker(engine)
    cel = tmp_path / "cel.db"
    conn = sqlite3.connect(cel)
    # Asterisk's own table (cel_sqlite3_custom), callers' numbers in clear.
    conn.execute("CREATE TABLE cel (AcctId INTEGER PRIMARY KEY, eventtype,eventtime,cidname,"
                 "cidnum,dnid,context,exten,channame,appname,appdata,uniqueid,linkedid,peer,"
                 "userdeftype,eventextra)")
    now = datetime.now(UTC).timestamp()
    for acct, age_days in ((1, 40), (2, 1), (3, 40)):
        conn.execute("INSERT INTO cel (AcctId, eventtype, eventtime, cidnum) VALUES "
                     "(?, 'CHAN_START', ?, ?)", (acct, now - age_days * 86400, CALLER))
    conn.commit()
    conn.close()
    await CaseStore(sessions, pd).set_checkpoint("node1", 2)  # rows 1 and 2 are read
    cfg = lab_config(tmp_path / "lab")
    store = CaseStore(sessions, pd)
    retention = retention_job(cfg, sessions, store, cel_paths={"node1": cel})
    cel_purger = CelPurger({"node1": cel}, store,
                           retention_days=cfg.privacy.cel_retention_days)
    assert (await cel_purger.purge(datetime.now(UTC), dry_run=True)).cel_rows == 1
    assert (await retention.run()).cel_rows == 1
    conn = sqlite3.connect(cel)
    left = [r[0] for r in conn.execute("SELECT AcctId FROM cel ORDER BY AcctId")]
    conn.close()
    # Old and read: gone. Recent: kept. Old but not read yet (an outage): kept.
    assert left == [2, 3]
