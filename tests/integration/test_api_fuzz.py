"""The console's HTTP API fuzzed with schemathesis against its own OpenAPI description, served
by the real service (its own Asterisk, SQLite, Redis), signed in as each role with the CSRF
header: no 500, no crash, every answer conforms to the description (status, content type,
headers, schema), invalid input is refused, and afterwards the database is consistent —
nothing half-written, no change without its audit entry.

Bounded: a few examples per operation and role (HOTLINE_FUZZ_EXAMPLES, default 6), one worker;
about two minutes on the shared 2-core machine."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from agent_desk.access import Scope
from common.facts import CallFact
from hotline.desk import start_web
from lab.harness import Lab, free_port
from tests.support.console import CONSOLE_PASSWORD
from tests.support.service import lab_test_config

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

EXAMPLES = int(os.environ.get("HOTLINE_FUZZ_EXAMPLES", "6"))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,negative_data_rejection,"
          "unsupported_method")
USERS = {"agent": ("fz-agent", "1001"), "supervisor": ("fz-sup", None),
         "admin": ("fz-admin", None), "auditor": ("fz-auditor", None)}


async def _seed(service, console) -> dict[str, str]:
    """A few real cases (answered, abandoned with a callback task) for the examples."""
    now = time.time()
    numbers = []
    for i, tail in enumerate(("answered", "abandoned")):
        call_id = f"node1:fuzz-{tail}-{time.time_ns()}"
        facts = [("arrived", {"caller": f"1391234{5670 + i}", "dialed": "12345"}),
                 ("routed", {"queue": "nanjing-general", "city": "nanjing"}),
                 ("queued", {"queue": "nanjing-general"})]
        facts += ([("answered", {"agent": "1001", "uniqueid": f"u{i}", "hold_time": 2})]
                  if tail == "answered" else [("abandoned", {"hold_time": 20})])
        facts.append(("ended", {}))
        for kind, data in facts:
            await service.store.apply(CallFact(kind, call_id, "node1", now, data))
        case = await service.store.by_call(call_id)
        numbers.append(case.number)
        if tail == "answered":  # a real recording file to download
            from asr.models import Recording

            f = service.transcripts.dir / "fuzz" / f"{case.number}-1-mix.wav"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
            async with service.store.sessions() as s, s.begin():
                s.add(Recording(case_id=case.id, side="mix", part=1, path=str(f),
                                url_name=f"fuzz/{f.name}", offset=0.0))
            name = f"fuzz/{f.name}"
        if tail == "abandoned":
            await service.drain()  # the callback worker makes the task of the abandon
            task = next(t for t in await console.cases.callbacks(Scope.everything())
                        if t["case"] == case.number)
    return {"number": numbers[0], "id": str(task["id"]), "agent": "1001", "name": name}


async def _seed_not_for_the_agent(service) -> list[str]:
    """Cases the agent (1001, nanjing) must never receive: another agent's in the same city
    and another city's, the second one with a callback task of its own city."""
    now = time.time()
    numbers = []
    for city, agent in (("nanjing", "1002"), ("suzhou", "2001"), ("suzhou", None)):
        call_id = f"node1:fuzz-other-{city}-{time.time_ns()}"
        facts = [("arrived", {"caller": "13912345670", "dialed": "12345"}),
                 ("routed", {"queue": f"{city}-general", "city": city}),
                 ("queued", {"queue": f"{city}-general"})]
        facts += ([("answered", {"agent": agent, "uniqueid": f"o{time.time_ns()}",
                                 "hold_time": 2})] if agent else
                  [("abandoned", {"hold_time": 20})])
        facts.append(("ended", {}))
        for kind, data in facts:
            await service.store.apply(CallFact(kind, call_id, "node1", now, data))
        numbers.append((await service.store.by_call(call_id)).number)
    await service.drain()  # the callback worker makes the suzhou abandon's task
    return numbers


def _spec_with_examples(spec: dict, examples: dict[str, str],
                        more: dict[str, list[str]] | None = None) -> dict:
    for ops in spec["paths"].values():
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["in"] == "path" and p["name"] in examples:
                    p["examples"] = {"seeded": {"value": examples[p["name"]]}}
                    for i, v in enumerate((more or {}).get(p["name"], [])):
                        p["examples"][f"other{i}"] = {"value": v}
    return spec


def _leaks(har: dict, forbidden: list[str], agent: str, city: str) -> list[str]:
    """What an agent's answers held that is not theirs to see: a forbidden case number
    anywhere, or a case (or callback task) of another agent or city."""
    found = []

    def walk(doc: object, where: str) -> None:
        if isinstance(doc, dict):
            if "number" in doc and "agent_id" in doc and doc["agent_id"] not in (None, agent):
                found.append(f"{where}: case {doc['number']} of agent {doc['agent_id']}")
            if "city" in doc and ("number" in doc or "case" in doc) \
                    and doc["city"] not in (None, city):
                found.append(f"{where}: {doc.get('number') or doc.get('case')} of "
                             f"{doc['city']}")
            for v in doc.values():
                walk(v, where)
        elif isinstance(doc, list):
            for v in doc:
                walk(v, where)

    for entry in har["log"]["entries"]:
        where = f"{entry['request']['method']} {entry['request']['url']}"
        if "/api/openapi.json" in where:
            continue  # the description: schemas, not cases
        text = entry["response"].get("content", {}).get("text") or ""
        # (A refusal repeats the number asked for: "no case <number>".)
        for n in forbidden if 200 <= entry["response"]["status"] < 300 else ():
            if n in text:
                found.append(f"{where}: {n} in the answer")
        try:
            walk(json.loads(text), where)
        except ValueError:
            pass
    return found


async def _consistency(engine) -> list[str]:
    """What must hold whatever the requests were."""
    problems = []
    async with engine.connect() as c:
        async def q(sql: str) -> list:
            return (await c.execute(sa.text(sql))).all()
        for table in ("case_forms", "callback_tasks", "call_events", "call_legs"):
            orphans = await q(f"SELECT count(*) FROM {table} t LEFT JOIN cases c "
                              f"ON c.id = t.case_id WHERE c.id IS NULL")
            if orphans[0][0]:
                problems.append(f"{table}: {orphans[0][0]} row(s) without a case")
        # Every saved version of a form has its audit entry (same transaction).
        for number, version, audited in await q(
                "SELECT c.number, f.version, (SELECT count(*) FROM audit_log a WHERE "
                "a.case_number = c.number AND a.action = 'case.form') FROM case_forms f "
                "JOIN cases c ON c.id = f.case_id"):
            if version != audited:
                problems.append(f"case {number}: form version {version}, {audited} audited")
        for number, audited in await q(
                "SELECT c.number, (SELECT count(*) FROM audit_log a WHERE a.case_number = "
                "c.number AND a.action = 'case.close') FROM cases c "
                "WHERE c.closed_at IS NOT NULL"):
            if audited != 1:
                problems.append(f"case {number}: closed, {audited} close entries")
        for number, attempts, audited in await q(
                "SELECT c.number, t.attempts, (SELECT count(*) FROM audit_log a WHERE "
                "a.case_number = c.number AND a.action = 'callback.call') FROM callback_tasks t "
                "JOIN cases c ON c.id = t.case_id"):
            if attempts != audited:
                problems.append(f"case {number}: {attempts} callback attempts, {audited} "
                                f"audited")
        for role, in await q("SELECT DISTINCT role FROM web_users"):
            if role not in ("agent", "supervisor", "admin", "auditor"):
                problems.append(f"a user with role {role!r}")
        for h, in await q("SELECT password_hash FROM web_users"):
            if not h.startswith("scrypt$"):
                problems.append("a password not hashed with scrypt")
    return problems


@pytest.fixture(scope="module")
async def fuzz_lab(tmp_path_factory):
    lab = Lab(lab_test_config(tmp_path_factory.mktemp("fuzz")))
    await lab.start_asterisk()
    yield lab
    await lab.close()


@pytest.mark.timeout(900)  # four schemathesis runs; about two minutes on a quiet machine
async def test_console_api_fuzzed_from_its_openapi_description(fuzz_lab, tmp_path, redis):
    from agent_desk.web.auth import Users

    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st, "schemathesis is in the dev extra: scripts/bootstrap.sh installs it"
    lab = fuzz_lab
    cfg = lab.cfg.model_copy(update={
        "database": lab.cfg.database.model_copy(
            update={"url": f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"}),
        "redis": lab.cfg.redis.model_copy(update={"prefix": f"hotline-fuzz-{time.time_ns()}"})})
    service = lab.build_service(cfg, cel_from_now=True,
                                ami_options={"backoff": (0.1, 0.2, 0.5)})
    await service.start()
    port = free_port()
    runner, console = await start_web(service, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    try:
        await service.wait_connected(20)
        users = Users(service.store.sessions)
        for role, (name, agent) in USERS.items():
            await users.add(name, CONSOLE_PASSWORD, role, agent_id=agent)
        examples = await _seed(service, console)
        not_for_the_agent = await _seed_not_for_the_agent(service)
        async with aiohttp.ClientSession() as http:
            spec = await (await http.get(f"{base}/api/openapi.json")).json()
            sessions = {}
            for role, (name, _) in USERS.items():
                resp = await http.post(f"{base}/api/login", json={
                    "username": name, "password": CONSOLE_PASSWORD})
                assert resp.status == 200, await resp.text()
                sessions[role] = (resp.cookies["hl_session"].value, (await resp.json())["csrf"])
        spec_file = tmp_path / "openapi.json"
        spec_file.write_text(json.dumps(_spec_with_examples(
            spec, examples, {"number": not_for_the_agent})), encoding="utf-8")

        reports = []
        for role, (cookie, csrf) in sessions.items():
            report = tmp_path / f"st-{role}"
            argv = [st, "run", str(spec_file), "--url", base, "--checks", CHECKS,
                    "--max-examples", str(EXAMPLES), "--seed", "12345", "--workers", "1",
                    "--phases", "examples,coverage,fuzzing", "--request-timeout", "20",
                    "--generation-database", "none", "--no-color",
                    # The session and CSRF header are given below, not generated.
                    "--generation-with-security-parameters", "false",
                    "--exclude-operation-id", "logout",  # would end this role's session
                    "--exclude-operation-id", "ws",  # a WebSocket handshake, tested apart
                    "-H", f"Cookie: hl_session={cookie}", "-H", f"X-CSRF-Token: {csrf}",
                    "--report", "junit,har", "--report-dir", str(report),
                    "--report-har-path", str(report / "run.har")]
            started = time.monotonic()
            out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                          timeout=400, cwd=tmp_path)
            reports.append((role, out, time.monotonic() - started))
        for role, out, secs in reports:
            print(f"schemathesis as {role}: exit {out.returncode} in {secs:.0f} s\n"
                  + out.stdout[-1500:])
        failed = [(role, out.stdout[-6000:]) for role, out, _ in reports if out.returncode]
        assert not failed, "\n\n".join(f"== as {r} ==\n{o}" for r, o in failed)
        # Need-to-know: the agent's run got nothing of another agent or city (the requests
        # asked for those cases by number too).
        har = json.loads((tmp_path / "st-agent" / "run.har").read_text(encoding="utf-8"))
        assert len(har["log"]["entries"]) > 100
        assert _leaks(har, not_for_the_agent, "1001", "nanjing") == []

        # Still up and serving, AMI still connected.
        async with aiohttp.ClientSession(cookies={"hl_session": sessions["admin"][0]}) as http:
            resp = await http.get(f"{base}/api/me")
            assert resp.status == 200
        assert service.nodes["node1"].ami.connected
        # Nothing half-written.
        assert await _consistency(service.engine) == []
    finally:
        await runner.cleanup()
        await service.stop()
        keys = [k async for k in redis.scan_iter(f"{cfg.redis.prefix}:*")]
        if keys:
            await redis.delete(*keys)
