"""Issue 15, sessions and sign-in (High 2, Medium 1, Medium 10 part, Low): against the real
service (Asterisk, SQLite, Redis) through the console's HTTP API and WebSockets.

- a session ends when its user's password is reset, role changed, user disabled or deleted;
  a cookie for a user that does not exist is refused;
- that user's sockets close at once, in another web process too, on sign-out as well, and at
  the session's expiry without the client sending anything;
- concurrent wrong passwords: at most the limit get their password checked;
- X-Forwarded-For only from a trusted proxy (limiter, /metrics, audit);
- the live feed: auditors refused, at most ``max_sockets_per_user`` per user;
- the audit log holds the admin actions and sign-ins, and its hash chain shows an edited or a
  deleted entry; the idle timeout; the pages' CSP.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import delete, select, update

from agent_desk.audit import Audit
from agent_desk.models import AuditEntry, WebUser
from agent_desk.web.auth import COOKIE, Sessions, Users
from hotline.desk import console_app
from tests.support.console import CONSOLE_PASSWORD, ConsoleUser
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

NEW_PASSWORD = "another-horse-67890"


async def second_process(console: Any) -> tuple[Any, ConsoleUser]:
    """Another web process of the same service (its own gate, feed and sockets; only Redis
    and the database in common), with a client of its own."""
    app, deps = console_app(console.service)
    server = TestServer(app, host="127.0.0.1")
    await asyncio.wait_for(server.start_server(), 20)
    client = TestClient(server)
    await client.start_server()
    console.clients.append(client)

    class Closer:
        async def close(self) -> None:
            await server.close()
    console.clients.append(Closer())
    return deps, ConsoleUser(client)


def cookie_of(user: ConsoleUser) -> str:
    return str(user.client.session.cookie_jar.filter_cookies(user.client.make_url("/"))[COOKIE]
               .value)


async def as_cookie(console: Any, cookie: str) -> ConsoleUser:
    u = await console.anonymous()
    u.client.session.cookie_jar.update_cookies({COOKIE: cookie})
    return u


async def closed(ws: aiohttp.ClientWebSocketResponse) -> int:
    """The close code the server sent (messages before it are skipped)."""
    while True:
        msg = await asyncio.wait_for(ws.receive(), 20)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return int(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.ERROR):
            return int(ws.close_code or 0)


async def test_sessions_end_when_the_user_is_reset_changed_disabled_or_deleted(console):
    admin = await console.user("admin")
    sup = await console.user("sup")
    assert (await sup.get("/api/me"))[0] == 200

    # Password reset (same role): the old session ends, the new password signs in.
    status, doc = await admin.post("/api/users", {"username": "sup", "password": NEW_PASSWORD,
                                                  "role": "supervisor"})
    assert status == 200, doc
    status, doc = await sup.get("/api/me")
    assert status == 401 and doc["error"] == "not_signed_in", doc
    sup2 = await console.anonymous()
    status, doc = await sup2.post("/api/login", {"username": "sup", "password": NEW_PASSWORD})
    assert status == 200, doc
    sup2.csrf = doc["csrf"]

    # Role change: the cookie's role is no longer the user's.
    status, doc = await admin.post("/api/users", {"username": "sup", "password": NEW_PASSWORD,
                                                  "role": "auditor"})
    assert status == 200, doc
    assert (await sup2.get("/api/wallboard"))[0] == 401

    # Disable: sessions end, sign-in refused; enable: sign-in again.
    agent = await console.user("agent1002")
    status, doc = await admin.post("/api/users/agent1002/state", {"disabled": True})
    assert status == 200 and doc["disabled"] is True, doc
    assert (await agent.get("/api/me"))[0] == 401
    again = await console.anonymous()
    status, _ = await again.post("/api/login", {"username": "agent1002",
                                                "password": CONSOLE_PASSWORD})
    assert status == 401
    assert (await admin.post("/api/users/agent1002/state", {"disabled": False}))[0] == 200
    agent = await console.user("agent1002")

    # Delete: its session ends (checked by another web process: nothing cached there).
    _deps, other_agent = await second_process(console)
    other_agent.client.session.cookie_jar.update_cookies({COOKIE: cookie_of(agent)})
    assert (await other_agent.get("/api/me"))[0] == 200
    status, doc = await admin.call("DELETE", "/api/users/agent1002")
    assert status == 200, doc
    for u in (agent, other_agent):
        status, doc = await u.get("/api/me")
        assert status == 401 and "no longer exists" in doc["message"], doc
    # An admin cannot lock themselves out; unknown users are 404.
    assert (await admin.post("/api/users/admin/state", {"disabled": True}))[0] == 403
    assert (await admin.call("DELETE", "/api/users/nobody"))[0] == 404


async def test_a_forged_cookie_for_a_user_that_does_not_exist_is_refused(console):
    ghost = type("U", (), {"id": 424242, "username": "ghost", "role": "admin",
                           "agent_id": None, "session_version": 0})()
    cookie, _ = Sessions(console.service.cfg.session_secret, 600).issue(ghost)
    forged = await as_cookie(console, cookie)
    status, doc = await forged.get("/api/me")
    assert status == 401 and doc["error"] == "not_signed_in", doc
    status, doc = await forged.get("/api/audit")
    assert status == 401, doc
    # Nor a real user's id under another name or role.
    admin_id = (await console.console.users.state(
        (await _user(console, "admin")).id))
    assert admin_id is not None
    fake = type("U", (), {"id": admin_id.uid, "username": "admin", "role": "admin",
                          "agent_id": None, "session_version": admin_id.ver + 1})()
    cookie, _ = Sessions(console.service.cfg.session_secret, 600).issue(fake)
    assert (await (await as_cookie(console, cookie)).get("/api/me"))[0] == 401


async def _user(console: Any, name: str) -> WebUser:
    async with console.service.store.sessions() as s:
        return (await s.execute(select(WebUser).where(WebUser.username == name))).scalar_one()


async def test_sockets_close_at_once_on_disable_sign_out_and_expiry(console):
    admin = await console.user("admin")
    agent = await console.user("agent1001")
    ws = await agent.client.ws_connect("/api/ws")
    assert json.loads((await asyncio.wait_for(ws.receive(), 10)).data)["type"] == "hello"
    assert (await admin.post("/api/users/agent1001/state", {"disabled": True}))[0] == 200
    assert await closed(ws) == 4003
    assert (await admin.post("/api/users/agent1001/state", {"disabled": False}))[0] == 200

    # Signing out in one web process closes the session's socket in another.
    _deps, sup_there = await second_process(console)
    sup = await console.user("sup")
    sup_there.client.session.cookie_jar.update_cookies({COOKIE: cookie_of(sup)})
    ws = await sup_there.client.ws_connect("/api/ws")
    assert (await sup.post("/api/logout"))[0] == 200
    assert await closed(ws) == 4003

    # A session that expires while the socket is open, the client sending nothing.
    user = await _user(console, "agent1001")
    short = Sessions(console.service.cfg.session_secret, 3)
    cookie, sess = short.issue(user)
    await console.console.gate.started(sess, user)
    quiet = await as_cookie(console, cookie)
    ws = await quiet.client.ws_connect("/api/ws")
    assert await closed(ws) == 4001


async def test_concurrent_wrong_passwords_get_at_most_the_limit_checked(console):
    limit = console.service.cfg.web.login_attempts
    anon = await console.anonymous()

    async def guess(i: int) -> int:
        resp = await anon.client.post("/api/login", json={"username": "sup",
                                                          "password": f"guess-{i}"})
        return resp.status

    statuses = await asyncio.gather(*(guess(i) for i in range(50)))
    assert statuses.count(401) <= limit, statuses
    assert statuses.count(429) >= 50 - limit, statuses
    status, _ = await anon.post("/api/login", {"username": "sup", "password": CONSOLE_PASSWORD})
    assert status == 429
    # A success gives the address its attempt back (a shared NAT address is not used up).
    key = f"{console.console.limiter.prefix}:a:127.0.0.1"
    before = int(await console.service.redis.get(key) or 0)
    await console.user("admin")
    assert int(await console.service.redis.get(key) or 0) == before


async def test_forwarded_for_counts_only_from_a_trusted_proxy(console):
    deps = console.console
    redis = console.service.redis
    xff = {"X-Forwarded-For": "203.0.113.9"}
    anon = await console.anonymous()  # from 127.0.0.1

    async def login(address_header: dict[str, str], password: str = "wrong") -> int:
        resp = await anon.client.post("/api/login", headers=address_header,
                                      json={"username": "admin", "password": password})
        return resp.status

    # Untrusted peer: the header is ignored everywhere.
    assert await login(xff) == 401
    assert await redis.exists(f"{deps.limiter.prefix}:a:127.0.0.1")
    assert not await redis.exists(f"{deps.limiter.prefix}:a:203.0.113.9")
    assert (await anon.client.get("/metrics", headers=xff)).status == 200

    # The loopback as the trusted proxy: the header names the client.
    deps.web = deps.web.model_copy(update={"trusted_proxies": ["127.0.0.1/32"]})
    assert await login({"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}) == 401
    assert await redis.exists(f"{deps.limiter.prefix}:a:203.0.113.9")
    assert (await anon.client.get("/metrics", headers=xff)).status == 403
    assert (await anon.client.get("/metrics")).status == 200
    assert await login(xff, CONSOLE_PASSWORD) == 200
    async with console.service.store.sessions() as s:
        rows = (await s.execute(select(AuditEntry.action, AuditEntry.address).where(
            AuditEntry.username == "admin"))).all()
    assert ("session.signin_failed", "127.0.0.1") in rows
    assert ("session.signin_failed", "203.0.113.9") in rows
    assert ("session.signin", "203.0.113.9") in rows


async def test_live_feed_refuses_auditors_and_caps_sockets_per_user(console):
    await Users(console.service.store.sessions).add("auditor", CONSOLE_PASSWORD, "auditor")
    auditor = await console.user("auditor")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await auditor.client.ws_connect("/api/ws")
    assert refused.value.status == 403

    cap = console.service.cfg.web.max_sockets_per_user
    sup = await console.user("sup")
    sockets = [await sup.client.ws_connect("/api/ws") for _ in range(cap)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await sup.client.ws_connect("/api/ws")
    assert refused.value.status == 429
    # The open ones are kept; closing one makes room.
    assert not any(ws.closed for ws in sockets)
    await sockets.pop().close()

    async def room() -> bool:
        try:
            sockets.append(await sup.client.ws_connect("/api/ws"))
        except aiohttp.WSServerHandshakeError:
            return False
        return True
    await eventually(room, what="room for a socket once one is closed")
    for ws in sockets:
        await ws.close()


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_admin_actions_and_sign_ins_are_audited_in_a_hash_chain(console):
    admin = await console.user("admin")
    sup = await console.user("sup")
    anon = await console.anonymous()
    assert (await anon.post("/api/login", {"username": "sup", "password": "nope"}))[0] == 401
    assert (await admin.post("/api/users", {"username": "li", "password": NEW_PASSWORD,
                                            "role": "supervisor"}))[0] == 200
    assert (await admin.post("/api/users", {"username": "li", "password": NEW_PASSWORD,
                                            "role": "admin"}))[0] == 200
    assert (await admin.post("/api/users/li/state", {"disabled": True}))[0] == 200
    assert (await admin.post("/api/users/li/state", {"disabled": False}))[0] == 200
    status, doc = await sup.post("/api/agents/1001/pause", {"paused": True,
                                                            "reason": "training"})
    assert status == 200, doc
    assert (await sup.post("/api/agents/1001/pause", {"paused": False}))[0] == 200
    status, doc = await sup.put("/api/agents/1001/skills", {"skills": {"general": 3}})
    assert status == 200, doc
    assert (await sup.post("/api/logout"))[0] == 200

    status, doc = await admin.get("/api/audit?limit=200")
    assert status == 200, doc
    actions = {e["action"] for e in doc["entries"]}
    for a in ("session.signin", "session.signin_failed", "session.signout", "user.create",
              "user.password", "user.role", "user.disable", "user.enable", "agent.pause",
              "agent.skills"):
        assert a in actions, (a, actions)

    audit = Audit(console.service.store.sessions)
    report = await audit.verify()
    assert report.ok and report.entries >= 12 and report.unsealed == 0, report
    sm = console.service.store.sessions
    async with sm() as s:
        ids = (await s.execute(select(AuditEntry.id).order_by(AuditEntry.chain_seq))
               ).scalars().all()
    # An edited entry is named.
    async with sm() as s, s.begin():
        await s.execute(update(AuditEntry).where(AuditEntry.id == ids[3])
                        .values(address="10.0.0.66"))
    report = await audit.verify()
    assert not report.ok and any(f"entry {ids[3]} was changed" in p for p in report.problems)
    async with sm() as s, s.begin():
        await s.execute(update(AuditEntry).where(AuditEntry.id == ids[3])
                        .values(address="127.0.0.1"))
    assert (await audit.verify()).ok
    # A deleted one leaves a hole in the chain.
    async with sm() as s, s.begin():
        await s.execute(delete(AuditEntry).where(AuditEntry.id == ids[5]))
    report = await audit.verify()
    assert not report.ok and any("missing" in p for p in report.problems), report
    # And so does removing the last ones.
    async with sm() as s, s.begin():
        await s.execute(delete(AuditEntry).where(AuditEntry.id == ids[-1]))
    assert any("last entries" in p for p in (await audit.verify(seal=False)).problems)


async def test_an_idle_session_ends(console):
    sup = await console.user("sup")
    assert (await sup.get("/api/me"))[0] == 200
    gate = console.console.gate
    assert gate.idle_timeout_s == console.service.cfg.web.idle_timeout_s > 0
    sess, _ = console.console.sessions.read(cookie_of(sup))
    assert sess is not None
    # Idle for longer than the timeout: its activity mark has expired in Redis.
    await console.service.redis.delete(f"{gate.prefix}:web:seen:{sess.sid}")
    status, doc = await sup.get("/api/me")
    assert status == 401 and doc["error"] == "session_expired" and "without use" in \
        doc["message"], doc


async def test_pages_connect_only_to_their_own_host(console):
    anon = await console.anonymous()
    resp = await anon.client.get("/login")
    csp = resp.headers["Content-Security-Policy"]
    host = resp.url.host + f":{resp.url.port}"
    assert f"connect-src 'self' ws://{host} wss://{host};" in csp, csp
    assert " ws: " not in csp and "wss: " not in csp


def test_web_user_disable_and_audit_verify_commands(tmp_path):
    import os
    import sqlite3
    import subprocess
    import sys

    from lab.harness import REPO, lab_config_toml

    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    env = {**os.environ, "HOTLINE_NEW_PASSWORD": "a-long-password-1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(cfg_path),
                               *args], capture_output=True, text=True, timeout=120, cwd=REPO,
                              env=env)

    assert run("web", "user", "zhao", "--role", "supervisor").returncode == 0
    db_path = tmp_path / "data" / "hotline.db"

    def user_row() -> tuple[int, int]:
        db = sqlite3.connect(db_path)
        try:
            return db.execute("select disabled, session_version from web_users "
                              "where username = 'zhao'").fetchone()
        finally:
            db.close()

    _, version = user_row()
    done = run("web", "user", "zhao", "--disable")
    assert done.returncode == 0 and "disabled" in done.stdout, done.stderr
    assert user_row() == (1, version + 1)
    assert run("web", "user", "zhao", "--enable").returncode == 0
    assert user_row()[0] == 0
    assert run("web", "user", "nobody", "--disable").returncode == 2
    assert run("web", "user", "zhao").returncode == 2  # neither --role nor a state

    ok = run("audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
    db = sqlite3.connect(db_path)
    actions = [r[0] for r in db.execute("select action from audit_log order by id")]
    assert actions == ["user.create", "user.disable", "user.enable"], actions
    db.execute("update audit_log set username = 'someone' where action = 'user.disable'")
    db.commit()
    db.close()
    broken = run("audit", "verify")
    assert broken.returncode == 1 and "was changed" in broken.stdout, broken.stdout
