"""The AMI client's actions on a real Asterisk, and their bounds: no await hangs for ever, an
action in flight when the connection drops fails at once, a slow handler never stalls the
reader."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_desk.softphone.wavfile import wav_complete
from common import events as ev
from telephony.ami import AmiActionFailed, AmiClient, AmiDisconnected, AmiTimeout
from tests.support.netfault import FaultProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk


async def client(lab, port=None, subscriber=None, **kw) -> AmiClient:
    c = AmiClient(node=lab.node.id, host="127.0.0.1", port=port or lab.node.ami_port,
                  username=lab.node.ami_username, secret=lab.cfg.ami_secret,
                  subscriber=subscriber, **kw)
    await c.start()
    await c.wait_connected(10)
    return c


async def test_queue_member_actions(lab):
    c = await client(lab)
    try:
        q, iface = "suzhou-lang_en", "PJSIP/7777"
        await c.queue_add(q, iface, penalty=2, member_name="7777", paused=True,
                          reason="培训")
        members = {m.interface: m for m in (await c.snapshot()).members if m.queue == q}
        assert members[iface].penalty == 2 and members[iface].paused
        await c.queue_pause(iface, False, queue=q)
        await c.queue_penalty(iface, 0, queue=q)
        members = {m.interface: m for m in (await c.snapshot()).members if m.queue == q}
        assert members[iface].penalty == 0 and not members[iface].paused
        await c.queue_remove(q, iface)
        with pytest.raises(AmiActionFailed):
            await c.queue_remove(q, iface)  # not there any more: a clear error
        assert "Asterisk" in await c.command("core show version")
    finally:
        await c.stop()


async def test_originate_redirect_mixmonitor_hangup_on_a_real_call(lab, phones, sounds,
                                                                   tmp_path):
    seen: list[ev.DomainEvent] = []

    async def sub(e):
        seen.append(e)

    c = await client(lab, subscriber=sub)
    try:
        agent = await lab.agent("1002", play=sounds["tone_agent"], answer_delay=0.2)
        # Originate: Asterisk calls the agent's softphone and plays silence into the call.
        await c.originate(channel="PJSIP/1002", application="Wait", data="30",
                          caller_id="hotline <12345>", timeout_s=10)
        incoming = await asyncio.wait_for(agent.incoming.get(), 15)
        await asyncio.wait_for(incoming.answered.wait(), 10)
        chan = await eventually(lambda: _channel_of(c, "PJSIP/1002-"), what="channel")
        target = lab.instance.recordings_dir / "ami-test.wav"
        await c.mix_monitor(chan, lab.instance.asterisk_path(target))
        await asyncio.sleep(1.5)
        await c.stop_mix_monitor(chan)

        async def written() -> bool:  # MixMonitor's own thread closes the file after the stop
            return wav_complete(target) and target.stat().st_size > 1000
        await eventually(written, what="MixMonitor's file complete")
        await c.redirect(chan, "agents", "1002")  # redirected channel dials 1002: busy/fails
        await asyncio.sleep(0.5)
        remaining = await _channel_of(c, "PJSIP/1002-")
        if remaining:
            await c.hangup(remaining)
        await asyncio.wait_for(incoming.disconnected.wait(), 10)
        assert any(isinstance(e, ev.Newchannel) for e in seen)
        assert any(isinstance(e, ev.Hangup) for e in seen)
        with pytest.raises(AmiActionFailed):
            await c.hangup("PJSIP/no-such-channel-0000")
    finally:
        await c.stop()


async def _channel_of(c, prefix):
    snap = await c.snapshot()
    return next((s.channel.name for s in snap.channels if s.channel.name.startswith(prefix)),
                None)


async def test_every_await_is_bounded(lab):
    proxy = await FaultProxy("127.0.0.1", lab.node.ami_port).start()
    c = await client(lab, port=proxy.port, ping_interval=30, action_timeout=1.0)
    try:
        proxy.blackhole()
        t = time.monotonic()
        with pytest.raises(AmiTimeout):
            await c.send({"Action": "Ping"})
        assert time.monotonic() - t < 5
        pending = asyncio.create_task(c.send({"Action": "Ping"}, timeout=30))
        await asyncio.sleep(0.2)
        proxy.cut()
        with pytest.raises(AmiDisconnected):
            await asyncio.wait_for(pending, 5)  # fails at the drop, not after 30 s
        with pytest.raises(AmiDisconnected):
            await c.send({"Action": "Ping"})  # while down: at once
    finally:
        await c.stop()
        await proxy.stop()


async def test_a_slow_handler_does_not_stall_the_reader(lab):
    handled = 0

    async def slow(e):
        nonlocal handled
        await asyncio.sleep(0.05)
        handled += 1

    c = await client(lab, subscriber=slow)
    try:
        before = c.events_received
        for i in range(30):  # each produces events (QueueMemberAdded / Removed)
            await c.queue_add("suzhou-general", f"PJSIP/88{i:02d}", member_name=f"88{i:02d}")
        for i in range(30):
            await c.queue_remove("suzhou-general", f"PJSIP/88{i:02d}")
        # Actions got their replies although the handler is far behind: the reader reads on.
        assert c.events_received - before >= 60
        assert c.connected
        await c.drain(30)
        assert handled >= 60
    finally:
        await c.stop()
