"""The pjsua2 softphone for a person (issue 18): with nothing to play it still sends audio
(the null device's silent microphone), so an agent who only listens is not cut off by
Asterisk's RTP timeout ([transfers] agent_media_timeout_s: 4 s in the tests); and SIP phones'
calls carry session timers, so a silent phone is still checked for life."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk]


async def test_a_silent_agent_is_not_cut_off(lab, phones, services, sounds, tmp_path):
    await services.start()
    agent = await lab.agent("1001")  # nothing to play: it only listens
    caller = await lab.caller("13900001111", play=sounds["tone_caller"])
    call = await lab.dial(caller, trunk="nanjing")
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 30)
    channel = await eventually(lambda: _agent_channel(lab, "1001"), 10,
                               what="the agent's channel")
    timeout = lab.cfg.transfers.agent_media_timeout_s
    assert timeout and timeout < 10

    # Asterisk keeps receiving the agent's (silent) audio for more than twice its timeout.
    async def received() -> int:
        out = await asyncio.to_thread(lab.instance.cli, f"core show channel {channel}")
        assert "Application" in out, out  # the channel is still there
        rtp = await asyncio.to_thread(lab.instance.cli, "pjsip show channelstats")
        row = next((x for x in rtp.splitlines() if channel.split("/")[1][:12] in x), "")
        # BridgeId ChannelId UpTime Codec, then the packets received from the agent.
        parts = row.split()
        return int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else 0
    await eventually(lambda: _more(received, 50 * timeout * 2), 3 * timeout + 10,
                     what="audio from the silent agent past the RTP timeout")
    assert not call.disconnected.is_set()
    out = await asyncio.to_thread(lab.instance.cli, "pjsip show endpoint 1001")
    assert re.search(r"timers\s*:\s*always", out), out
    await caller.hangup(call)
    await asyncio.wait_for(call.disconnected.wait(), 10)
    await agent.close()
    await caller.close()


async def _more(read, n: int) -> bool:
    return await read() > n


async def _agent_channel(lab, agent: str) -> str | None:
    out = await asyncio.to_thread(lab.instance.cli, "core show channels concise")
    for line in out.splitlines():
        name = line.split("!")[0]
        if name.startswith(f"PJSIP/{agent}-"):
            return name
    return None
