"""Fixtures and hooks only (the helpers are in tests/support/): one real Asterisk for the
session (on free ports), the service on a fresh database (SQLite or PostgreSQL) and Redis prefix
per test, SIP parties as processes, and the web console. Nothing here starts unless a test asks
for it, so tests/unit runs without Asterisk, Redis or PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from agent_desk.softphone.phones import SipPhones
from agent_desk.web.auth import Users
from common.logs import setup_logging
from hotline.desk import console_app
from hotline.service import HotlineService
from lab.harness import REPO, Lab, ensure_secrets
from telephony.asterisk.sounds import speak, tone
from tests.support.artifacts import ARTIFACTS
from tests.support.asterisk import wait_no_channels
from tests.support.console import CONSOLE_PASSWORD, CONSOLE_USERS, ConsoleHarness
from tests.support.servers import PG_ADMIN, REDIS_URL, make_pg_database
from tests.support.service import ServiceFactory, lab_test_config, vosk_test_model

ensure_secrets()
setup_logging("info", "text")
# `make test` runs two workers (pytest-xdist): each its own lane of lab ports and RTP ranges.
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    os.environ.setdefault("HOTLINE_LAB_LANE", "{}/{}".format(
        int(os.environ["PYTEST_XDIST_WORKER"][2:]), os.environ["PYTEST_XDIST_WORKER_COUNT"]))


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


@pytest.fixture(scope="session")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    workdir = tmp_path_factory.mktemp("lab")
    the_lab = Lab(lab_test_config(workdir))
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


@pytest.fixture(params=["sqlite", "postgresql"])
async def migrated_engine(request: pytest.FixtureRequest, tmp_path: Path, pg_admin: str
                          ) -> AsyncIterator[Any]:
    """A fresh database at the schema's head, once on SQLite and once on PostgreSQL."""
    from cases.db import make_engine, migrate

    drop = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}"
    else:
        url, drop = await make_pg_database(pg_admin)
    engine = make_engine(url)
    await migrate(engine)
    yield engine
    await engine.dispose()
    if drop is not None:
        await drop()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    r = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await r.ping()
    except Exception as exc:
        pytest.fail(f"Redis is needed at {REDIS_URL} (run `make test`, which starts it): {exc}")
    yield r
    await r.aclose()


@pytest.fixture
async def services(lab: Lab, tmp_path: Path, pg_admin: str) -> AsyncIterator[ServiceFactory]:
    factory = ServiceFactory(lab, tmp_path, pg_admin)
    yield factory
    await factory.close()


@pytest.fixture
async def phones(lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
                 ) -> AsyncIterator[SipPhones]:
    """SIP parties for one test; afterwards Asterisk must have no channel left over."""
    # A recording an earlier test's service stopped before storing belongs to that test's
    # database: it would wait in the shared node's spool for a case this test never has.
    await asyncio.to_thread(_clear_spools, lab, tmp_path / "earlier-spool")
    p = SipPhones(log_dir=tmp_path / "phones")
    lab.sip = p
    yield p
    await p.stop()
    lab.sip = None
    leftover = await wait_no_channels(lab)
    if request.node.rep_call_passed if hasattr(request.node, "rep_call_passed") else True:
        assert leftover == 0, f"{leftover} channel(s) left on Asterisk after the test"


def _clear_spools(lab: Lab, keep: Path) -> None:
    """Move what earlier tests left in the nodes' recording spools aside (kept for a look)."""
    for inst in lab.instances.values():
        spool = inst.dir / "spool" / "monitor"
        for f in spool.iterdir() if spool.is_dir() else ():
            keep.mkdir(parents=True, exist_ok=True)
            f.replace(keep / f"{inst.dir.name}-{f.name}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call_passed = rep.passed  # type: ignore[attr-defined]


# -- recordings and transcripts (asr/) ----------------------------------------------------------

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

@pytest.fixture
async def console(lab: Lab, services: ServiceFactory, request: pytest.FixtureRequest
                  ) -> AsyncIterator[ConsoleHarness]:
    """The service with its web console on a test server, and a user of each role
    (``CONSOLE_USERS``). SQLite unless parametrized indirectly with "postgresql"."""
    service = await services.start(getattr(request, "param", "sqlite"))
    app, cons = console_app(service)
    server = TestServer(app, host="127.0.0.1")
    await asyncio.wait_for(server.start_server(), 20)
    users = Users(service.store.sessions)
    for name, role, agent in CONSOLE_USERS:
        await users.add(name, CONSOLE_PASSWORD, role, agent_id=agent)
    h = ConsoleHarness(lab, service, cons, server)
    yield h
    await h.close()
