"""Asterisk and the files it writes, hardened (issue 15, medium 4 and 7), against the real
Asterisk: a recorded call's files are sealed at rest and played back through the console, no
file of the node keeps the caller's number in clear, directories are private, Asterisk does not
run as root, and the service's AMI user cannot run commands, read the configuration or
Originate System()."""

from __future__ import annotations

import asyncio
import io
import os
import time
import wave
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from agent_desk.web.auth import Users
from common import sealed
from hotline.desk import console_app
from telephony.ami import AmiActionFailed, AmiClient
from tests.support.console import CONSOLE_PASSWORD, CONSOLE_USERS, ConsoleHarness
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

# Asterisk's CEL database holds the call history with numbers in clear: the service reads it
# after outages, and retention deletes its rows (telephony/calls/retention.py, docs/security.md).
CEL_FILES = ("cel.db", "cel.db-journal", "cel.db-wal", "cel.db-shm")
# The instance's directories that hold callers' data or secrets.
PRIVATE_DIRS = ("", "etc", "lib", "spool", "spool/monitor", "spool/outgoing", "log", "run",
                "cache")


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _files_with(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name not in CEL_FILES:
            with open(path, "rb") as f:
                if needle in f.read():
                    found.append(str(path.relative_to(root)))
    return found


async def _recorded_call(lab, sounds, service, caller: str):
    """A real call from ``caller``, answered by 1001 and recorded; its case once transcribed."""
    agent = await lab.agent("1001", play=sounds["agent_speech"])
    party = await lab.caller(caller, play=sounds["caller_speech"])
    call = await lab.dial(party)
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 10)
    await asyncio.sleep(3)  # three seconds of talk to record
    await party.hangup(call)
    await asyncio.wait_for(incoming.disconnected.wait(), 10)
    await party.close()
    await agent.close()

    async def ended():
        return next((c for c in await service.store.recent(5) if c.call_state == "ended"), None)

    case = await eventually(ended, what="the case to end")

    async def transcribed():
        t = await service.transcripts.for_case(case.number)
        return t if t["status"] in ("done", "failed") else None

    return case, await eventually(transcribed, timeout=120, what="the transcript")


def _caller() -> str:
    return f"139{time.time_ns() % 10**8:08d}"  # a number no earlier call of the session used


async def test_no_file_of_the_node_keeps_the_callers_number_and_its_directories_are_private(
        lab, phones, asr_service, sounds):
    caller = _caller()
    service = await asr_service(asr={"live": False})
    await _recorded_call(lab, sounds, service, caller)
    # Spool, logs (no queue_log, no verbose log), astdb, run, etc: none holds the number.
    needle = caller.encode()
    for inst in lab.instances.values():
        found = await asyncio.to_thread(_files_with, inst.dir, needle)
        assert found == [], (inst.dir, found)
        assert not (inst.dir / "log" / "queue_log").exists()
        assert list((inst.dir / "spool" / "monitor").glob("*.wav")) == []
        for sub in PRIVATE_DIRS:
            assert _mode(inst.dir / sub) == 0o700, sub


async def test_a_recorded_call_is_sealed_at_rest_and_played_back_by_the_console(
        lab, phones, asr_service, sounds):
    caller = _caller()
    service = await asr_service(asr={"live": False})
    case, t = await _recorded_call(lab, sounds, service, caller)
    # Transcription read the sealed files (decrypted in memory).
    assert t["status"] == "done", t["error"]
    recs = {r["side"]: r for r in t["recordings"]}
    assert set(recs) == {"caller", "agent", "mix"}
    personal = service.transcripts.personal
    clear: dict[str, bytes] = {}
    for side, r in recs.items():
        stored = await asyncio.to_thread(Path(r["path"]).read_bytes)
        assert stored.startswith(sealed.MAGIC), side
        assert b"RIFF" not in stored and b"WAVE" not in stored, side
        assert _mode(Path(r["path"])) == 0o600
        clear[side] = sealed.read_all(Path(r["path"]), personal)
        with wave.open(io.BytesIO(clear[side]), "rb") as w:
            assert w.getnframes() / w.getframerate() > 1.0, side

    # Recordings dir, year, month and case folders: the service's user's only.
    top = service.transcripts.dir
    folder = Path(recs["mix"]["path"]).parent
    for level in (top, folder.parent.parent, folder.parent, folder):
        assert _mode(level) == 0o700, level

    # Played back through the console (decrypted on the way out): the same WAV.
    app, cons = console_app(service)
    server = TestServer(app, host="127.0.0.1")
    await asyncio.wait_for(server.start_server(), 20)
    users = Users(service.store.sessions)
    for name, role, agent_id in CONSOLE_USERS:
        if role == "supervisor":
            await users.add(name, CONSOLE_PASSWORD, role, agent_id=agent_id)
    console = ConsoleHarness(lab, service, cons, server)
    try:
        sup = await console.user("sup")
        for side, r in recs.items():
            resp = await sup.client.get(f"/api/recordings/{case.number}/{r['url_name']}")
            body = await resp.read()
            assert resp.status == 200, (side, body[:200])
            assert resp.headers["Content-Type"] == "audio/wav"
            assert body == clear[side] and body.startswith(b"RIFF"), side
    finally:
        await console.close()

    # Nor do the sealed recordings.
    assert await asyncio.to_thread(_files_with, top, caller.encode()) == []


def test_asterisk_runs_as_its_own_user_not_root(lab):
    pid = lab.instance.pid()
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
    assert "0" not in uids and "0" not in gids, status
    assert (int(uids[0]), int(gids[0])) == lab.runtime.run_user()
    # What it writes is its own: astdb, the CEL database, its logs.
    for path in (lab.instance.dir / "lib" / "astdb.sqlite3", lab.instance.dir / "log"):
        assert path.stat().st_uid == int(uids[0]), path


async def test_the_services_ami_user_cannot_run_commands_read_config_or_originate_system(
        lab, tmp_path):
    node = lab.node
    ami = AmiClient(node=node.id, host=node.ami_host, port=node.ami_port,
                    username=node.ami_username, secret=lab.cfg.ami_secret)
    await ami.start()
    try:
        await ami.wait_connected(10)
        # What the service uses still works.
        await ami.send({"Action": "Ping"})
        await ami.send_list({"Action": "CoreShowChannels"})
        await ami.send({"Action": "Getvar", "Variable": "DEVICE_STATE(PJSIP/1001)"})
        refused = [
            {"Action": "Command", "Command": "core show version"},
            {"Action": "GetConfig", "Filename": "manager.conf"},
            {"Action": "UpdateConfig", "SrcFilename": "manager.conf",
             "DstFilename": "manager.conf", "Action-000000": "NewCat", "Cat-000000": "x"},
            {"Action": "Reload"},
            {"Action": "Originate", "Channel": "Local/s@hotline-nowhere", "Async": "true",
             "Application": "System", "Data": f"touch {tmp_path}/owned"},
            {"Action": "Originate", "Channel": "Local/s@hotline-nowhere", "Async": "true",
             "Application": "Exec", "Data": f"System(touch {tmp_path}/owned)"},
        ]
        for action in refused:
            with pytest.raises(AmiActionFailed) as err:
                await ami.send(action, timeout=10)
            why = err.value.message.lower()
            assert "denied" in why or "forbidden" in why, (action["Action"], why)
    finally:
        await ami.stop()
    assert not await asyncio.to_thread(os.path.exists, tmp_path / "owned")


def test_rendered_ami_user_has_only_the_classes_the_service_uses(lab):
    conf = (lab.instance.dir / "etc" / "manager.conf").read_text()
    lines = dict(line.split(" = ", 1) for line in conf.splitlines()
                 if line.startswith(("read = ", "write = ")))
    assert set(lines["write"].split(",")) == {"call", "agent", "originate", "reporting"}
    assert not {"system", "config", "command"} & set(lines["write"].split(","))
    assert not {"config", "command"} & set(lines["read"].split(","))
