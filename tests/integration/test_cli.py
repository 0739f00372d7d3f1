"""The command line an operator uses: Asterisk up/status/cli/down and the service as its own
process, from one config file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from agent_desk.softphone.phones import SipPhones
from cases.db import make_engine, sessionmaker
from cases.store import CaseStore
from common.config import load_config
from common.privacy import PersonalData
from common.secrets import sip_password
from lab.harness import REPO, lab_config_toml
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk


def hotline(cfg_path, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(cfg_path),
                           *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


async def test_operator_runs_asterisk_and_the_service_from_the_config(tmp_path, sounds):
    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(lab_config_toml(tmp_path / "data", overrides={
        "menu.prompt": "您好", "menu.timeout_s": 1.0, "service.log_format": "json"}),
        encoding="utf-8")
    cfg = load_config(cfg_path)
    up = await asyncio.to_thread(hotline, cfg_path, "asterisk", "up")
    assert up.returncode == 0, up.stderr
    assert "Asterisk up" in up.stdout
    try:
        status = await asyncio.to_thread(hotline, cfg_path, "asterisk", "status")
        assert "running" in status.stdout
        version = await asyncio.to_thread(hotline, cfg_path, "asterisk", "cli",
                                          "core show version")
        assert "Asterisk 2" in version.stdout

        log = open(tmp_path / "service.log", "wb")  # noqa: ASYNC230
        serve = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hotline.cli", "--config", str(cfg_path), "serve",
            stdout=log, stderr=log, cwd=REPO)
        phones = SipPhones()
        try:
            async def healthy() -> bool:  # serving: the console answers, AMI is connected
                return (await asyncio.to_thread(hotline, cfg_path, "health")).returncode == 0
            await eventually(healthy, timeout=30, what="the served service healthy")
            node = cfg.nodes[0]
            agent = await phones.agent("1001", sip_password(cfg.sip_secret, "1001"),
                                       server=f"127.0.0.1:{node.sip_port}",
                                       play=sounds["tone_agent"])
            caller = await phones.caller("13512340000", play=sounds["caller_speech"])
            call = await caller.call(f"sip:12345@127.0.0.1:{node.sip_port}",
                                     headers={"X-Hotline-Trunk": "nanjing"})
            incoming = await asyncio.wait_for(agent.incoming.get(), 30)
            await asyncio.wait_for(incoming.answered.wait(), 10)
            await asyncio.sleep(1)
            await caller.hangup(call)
            await asyncio.wait_for(incoming.disconnected.wait(), 10)

            engine = make_engine(cfg.database_url)
            store = CaseStore(sessionmaker(engine), PersonalData(cfg.data_key))

            async def ended():
                cases = await store.recent(5)
                return cases[0] if cases and cases[0].call_state == "ended" else None

            case = await eventually(ended, what="the served case")
            assert case.agent_id == "1001" and case.queue == "nanjing-general"
            await engine.dispose()
            # The container's health check: the served console answers, AMI is connected.
            health = await asyncio.to_thread(hotline, cfg_path, "health")
            assert health.returncode == 0, health.stderr
            assert "healthy: 1 node(s) connected" in health.stdout
        finally:
            await phones.stop()
            serve.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(serve.wait(), 15) == 0
            log.close()
        stopped = await asyncio.to_thread(hotline, cfg_path, "health")
        assert stopped.returncode == 1 and "does not answer" in stopped.stderr
        text = (tmp_path / "service.log").read_text()
        assert '"msg": "hotline service stopped"' in text
        assert "13512340000" not in text  # the caller's number never in the logs
    finally:
        down = await asyncio.to_thread(hotline, cfg_path, "asterisk", "down")
        assert "stopped" in down.stdout
    status = await asyncio.to_thread(hotline, cfg_path, "asterisk", "status")
    assert "stopped" in status.stdout


def test_cli_errors_are_clear(tmp_path):
    res = hotline(tmp_path / "missing.toml", "asterisk", "status")
    assert res.returncode == 2 and "configuration file not found" in res.stderr
    env = {k: v for k, v in os.environ.items() if k != "HOTLINE_AMI_SECRET"}
    rendered = hotline(REPO / "hotline.example.toml", "asterisk", "render", "--for-container")
    assert rendered.returncode == 0 and "pjsip.conf" in rendered.stdout
    res = subprocess.run([sys.executable, "-m", "hotline.cli", "--config",
                          str(REPO / "hotline.example.toml"), "serve"], capture_output=True,
                         text=True, timeout=60, cwd=REPO, env=env)
    assert res.returncode == 2 and "HOTLINE_AMI_SECRET" in res.stderr


async def test_operator_registers_a_green_channel_caller_for_running_services(services, tmp_path):
    service = await services.start("sqlite")
    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(lab_config_toml(tmp_path / "data",
                                        database_url=service.cfg.database.url,
                                        redis_prefix=service.cfg.redis.prefix),
                        encoding="utf-8")
    number = "13700001234"
    digest = service.personal.lookup_hash(number)
    assert service.profiles.peek(digest) is None

    added = await asyncio.to_thread(hotline, cfg_path, "callers", "add", number,
                                    "--category", "disabled")
    assert added.returncode == 0, added.stderr
    assert "137****1234: green channel (disabled)" in added.stdout
    assert number not in added.stdout + added.stderr  # never in clear
    # The running service hears of it over Redis: the next call goes with priority.
    await eventually(lambda: _peek(service, digest, "disabled"), what="the profile loaded")

    removed = await asyncio.to_thread(hotline, cfg_path, "callers", "remove", number)
    assert removed.returncode == 0 and "removed" in removed.stdout
    await eventually(lambda: _peek(service, digest, None), what="the profile dropped")
    bad = await asyncio.to_thread(hotline, cfg_path, "callers", "add", "", "--category",
                                  "elderly")
    assert bad.returncode == 1 and "needs a number" in bad.stderr


async def _peek(service, digest, want):  # type: ignore[no-untyped-def]
    return service.profiles.peek(digest) == want or None
