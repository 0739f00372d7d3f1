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
from agent_desk.audit import Actor
from agent_desk.models import ROLES
from cases.loop.states import Actor as LoopActor
from cases.loop.states import Command
from cases.loop.store import DepartmentEntry, Details
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
# The department's run comes before the admin's: the admin's run finds the department's user
# in the directory's answers and may delete it.
USERS = {"agent": ("fz-agent", "1001"), "supervisor": ("fz-sup", None),
         "department": ("fz-dept-user", None), "admin": ("fz-admin", None),
         "auditor": ("fz-auditor", None)}
# The department whose user and system (API token) are fuzzed, and another one the admin's
# examples name (so the admin's run does not revoke the token the department's run uses).
API_DEPT, EXAMPLE_DEPT = "fz-api", "fz-dept"


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
    # The answered case, classified and dispatched to the fuzzed department: its user's and its
    # system's runs work on it (sign, note, reply ...).
    loop = service.case_loop
    await loop.upsert_departments([
        DepartmentEntry(API_DEPT, "模糊测试承办单位", "city", "nanjing"),
        DepartmentEntry(EXAMPLE_DEPT, "模糊测试示例单位", "district", "nanjing", API_DEPT)])
    agent = LoopActor("fz-agent", "agent")
    await loop.act(numbers[0], agent, Command("classify"), Details(
        appeal_type="complaint", matter="urban.sanitation.street_vending"))
    await loop.act(numbers[0], agent, Command("dispatch", lead=API_DEPT))
    return {"number": numbers[0], "id": str(task["id"]), "agent": "1001", "name": name,
            "department": EXAMPLE_DEPT}


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
            if role not in ROLES:
                problems.append(f"a user with role {role!r}")
        for user, in await q("SELECT username FROM web_users WHERE role = 'department' AND "
                             "(department_id IS NULL OR department_id NOT IN "
                             "(SELECT id FROM departments))"):
            problems.append(f"department user {user} without a department of the directory")
        # Every change of a case's loop by a department is audited.
        for number, changes, audited in await q(
                "SELECT c.number, (SELECT count(*) FROM call_events e WHERE e.case_id = c.id "
                "AND e.kind LIKE 'loop.%' AND e.detail LIKE '%\"role\": \"department\"%'), "
                "(SELECT count(*) FROM audit_log a WHERE a.case_number = c.number AND "
                "a.action = 'case.loop') FROM cases c"):
            if changes > audited:
                problems.append(f"case {number}: {changes} department changes, {audited} "
                                "audited")
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
        "redis": lab.cfg.redis.model_copy(update={"prefix": f"hotline-fuzz-{time.time_ns()}"}),
        # The department's system is fuzzed with one token: no rate limit in the way.
        "web": lab.cfg.web.model_copy(update={"token_requests_per_minute": 0})})
    service = lab.build_service(cfg, cel_from_now=True,
                                ami_options={"backoff": (0.1, 0.2, 0.5)})
    await service.start()
    port = free_port()
    runner, console = await start_web(service, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    try:
        await service.wait_connected(20)
        examples = await _seed(service, console)
        users = Users(service.store.sessions)
        for role, (name, agent) in USERS.items():
            await users.add(name, CONSOLE_PASSWORD, role, agent_id=agent,
                            department_id=API_DEPT if role == "department" else None)
        assert console.tokens is not None
        token = (await console.tokens.issue(API_DEPT, "fuzz", Actor("fz-admin", "admin"))
                 )["token"]
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

        # A body over [web] max_body_bytes is refused with 413 before it is read: for
        # schema-violating data (a CSV import past its maxLength) that is a refusal too.
        config = tmp_path / "schemathesis.toml"
        config.write_text('[checks.negative_data_rejection]\nexpected-statuses = ["400", '
                          '"401", "403", "404", "405", "406", "409", "413", "415", "422", '
                          '"428", "429", "5xx"]\n', encoding="utf-8")
        reports = []
        for role, (cookie, csrf) in sessions.items():
            report = tmp_path / f"st-{role}"
            argv = [st, "--config-file", str(config), "run", str(spec_file), "--url", base,
                    "--checks", CHECKS,
                    "--max-examples", str(EXAMPLES), "--seed", "12345", "--workers", "1",
                    "--phases", "examples,coverage,fuzzing", "--request-timeout", "20",
                    "--generation-database", "none", "--no-color",
                    # The session and CSRF header are given below, not generated.
                    "--generation-with-security-parameters", "false",
                    "--exclude-operation-id", "logout",  # would end this role's session
                    "--exclude-operation-id", "ws",  # a WebSocket handshake, tested apart
                    "-H", f"Cookie: hl_session={cookie}", "-H", f"X-CSRF-Token: {csrf}",
                    # The department's run is its system's too (/api/dept/..., by token).
                    *(["-H", f"Authorization: Bearer {token}"] if role == "department"
                      else []),
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
        # The department's run (its user and its system) reached its routes and got nothing
        # of a case not dispatched to it.
        har = json.loads((tmp_path / "st-department" / "run.har").read_text(encoding="utf-8"))
        served = {(e["request"]["url"].split("/api/")[1].split("/")[0], e["response"]["status"])
                  for e in har["log"]["entries"] if "/api/" in e["request"]["url"]}
        mine = [(e["request"]["method"], e["request"]["url"].split("/api/")[1][:60],
                 e["response"]["status"], (e["response"].get("content", {}).get("text")
                                           or "")[:120])
                for e in har["log"]["entries"] if "/api/dep" in e["request"]["url"]]
        assert {("department", 200), ("dept", 200)} <= served, mine[:40]
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
