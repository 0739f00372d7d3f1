"""What an outside caller learns over a carrier trunk (issue 15, low): nothing about the
hotline's internal extensions. A raw SIP caller (every message it receives is kept) calls
12345 on a carrier trunk, agent 1001 answers, the agent hangs up: no message Asterisk sent
the caller, before or after the answer, names the agent's extension (no P-Asserted-Identity,
Remote-Party-ID or connected-line re-INVITE/UPDATE)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lab.harness import Lab
from tests.support.rawsip import RawCaller
from tests.support.service import ServiceFactory

pytestmark = [pytest.mark.asterisk]


async def test_a_carrier_caller_never_sees_the_agents_extension(
        lab: Lab, services: ServiceFactory, phones: Any, sounds: dict[str, Path]) -> None:
    await services.start()
    agent = await lab.agent("1001", play=sounds["tone_agent"])
    members = await asyncio.to_thread(lab.instance.cli, "queue show province-general")
    assert "PJSIP/1001" in members, members
    host, port = lab.sip_server().split(":")
    caller = await RawCaller((host, int(port)), "13812345678").start()
    try:
        uri = f"sip:12345@{lab.sip_server()}"
        answer = await caller.invite(uri, headers={"X-Hotline-Trunk": "nanjing"})
        assert answer.status == 200, answer.raw
        incoming = await asyncio.wait_for(agent.incoming.get(), 30)
        await asyncio.wait_for(incoming.answered.wait(), 10)
        await agent.hangup(incoming)
        await caller.serve_until_bye(30)
    finally:
        caller.close()
    seen = "\n".join(m.raw for m in caller.received)
    for m in caller.received:
        assert not m.all("P-Asserted-Identity"), m.raw
        assert not m.all("Remote-Party-ID"), m.raw
    # No message at all carries the extension (in any header, or as a user part).
    assert "1001" not in seen, seen
    assert any(m.method == "BYE" for m in caller.received)
