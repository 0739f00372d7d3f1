"""Issue 15 on both databases: a purged case keeps no callback note on its timeline (Medium 3),
data written under the old SHA-256 key derivation stays readable and findable after
migration 0010_secrets and `hotline privacy rekey` (Medium 2), and no caller name is kept
(Low)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy import select

from agent_desk.access import Scope
from agent_desk.audit import Actor
from agent_desk.cases.store import ConsoleStore
from agent_desk.models import CallbackTask
from cases.db import make_engine, migrate, sessionmaker
from cases.models import CallEvent, Case
from cases.store import CaseStore
from common.facts import CallFact
from common.privacy import PersonalData
from hotline.privacy import rekey_tables, retention_job
from lab.harness import lab_config
from tests.support.servers import make_pg_database

CALLER = "13812345678"
NOTE = "他说晚点再打，家住珠江路88号"


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request, tmp_path, pg_admin):
    drop = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}"
    else:
        url, drop = await make_pg_database(pg_admin)
    engine = make_engine(url)
    yield engine
    await engine.dispose()
    if drop is not None:
        await drop()


async def _case(store: CaseStore, call: str, created: datetime, sessions) -> Case:
    at = created.timestamp()
    for kind, data in (("arrived", {"caller": CALLER, "dialed": "12345"}),
                       ("routed", {"queue": "nanjing-general", "city": "nanjing"}),
                       ("queued", {"queue": "nanjing-general"}),
                       ("abandoned", {"hold_time": 20}), ("ended", {})):
        await store.apply(CallFact(kind, f"node1:{call}", "node1", at, data))
    async with sessions() as s, s.begin():
        case = (await s.execute(select(Case).where(Case.call_id == f"node1:{call}"))
                ).scalar_one()
        case.created_at = created
    return case


async def test_purge_removes_callback_notes_from_the_timeline(engine, tmp_path):
    pd = PersonalData(os.environ["HOTLINE_DATA_KEY"])
    await migrate(engine, personal=pd)
    sessions = sessionmaker(engine)
    store, console = CaseStore(sessions, pd), ConsoleStore(sessions, pd)
    base = lab_config(tmp_path / "lab")
    cfg = base.model_copy(update={"privacy": base.privacy.model_copy(update={
        "case_personal_retention_days": 30})})
    case = await _case(store, f"note-{datetime.now(UTC).timestamp()}",
                       datetime.now(UTC) - timedelta(days=40), sessions)
    task = await console.callback_for_call(case.call_id, 3)
    await console.begin_callback(task["id"], "1001", Scope.everything())
    await console.finish_callback(task["id"], "no_answer", by="agent1001", note=NOTE,
                                  scope=Scope.everything(),
                                  actor=Actor("agent1001", "agent", "127.0.0.1"))
    # As the console writes it: the outcome on the timeline, the note encrypted.
    async with sessions() as s, s.begin():
        s.add(CallEvent(case_id=case.id, key="callback_1_no_answer", kind="callback_1_no_answer",
                        at=datetime.now(UTC), source="console",
                        detail={"by": "agent1001", "outcome": "no_answer",
                                "note_enc": pd.encrypt(NOTE)}))
    before = await console.detail(case.number, clear=True, scope=Scope.everything())
    assert NOTE in str(before["timeline"])

    report = await retention_job(cfg, sessions, store).run()
    assert report.cases == 1
    detail = await console.detail(case.number, clear=True, scope=Scope.everything())
    assert NOTE not in str(detail), detail
    async with sessions() as s:
        events = (await s.execute(select(CallEvent).where(CallEvent.case_id == case.id))
                  ).scalars().all()
        task_row = await s.get(CallbackTask, task["id"])
    assert not [e.kind for e in events if e.detail and ("note_enc" in e.detail
                                                        or "note" in e.detail)]
    assert task_row is not None and not any("note_enc" in e for e in task_row.log)
    # The outcome stays for the statistics.
    assert any(e.kind == "callback_1_no_answer" and e.detail.get("outcome") == "no_answer"
               for e in events)


def _sha256_keys(key: str) -> tuple[Fernet, bytes]:
    """The derivation before HKDF, as the data written then was encrypted and hashed."""
    root = hashlib.sha256(b"hotline-data-key|" + key.encode()).digest()
    return (Fernet(base64.urlsafe_b64encode(hmac.new(root, b"encrypt", hashlib.sha256)
                                            .digest())),
            hmac.new(root, b"lookup", hashlib.sha256).digest())


async def test_data_under_the_old_derivation_is_read_found_and_rekeyed(engine):
    from common.rekey import rekey

    key = os.environ["HOTLINE_DATA_KEY"]
    pd = PersonalData(key)
    await migrate(engine, "0007_privacy", personal=pd)
    old_fernet, old_lookup = _sha256_keys(key)
    old_hash = hmac.new(old_lookup, CALLER.encode(), hashlib.sha256).hexdigest()[:40]
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(sa.text(
            "INSERT INTO cases (id, number, call_state, source, priority, flags, created_at, "
            "updated_at, caller_enc, caller_hash, caller_masked) VALUES (1, '20261206000001', "
            "'ended', 'live', 0, '[]', :now, :now, :enc, :hash, '138****5678')"),
            {"now": now, "enc": old_fernet.encrypt(CALLER.encode()).decode(), "hash": old_hash})
        await conn.execute(sa.text(
            "INSERT INTO caller_profiles (caller_hash, caller_enc, caller_masked, category, "
            "created_at, updated_at) VALUES (:hash, :enc, '138****5678', 'elderly', :now, :now)"),
            {"now": now, "enc": old_fernet.encrypt(CALLER.encode()).decode(), "hash": old_hash})

    await migrate(engine, personal=pd)  # 0010_secrets: the hashes under the HKDF key
    sessions = sessionmaker(engine)
    console = ConsoleStore(sessions, pd)
    found = await console.search(Scope.everything(),
                                 caller_hash=pd.lookup_hash("+86 138-1234-5678"))
    assert [c["number"] for c in found["cases"]] == ["20261206000001"]
    assert (await console.detail("20261206000001", clear=True,
                                  scope=Scope.everything()))["caller"] == CALLER
    async with engine.connect() as conn:
        hashes = (await conn.execute(sa.text(
            "SELECT caller_hash FROM caller_profiles"))).scalars().all()
    assert hashes == [pd.lookup_hash(CALLER)]

    # `hotline privacy rekey` with the same key: every value under the HKDF key.
    await rekey(sessions, rekey_tables(pd))
    async with sessions() as s:
        c = await s.get(Case, 1)
    assert c is not None and c.caller_enc
    with pytest.raises(Exception):  # noqa: B017 (InvalidToken: no longer the old derivation)
        old_fernet.decrypt(c.caller_enc.encode())
    assert pd.decrypt(c.caller_enc) == CALLER


async def test_the_callers_name_is_not_kept(engine):
    """Minimum necessary: the CallerIDName was stored (encrypted) and never used; 0010 drops
    the column and a new case keeps the name nowhere."""
    pd = PersonalData(os.environ["HOTLINE_DATA_KEY"])
    await migrate(engine, personal=pd)
    async with engine.connect() as conn:
        columns = await conn.run_sync(lambda c: [col["name"] for col in
                                                 sa.inspect(c).get_columns("cases")])
    assert "caller_name_enc" not in columns
    sessions = sessionmaker(engine)
    store = CaseStore(sessions, pd)
    await store.apply(CallFact("arrived", "node1:named", "node1", datetime.now(UTC).timestamp(),
                               {"caller": CALLER, "caller_name": "张三丰", "dialed": "12345"}))
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM cases"))).all()
    assert len(rows) == 1
    assert not [v for v in rows[0] if isinstance(v, str) and v.startswith("gAAAA")
                and pd.decrypt(v) == "张三丰"]


def test_rekey_command_runs_without_a_previous_key(tmp_path, capsys):
    """Moving to the HKDF derivation needs no new key: `hotline privacy rekey` re-encrypts
    under the current one."""
    import asyncio

    from hotline.cli import main
    from lab.harness import lab_config_toml

    db_path = tmp_path / "data" / "hotline.db"
    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    key = os.environ["HOTLINE_DATA_KEY"]
    old_fernet, _ = _sha256_keys(key)

    async def seed_and_read(write: bool) -> str:
        engine = make_engine(f"sqlite+aiosqlite:///{db_path}")
        try:
            await migrate(engine, personal=PersonalData(key))
            async with engine.begin() as conn:
                if write:
                    await conn.execute(sa.text(
                        "INSERT INTO cases (id, number, call_state, source, priority, flags, "
                        "created_at, updated_at, caller_enc) VALUES (1, '20261206000009', "
                        "'ended', 'live', 0, '[]', :now, :now, :enc)"),
                        {"now": datetime.now(UTC),
                         "enc": old_fernet.encrypt(CALLER.encode()).decode()})
                return str((await conn.execute(sa.text(
                    "SELECT caller_enc FROM cases WHERE id = 1"))).scalar_one())
        finally:
            await engine.dispose()
    before = asyncio.run(seed_and_read(True))
    assert old_fernet.decrypt(before.encode()) == CALLER.encode()
    assert main(["--config", str(cfg_path), "privacy", "rekey"]) == 0
    assert "cases: 1 row(s) re-encrypted" in capsys.readouterr().out
    after = asyncio.run(seed_and_read(False))
    assert after != before and PersonalData(key).decrypt(after) == CALLER
    with pytest.raises(Exception):  # noqa: B017 (InvalidToken: not the old derivation now)
        old_fernet.decrypt(after.encode())
