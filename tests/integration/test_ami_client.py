"""The AMI client's actions on a real Asterisk, and their bounds: no await hangs for ever, an
action in flight when the connection drops fails at once, a slow handler never stalls the
reader."""

from __future__ import annotations

import asyncio
import time

import pytest

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
        with pytest.raises(AmiActionFailed):  # the service's user has no "command" class
            await c.command("core show version")
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
        # MixMonitor is a "system" action (its Command option runs a shell): the service
        # records through the queue's dialplan instead, and its AMI user may not start one.
        target = lab.instance.recordings_dir / "ami-test.wav"
        with pytest.raises(AmiActionFailed):
            await c.mix_monitor(chan, lab.instance.asterisk_path(target))
        assert not target.exists()
        await c.redirect(chan, "agents", "1002")  # redirected channel dials 1002: busy/fails
        await asyncio.sleep(0.5)
        remaining = await _channel_of(c, "PJSIP/1002-")
        if remaining:
            await c.hangup(remaining)
        await asyncio.wait_for(incoming.disconnected.wait(), 10)
        assert any(isinstance(e, ev.Newchannel) for e in seen)
        # The phone may hear the BYE before AMI's Hangup event is read.
        await eventually(lambda: _seen(seen, ev.Hangup), what="AMI's Hangup event")
        with pytest.raises(AmiActionFailed):
            await c.hangup("PJSIP/no-such-channel-0000")
    finally:
        await c.stop()


async def _seen(seen, kind):
    return any(isinstance(e, kind) for e in seen)


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


async def test_the_event_filters_send_the_variables_the_service_reads_and_no_others(lab, sounds):
    """manager.conf's filters on a real call through the dialplan (no service: the router is
    away, so the call takes the fallback queue): the HOTLINE_* variables telephony/calls reads
    arrive; Gosub's arguments and locals, Asterisk's own and the dialplan's own do not, nor the
    hangup handlers' events."""
    names: list[str] = []
    seen: list[ev.DomainEvent] = []

    async def sub(e):
        seen.append(e)
        if isinstance(e, ev.VarSet):
            names.append(e.variable)

    c = await client(lab, subscriber=sub)
    try:
        caller = await lab.caller("13800009876", play=sounds["tone_caller"])
        call = await lab.dial(caller, trunk="nanjing")

        async def waiting() -> bool:
            return any(n.lstrip("_") == "HOTLINE_ROUTE_SOURCE" for n in names)

        await eventually(waiting, 30, what="the fallback's VarSet")
        await asyncio.sleep(1.0)  # in the queue: its own variables are set by now
        await caller.hangup(call)
        await eventually(lambda: _seen(seen, ev.Hangup), what="AMI's Hangup event")
    finally:
        await c.stop()
    bare = {n.lstrip("_") for n in names}
    assert "HOTLINE_ROUTE_SOURCE" in bare, names
    noise = {n for n in bare if not n.startswith(("HOTLINE_", "QUEUE_MAX_PENALTY"))
             or n in ("HOTLINE_IN", "HOTLINE_FIRST_QUEUED", "HOTLINE_WELCOME",
                      "HOTLINE_POSITION", "HOTLINE_ROUTE")}
    assert not noise, sorted(noise)
    kinds = {e.name if isinstance(e, ev.OtherEvent) else type(e).__name__ for e in seen}
    assert not any(k.startswith("HangupHandler") for k in kinds), kinds
