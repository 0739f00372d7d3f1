"""The console's HTTP API against the real service (Asterisk, SQLite, Redis): who may call
what, CSRF, validation, and clear 4xx answers that leave nothing half-done."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from agent_desk.web.auth import COOKIE, Sessions, hash_password, verify_password
from hotline.desk import ROUTES
from tests.support.asterisk import wait_clean
from tests.support.console import CONSOLE_PASSWORD
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

ROLE_USER = {"agent": "agent1001", "supervisor": "sup", "admin": "admin",
             "auditor": "auditor", "department": "dept-user"}


async def add_auditor(console) -> None:
    """The roles the console fixture does not make: an auditor, a department's staff."""
    from agent_desk.web.auth import Users
    from cases.loop.store import DepartmentEntry

    users = Users(console.service.store.sessions)
    await users.add("auditor", CONSOLE_PASSWORD, "auditor")
    await console.service.case_loop.upsert_departments([
        DepartmentEntry("nj-chengguan", "南京市城市管理局", "city", "nanjing")])
    await users.add("dept-user", CONSOLE_PASSWORD, "department", department_id="nj-chengguan")


def concrete(path: str) -> str:
    return (path.replace("{number}", "20990101000001").replace("{name}", "x.wav")
            .replace("{id}", "999999").replace("{agent}", "1001").replace("{user}", "nobody")
            .replace("{department}", "nj-chengguan").replace("{token}", "999999")
            .replace("{seq}", "0"))


DEPT_BODIES = {"return": {"reason": "x"}, "note": {"text": "x"},
               "reply": {"text": "x", "contacted": True}, "extension": {"days": 1, "reason": "x"}}


def test_passwords_are_scrypt_hashed():
    h = hash_password("s3cret-pass")
    assert h.startswith("scrypt$16384$8$1$") and "s3cret" not in h
    assert verify_password("s3cret-pass", h)
    assert not verify_password("s3cret-pasS", h)
    assert not verify_password("x", "md5$abc")


async def test_every_endpoint_checks_role_session_and_csrf(console):
    await add_auditor(console)
    anon = await console.anonymous()
    users = {role: await console.user(name) for role, name in ROLE_USER.items()}

    status, spec = await anon.get("/api/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    for r in ROUTES:
        assert r.method.lower() in spec["paths"][r.path], r.path
        if r.body is not None:
            assert "requestBody" in spec["paths"][r.path][r.method.lower()]

    for r in ROUTES:
        if r.bearer and r.path.startswith("/api/dept/"):
            # A department's system: its API token, whatever the cookie (a valid body, so
            # the token is what is refused).
            body = DEPT_BODIES.get(r.name.removeprefix("api_"), {})
            for who in (anon, *users.values()):
                status, doc = await who.call(r.method, concrete(r.path), body)
                assert status == 401 and doc["error"] == "bad_token", (r.path, status, doc)
            continue
        if not r.roles:
            continue
        path = concrete(r.path)
        status, doc = await anon.call(r.method, path, {})
        assert status == 401 and doc["error"] == "not_signed_in", (r.path, status, doc)
        for role, user in users.items():
            if role not in r.roles:
                status, doc = await user.call(r.method, path, {})
                assert status == 403 and doc["error"] == "forbidden", (r.path, role, doc)
                assert role in doc["message"]
            elif r.method != "GET":
                status, doc = await user.call(r.method, path, {}, csrf=False)
                assert status == 403 and doc["error"] == "csrf", (r.path, role, doc)
                status, doc = await user.call(r.method, path, {},
                                              headers={"X-CSRF-Token": "forged"}, csrf=False)
                assert status == 403 and doc["error"] == "csrf", (r.path, role, doc)

    # A session past its expiry, correctly signed, is refused as expired.
    old, _ = Sessions(console.service.cfg.session_secret, 60).issue(
        type("U", (), {"id": 1, "username": "sup", "role": "supervisor", "agent_id": None,
                         "session_version": 0})(),
        now=1_000_000)
    expired = await console.anonymous()
    expired.client.session.cookie_jar.update_cookies({COOKIE: old})
    status, doc = await expired.get("/api/me")
    assert status == 401 and doc["error"] == "session_expired"
    # A tampered cookie is not a session.
    tampered = await console.anonymous()
    tampered.client.session.cookie_jar.update_cookies({COOKIE: old[:-3] + "abc"})
    status, doc = await tampered.get("/api/me")
    assert status == 401 and doc["error"] == "not_signed_in"
    # Signed out: the cookie is gone, and a copy of it no longer works either.
    sup = users["supervisor"]
    copied = sup.client.session.cookie_jar.filter_cookies(sup.client.make_url("/"))[COOKIE]
    assert (await sup.post("/api/logout"))[0] == 200
    assert (await sup.get("/api/me"))[0] == 401
    thief = await console.anonymous()
    thief.client.session.cookie_jar.update_cookies({COOKIE: copied.value})
    status, doc = await thief.get("/api/me")
    assert status == 401 and "signed out" in doc["message"]


async def test_login_is_rate_limited_per_user_and_per_address(console):
    """Failed sign-ins lock the user out wherever they come from, and the address out for
    every user once its own (higher) limit is passed; a locked-out answer is 429 with
    Retry-After, even with the right password."""
    web_cfg = console.service.cfg.web
    limiter = console.console.limiter
    assert (limiter.attempts, limiter.address_attempts) == (
        web_cfg.login_attempts, web_cfg.login_attempts_per_address)
    limiter.address_attempts = web_cfg.login_attempts + 3  # reached within the test
    here = await console.anonymous()  # from 127.0.0.1
    there = await _client_from(console, "127.0.0.2")  # another address (the loopback /8)

    async def login(client, user, password=CONSOLE_PASSWORD):
        resp = await client.request("POST", "/api/login",
                                    json={"username": user, "password": password})
        return resp.status, await resp.json(), resp.headers

    for _ in range(web_cfg.login_attempts):
        status, doc, _ = await login(here.client, "sup", "wrong")
        assert status == 401 and doc["error"] == "bad_credentials"
    for client in (here.client, there):  # per user: from any address
        status, doc, headers = await login(client, "sup")
        assert status == 429 and doc["error"] == "too_many_attempts", doc
        wait = int(headers["Retry-After"])
        assert 0 < wait <= web_cfg.login_window_s and f"{wait} s" in doc["message"]
    # Another user from this address is still let in (the address limit is higher) ...
    status, doc, _ = await login(here.client, "admin")
    assert status == 200, doc
    for i in range(3):
        status, _, _ = await login(here.client, f"ghost{i}", "wrong")
        assert status == 401
    # ... until the address has failed too often: then nobody signs in from it,
    status, doc, headers = await login(here.client, "admin")
    assert status == 429 and int(headers["Retry-After"]) > 0, doc
    # while the same user from elsewhere does.
    status, doc, _ = await login(there, "admin")
    assert status == 200, doc
    # The counters are in Redis, keyed without the username in clear.
    keys = [k async for k in console.service.redis.scan_iter(f"{limiter.prefix}:*")]
    assert keys and not [k for k in keys if "sup" in k.split(":")[-1]]


async def _client_from(console, address: str):
    session = aiohttp.ClientSession(
        base_url=console.base_url,
        connector=aiohttp.TCPConnector(local_addr=(address, 0)))

    class Closer:
        async def close(self):
            await session.close()
    console.clients.append(Closer())
    return session


async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(console):
    agent = await console.user("agent1001")
    sup = await console.user("sup")
    admin = await console.user("admin")
    svc = console.service

    status, doc = await agent.post("/api/console/pause", raw=b"{not json")
    assert status == 400 and doc["error"] == "bad_json"
    status, doc = await agent.post("/api/console/pause", raw=b"[1, 2]")
    assert status == 400 and doc["error"] == "bad_json"
    status, doc = await agent.post("/api/console/pause", {"reason": "nap"})
    assert status == 422 and "reason" in doc["message"]
    status, doc = await agent.post("/api/console/pause", {"reason": "rest", "extra": 1})
    assert status == 422 and "extra" in doc["message"]
    status, doc = await sup.post("/api/agents/1001/pause", {"paused": "yes"})
    assert status == 422 and "paused" in doc["message"]
    status, doc = await sup.put("/api/agents/1001/skills", {"skills": {"general": "4"}})
    assert status == 422
    status, doc = await sup.put("/api/agents/1001/skills", {"skills": {"cooking": 4}})
    assert status == 422 and "cooking" in doc["message"]
    assert svc.skills.of("1001") == dict(svc.cfg.agent("1001").skills)
    status, doc = await admin.post("/api/users", {"username": "x", "password": "short",
                                                  "role": "agent", "agent_id": "1001"})
    assert status == 422 and "password" in doc["message"]

    big = json.dumps({"content": "字" * svc.cfg.web.max_body_bytes}).encode()
    status, doc = await agent.put("/api/cases/20990101000001/form", raw=big)
    assert status == 413 and doc["error"] == "too_large"

    # Unknown ids.
    status, doc = await agent.get("/api/cases/20990101000001")
    assert status == 404 and doc["error"] == "not_found"
    status, doc = await agent.put("/api/cases/20990101000001/form", {"subject": "x"})
    assert status == 404
    status, doc = await agent.post("/api/callbacks/123456/call")
    assert status == 404
    status, doc = await agent.post("/api/callbacks/abc/outcome", {"outcome": "reached"})
    assert status == 404
    status, doc = await sup.post("/api/agents/9999/pause", {"paused": True})
    assert status == 404 and doc["error"] == "unknown_agent"
    status, doc = await agent.get("/api/cases?category=gossip")
    assert status == 422
    status, doc = await agent.get("/api/cases?from=yesterday")
    assert status == 422

    # Actions that do not fit: no call to hang up, hold or transfer.
    status, doc = await agent.post("/api/console/hangup")
    assert status == 409 and doc["error"] == "no_call"
    status, doc = await agent.post("/api/console/transfer", {"action": "three_way"})
    assert status == 409 and doc["error"] == "no_call"
    status, doc = await agent.post("/api/console/answer")
    assert status == 409 and doc["error"] == "no_softphone"

    # A supervisor pausing an agent who just signed out: 409, and the agent stays out.
    status, doc = await agent.post("/api/console/signout")
    assert status == 200, doc
    status, doc = await sup.post("/api/agents/1001/pause", {"paused": True})
    assert status == 409 and doc["error"] == "signed_out", doc
    assert not svc.presence.is_signed_in("1001")
    members = await svc.nodes[svc.lab_node if hasattr(svc, "lab_node") else "node1"].ami \
        .send_list({"Action": "QueueStatus", "Member": "PJSIP/1001"})
    assert not [m for m in members if m.get("Event") == "QueueMember"]
    status, doc = await agent.post("/api/console/signin")
    assert status == 200 and doc["changes"] > 0


async def test_supervisor_pauses_and_changes_skills_live_on_the_wallboard(console):
    sup = await console.user("sup")
    svc = console.service
    ws = await sup.client.ws_connect("/api/ws")
    try:
        snap = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert snap["type"] == "snapshot" and "1001" in snap["agents"]
        status, doc = await sup.post("/api/agents/1001/pause", {"paused": True,
                                                                "reason": "training"})
        assert status == 200, doc

        async def paused_update():
            msg = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            a = msg.get("agents", {}).get("1001")
            return a if a and a["state"] == "paused" and a["reason"] == "training" else None
        await eventually(paused_update, 20, 0, what="1001 paused on the wallboard")

        status, doc = await sup.put("/api/agents/1002/skills",
                                    {"skills": {"general": 2, "lang_en": 5}})
        assert status == 200 and doc["after"] == {"general": 2, "lang_en": 5}, doc
        assert svc.skills.of("1002") == {"general": 2, "lang_en": 5}
        status, doc = await sup.get("/api/agents")
        assert next(a for a in doc["agents"] if a["agent"] == "1002")["skills"] == {
            "general": 2, "lang_en": 5}
    finally:
        await ws.close()
        await svc.skills.reset("1002", by="test")


class TranscriptsOfTheAsrHelper:
    """The interface the transcript helper provides as ``service.transcripts`` (agreed in the
    brief); here with fixed content, to test what the console makes of it."""

    dir = None  # the console then serves from [web] recordings_dir

    def __init__(self, docs):
        self.docs = docs

    async def for_case(self, case_number):
        return json.loads(json.dumps(self.docs.get(case_number, {
            "status": "none", "error": None, "segments": [], "recordings": []})))


async def test_transcript_and_recordings_are_served_only_from_the_recordings_dir(
        console, tmp_path):
    import time

    from common import sealed
    from common.facts import CallFact

    svc = console.service
    call_id = f"node1:rec-{time.time_ns()}"
    ref = await svc.store.apply(CallFact("arrived", call_id, "node1", time.time(),
                                         {"caller": "13800001111", "dialed": "12345"}))
    rec = tmp_path / "recordings"
    (rec / "2026" / "11").mkdir(parents=True)
    clear = tmp_path / "clear.wav"
    clear.write_bytes(b"RIFF....WAVEfmt ")
    for f in (rec / "mix.wav", rec / "2026" / "11" / "agent.wav"):  # sealed, as asr/ stores them
        sealed.seal_file(clear, f, console.console.personal)
    (tmp_path / "secret.wav").write_bytes(b"not for you")
    real = console.console.transcripts
    console.console.transcripts = TranscriptsOfTheAsrHelper({ref.number: {
        "status": "done", "error": None,
        "segments": [{"speaker": "caller", "start": 0.5, "end": 2.0, "text": "你好",
                      "confidence": 0.9}],
        "recordings": [
            {"side": "mix", "path": str(rec / "mix.wav"), "url_name": "mix.wav",
             "deleted_at": None},
            {"side": "agent", "path": "2026/11/agent.wav", "url_name": "2026/11/agent.wav",
             "deleted_at": None},
            {"side": "caller", "path": str(rec / ".." / "secret.wav"), "url_name": "up.wav",
             "deleted_at": None},
            {"side": "agent", "path": "/etc/passwd", "url_name": "etc.wav", "deleted_at": None},
            {"side": "caller", "path": str(rec / "mix.wav"), "url_name": "gone.wav",
             "deleted_at": "2026-11-22T00:00:00+00:00"}]}})
    console.console.web = svc.cfg.web.model_copy(update={"recordings_dir": rec})
    agent = await console.user("sup")  # recordings are for supervisors (issue 15)
    try:
        status, doc = await agent.get(f"/api/cases/{ref.number}/transcript")
        assert status == 200 and doc["segments"][0]["text"] == "你好"
        assert all("path" not in r for r in doc["recordings"])  # no server paths out
        for name in ("mix.wav", "2026/11/agent.wav"):
            resp = await agent.client.get(f"/api/recordings/{ref.number}/{name}")
            assert resp.status == 200 and (await resp.read()).startswith(b"RIFF"), name
        for name in ("up.wav", "etc.wav", "gone.wav", "nope.wav"):
            status, doc = await agent.get(f"/api/recordings/{ref.number}/{name}")
            assert status == 404, (name, doc)
        status, doc = await agent.get("/api/cases/20990101000001/transcript")
        assert status == 404
    finally:
        console.console.transcripts = real

    # Without the transcript helper: an empty transcript, not an error.
    status, doc = await agent.get(f"/api/cases/{ref.number}/transcript")
    assert status == 200 and doc["status"] == "none"


async def test_websocket_needs_a_session_and_agents_get_only_their_own_events(console):
    anon = await console.anonymous()
    resp = await anon.client.get("/api/ws")
    assert resp.status == 401
    sup = await console.user("sup")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await sup.client.ws_connect("/api/ws", origin="https://evil.example")
    assert refused.value.status == 403

    a1 = await console.user("agent1001")
    a2 = await console.user("agent1002")
    ws1 = await a1.client.ws_connect("/api/ws")
    ws2 = await a2.client.ws_connect("/api/ws")
    try:
        assert json.loads((await asyncio.wait_for(ws1.receive(), 10)).data)["type"] == "hello"
        assert json.loads((await asyncio.wait_for(ws2.receive(), 10)).data)["type"] == "hello"
        svc = console.service
        await svc.live.publish("softphone", {"agent": "1001", "event": "ringing"})
        msg = json.loads((await asyncio.wait_for(ws1.receive(), 10)).data)
        assert msg["type"] == "console" and msg["event"]["agent"] == "1001"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws2.receive(), 1.0)
    finally:
        await ws1.close()
        await ws2.close()


def test_web_user_command_creates_a_user_with_a_hashed_password(tmp_path):
    import os
    import subprocess
    import sys

    from lab.harness import REPO, lab_config_toml

    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    env = {**os.environ, "HOTLINE_NEW_PASSWORD": "a-long-password-1"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(cfg_path),
                               "web", "user", *args], capture_output=True, text=True,
                              timeout=120, cwd=REPO, env=env)

    ok = run("wang", "--role", "agent", "--agent", "1001", "--name", "王芳")
    assert ok.returncode == 0, ok.stderr
    bad = run("nobody", "--role", "agent", "--agent", "9999")
    assert bad.returncode == 2 and "--agent" in bad.stderr
    import sqlite3
    db = sqlite3.connect(tmp_path / "data" / "hotline.db")
    row = db.execute("select role, agent_id, password_hash from web_users where username = ?",
                     ("wang",)).fetchone()
    db.close()
    assert row[0] == "agent" and row[1] == "1001"
    assert verify_password("a-long-password-1", row[2]) and "a-long" not in row[2]


async def test_surge_figures_and_proposals_for_supervisors_only(console):
    sup = await console.user("sup")
    status, doc = await sup.get("/api/surge")
    assert status == 200, doc
    queues = {q["queue"]: q for c in doc["cities"] for q in c["queues"]}
    assert "nanjing-general" in queues and "agents_needed" in queues["nanjing-general"]
    status, doc = await sup.post("/api/surge/proposal", {"target": "nowhere"})
    assert status == 404 and doc["error"] == "not_found"
    status, doc = await sup.post("/api/surge/proposal", {"target": "nanjing"})
    assert status == 200 and doc["queue"] == "nanjing-general" and doc["id"], doc
    assert all(a["from_city"] != "nanjing" for a in doc["agents"])
    status, doc = await sup.post("/api/surge/apply", {"proposal_id": "feedface0000"})
    assert status == 404, doc
    status, doc = await sup.post("/api/surge/proposal", {"target": 42})
    assert status == 422, doc
    agent = await console.user("agent1001")
    for method, path, body in (("GET", "/api/surge", None),
                               ("POST", "/api/surge/proposal", {"target": "nanjing"}),
                               ("POST", "/api/surge/return", {"agent_ids": ["2001"]})):
        status, doc = await agent.call(method, path, body)
        assert status == 403, (path, doc)


async def test_metrics_for_prometheus_on_the_loopback(console):
    """A real call through Asterisk, then a scrape: the figures under their names, the
    timings of its routing, AMI events and case writes, in a text prometheus_client parses."""
    svc = console.service
    node = svc.cfg.nodes[0].id
    party = await console.lab.caller("13912340000")
    call = await console.lab.dial(party, trunk="nanjing")
    await eventually(lambda: _case_written(svc), 30, what="the call routed and on its case")
    await party.hangup(call)
    assert await wait_clean(console.lab) == {}
    await party.close()
    await svc.drain()

    anon = await console.anonymous()  # the test client comes from 127.0.0.1
    resp = await anon.client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    text = await resp.text()
    lines = text.splitlines()
    assert f'hotline_ami_connected{{node="{node}"}} 1.0' in lines
    assert "# TYPE hotline_ami_events_total counter" in lines
    assert 'hotline_case_facts_total{result="applied"}' in text
    assert 'hotline_transcription_jobs{state="pending"}' in text
    assert "hotline_redis_up 1.0" in lines and "hotline_redis_losses_total 0.0" in lines
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for old in ("hotline_up", "hotline_uptime_seconds", "hotline_ami_event_backlog",
                "hotline_ami_resyncs", "hotline_ami_malformed", "hotline_active_calls",
                "hotline_cel_completed", "hotline_routes", "hotline_route_fallbacks",
                "hotline_transfer_handovers", "hotline_redis_outages",
                "hotline_redis_recoveries", "hotline_agents", "hotline_queue_waiting"):
        assert old in families, old
    assert families["hotline_routes"].samples[0].value >= 1

    def count(name: str, **labels: str) -> float:
        return next(s.value for s in families[name].samples
                    if s.name == f"{name}_count" and s.labels == labels)

    assert families["hotline_route_decision_seconds"].type == "histogram"
    assert count("hotline_route_decision_seconds") >= 1
    assert count("hotline_ami_event_handling_seconds", node=node) > 0
    assert count("hotline_ami_lag_seconds", node=node) > 0
    assert count("hotline_case_write_seconds") > 0
    assert "hotline_transcription_seconds" in families
    assert families["process_cpu_seconds"].samples[0].value > 0


async def _case_written(svc) -> bool:
    return svc.router.decisions > 0 and svc.store.facts_applied > 0


def test_metrics_access_rule():
    from agent_desk.metrics import allowed

    assert allowed("127.0.0.1", None, None) and allowed("::1", None, "t0k")
    assert not allowed("10.1.2.3", None, None)
    assert not allowed("10.1.2.3", "Bearer wrong", "t0k")
    assert allowed("10.1.2.3", "Bearer t0k", "t0k")
    assert not allowed("10.1.2.3", "Bearer ", "")
