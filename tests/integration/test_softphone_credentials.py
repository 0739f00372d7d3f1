"""Per-agent SIP credentials (issue 15, medium 9): the service's side issues one agent's
credentials (``hotline softphone credentials``, a 0600 file); the agent's softphone registers
with that file on a real Asterisk without the master SIP secret in its environment, and
refuses to start without its own credentials even when the master secret is there (it never
derives passwords itself)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from common.config import load_config
from common.secrets import sip_password
from lab.harness import REPO, Lab, lab_config_toml
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk


@pytest.fixture(scope="module")
async def cli_lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Lab, Path]]:
    folder = tmp_path_factory.mktemp("softphone-creds")
    cfg_path = folder / "hotline.toml"
    cfg_path.write_text(lab_config_toml(folder / "data"), encoding="utf-8")
    lab = Lab(load_config(cfg_path))
    await lab.start_asterisk()
    yield lab, cfg_path
    await lab.close()


def hotline(cfg_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(cfg_path),
                           *args], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=env)


def agent_machine_env() -> dict[str, str]:
    """An agent's machine: none of the service's secrets."""
    return {k: v for k, v in os.environ.items()
            if k not in ("HOTLINE_SIP_SECRET", "HOTLINE_AMI_SECRET", "HOTLINE_DATA_KEY",
                         "HOTLINE_SESSION_SECRET", "HOTLINE_AGENT_PASSWORD")}


async def registered(out: asyncio.StreamReader) -> None:
    """Until the softphone says it registered (pjsip's own log shares its stdout)."""
    while b"registered at" not in (line := await out.readline()):
        assert line, "the softphone exited before registering"


async def test_the_softphone_registers_with_its_own_credentials_only(
        cli_lab: tuple[Lab, Path], tmp_path: Path) -> None:
    lab, cfg_path = cli_lab
    creds_file = tmp_path / "agent-1001.json"
    issued = await asyncio.to_thread(hotline, cfg_path, "softphone", "credentials",
                                     "--agent", "1001", "--out", str(creds_file),
                                     env=dict(os.environ))
    assert issued.returncode == 0, issued.stderr
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    doc = json.loads(creds_file.read_text())
    assert doc["agent"] == "1001" and doc["server"] == lab.sip_server()
    assert doc["password"] == sip_password(lab.cfg.sip_secret, "1001")
    assert lab.cfg.sip_secret not in creds_file.read_text()

    env = agent_machine_env()
    # Without its own credentials it does not start, master secret or not.
    for extra in ({}, {"HOTLINE_SIP_SECRET": lab.cfg.sip_secret}):
        refused = await asyncio.to_thread(hotline, cfg_path, "softphone", "--agent", "1001",
                                          env={**env, **extra})
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "--credentials FILE" in refused.stderr and "HOTLINE_AGENT_PASSWORD" in \
            refused.stderr
    # Someone else's file is refused.
    other = await asyncio.to_thread(hotline, cfg_path, "softphone", "--agent", "1002",
                                    "--credentials", str(creds_file), env=env)
    assert other.returncode == 2 and "credentials of agent 1001" in other.stderr

    phone = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotline.cli", "--config", str(cfg_path), "softphone",
        "--agent", "1001", "--credentials", str(creds_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO, env=env)
    try:
        assert phone.stdout is not None
        await asyncio.wait_for(registered(phone.stdout), 30)

        async def contact() -> bool:
            out = await asyncio.to_thread(lab.instance.cli, "pjsip show contacts")
            return "1001/sip:" in out
        await eventually(contact, timeout=15, what="1001 registered on Asterisk")
    finally:
        if phone.returncode is None:
            phone.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(phone.wait(), 20)
            except TimeoutError:
                phone.kill()
                await phone.wait()


async def test_the_agent_password_can_come_from_the_environment(
        cli_lab: tuple[Lab, Path]) -> None:
    lab, cfg_path = cli_lab
    env = {**agent_machine_env(),
           "HOTLINE_AGENT_PASSWORD": sip_password(lab.cfg.sip_secret, "1002")}
    phone = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotline.cli", "--config", str(cfg_path), "softphone",
        "--agent", "1002", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, cwd=REPO, env=env)
    try:
        assert phone.stdout is not None
        await asyncio.wait_for(registered(phone.stdout), 30)

        async def contact() -> bool:
            out = await asyncio.to_thread(lab.instance.cli, "pjsip show contacts")
            return "1002/sip:" in out
        await eventually(contact, timeout=15, what="1002 registered on Asterisk")
    finally:
        if phone.returncode is None:
            phone.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(phone.wait(), 20)
            except TimeoutError:
                phone.kill()
                await phone.wait()
