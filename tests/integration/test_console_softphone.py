"""`hotline softphone --agent 1002 --answer console`, as an agent runs it: the process
registers, rings, and answers only when the agent presses 接听 in the console; the console's
hangup ends the call."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from agent_desk.softphone.credentials import issue_credentials, write_credentials
from lab.harness import REPO, to_toml
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


async def test_cli_softphone_answers_when_the_console_says_so(console, phones, sounds,
                                                              tmp_path):
    svc = console.service
    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(to_toml(svc.cfg.model_dump(mode="json", exclude_none=True,
                                                    exclude={"base_dir"})), encoding="utf-8")
    # The agent's own credentials, as issued for their machine (never the master secret).
    creds = tmp_path / "agent-1002.json"
    write_credentials(creds, issue_credentials(svc.cfg, "1002"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotline.cli", "--config", str(cfg_path), "softphone",
        "--agent", "1002", "--credentials", str(creds), "--answer", "console", cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        async def banner() -> None:
            while b"answering when the web console says so" not in (
                    line := await proc.stdout.readline()):
                assert line, "the softphone exited"
        await asyncio.wait_for(banner(), 30)
        drain = asyncio.create_task(_drain(proc.stdout))
        agent = await console.user("agent1002")
        caller = await console.lab.caller("13700001234", play=sounds["caller_speech"])
        call = await console.lab.dial(caller, trunk="nanjing")

        async def ringing():
            _status, doc = await agent.get("/api/console/state")
            return doc if doc.get("call") and doc["call"]["state"] == "ringing" else None
        state = await eventually(ringing, 30, what="1002's console ringing")
        assert state["case"]["caller"] == "137****1234"
        await asyncio.sleep(1.0)  # the softphone does not answer by itself
        assert await _call_state(agent) == "ringing"
        svc.wrapup.seconds = 2
        status, doc = await agent.post("/api/console/answer")
        assert status == 200, doc
        await eventually(lambda: _is_talking(agent), 15, what="the call answered")
        status, doc = await agent.post("/api/console/hangup")
        assert status == 200, doc
        await asyncio.wait_for(call.disconnected.wait(), 15)
        await svc.drain()
        case = await svc.store.get(state["case"]["number"])
        assert case.agent_id == "1002" and case.outcome == "answered"
        # Timed wrap-up: paused for after-call work, then ready by itself.
        await eventually(lambda: _state(agent, "wrapup"), 15, 0.1, what="1002 in wrap-up")
        await eventually(lambda: _state(agent, "ready"), 15, what="1002 ready after wrap-up")
        await caller.close()
        drain.cancel()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _state(user, want: str) -> bool:
    _status, doc = await user.get("/api/console/state")
    return doc.get("state") == want


async def _drain(stream) -> None:
    while await stream.readline():
        pass


async def _call_state(user) -> str | None:
    _status, doc = await user.get("/api/console/state")
    return (doc.get("call") or {}).get("state")


async def _is_talking(user) -> bool:
    return await _call_state(user) == "talking"
