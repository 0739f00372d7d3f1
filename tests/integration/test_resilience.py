"""Faults between the service and Asterisk: split reads, a cut or half-open AMI connection,
garbage on the wire, the service down, Asterisk killed. Whatever happens, every call gets exactly
one case, and the case is right."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.calls import (
    arrived_names,
    call_in_progress,
    hang_up,
    only_case,
    proxied_service,
)
from tests.support.netfault import FaultProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk


async def test_chinese_caller_name_survives_reads_split_inside_a_character(
        lab, phones, services, sounds, tmp_path):
    proxy, service = await proxied_service(lab, services)
    names = arrived_names(service, lab.node.id)
    proxy.split_multibyte = True
    _agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path, name="张三丰")
    await asyncio.sleep(1)
    await hang_up(party, call, incoming)
    case = await only_case(service)
    assert proxy.splits_done > 0, "the proxy never split a character"
    assert case.caller_masked and names == ["张三丰"]
    assert service.nodes[lab.node.id].ami.malformed == 0
    await proxy.stop()


async def test_ami_cut_during_call_reconnects_and_case_completes(
        lab, phones, services, sounds, tmp_path):
    proxy, service = await proxied_service(lab, services)
    _agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path)
    ami = service.nodes[lab.node.id].ami
    before = ami.connections
    proxy.cut()
    await eventually(lambda: _connected_again(ami, before), what="AMI to reconnect")
    await asyncio.sleep(2)
    await hang_up(party, call, incoming)
    case = await only_case(service)
    # Seen live (not rebuilt from CEL): by the tracker or by the router, whichever of
    # the two facts reached the store first (not ordered: the AMI event may come later).
    assert case.source in ("live", "router"), case.source
    assert case.agent_id == "1001" and case.outcome == "answered"
    assert case.hangup_by == "caller"
    assert case.talk_seconds is not None and case.talk_seconds >= 2
    assert sum(1 for e in case.events if e.kind == "answered") == 1
    await proxy.stop()


async def _connected_again(ami, before):
    return ami.connected and ami.connections > before


async def test_half_open_ami_is_detected_by_the_watchdog(lab, phones, services, sounds,
                                                         tmp_path):
    proxy, service = await proxied_service(lab, services)
    ami = service.nodes[lab.node.id].ami
    before = ami.connections
    _agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path)
    proxy.blackhole()  # nothing flows, nothing closes: only the unanswered ping tells
    await eventually(lambda: _connected_again(ami, before), timeout=20,
                     what="the watchdog to drop the silent connection and reconnect")
    await hang_up(party, call, incoming)
    case = await only_case(service)
    assert case.outcome == "answered" and case.agent_id == "1001"
    await proxy.stop()


async def test_call_that_ends_while_ami_is_down_is_completed_from_cel(
        lab, phones, services, sounds, tmp_path):
    proxy, service = await proxied_service(lab, services)
    _agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path)
    ami = service.nodes[lab.node.id].ami
    before = ami.connections
    proxy.refusing = True
    proxy.cut()
    await asyncio.sleep(1.5)
    await hang_up(party, call, incoming)  # ends while the service cannot see Asterisk
    await asyncio.sleep(1)
    proxy.refusing = False
    await eventually(lambda: _connected_again(ami, before), what="AMI to reconnect")
    case = await only_case(service)
    assert case.outcome == "answered"
    assert case.agent_id == "1001"
    assert case.hangup_by == "caller"
    assert case.talk_seconds is not None and case.talk_seconds >= 1
    ended = next(e for e in case.events if e.kind == "ended")
    assert ended.source == "cel"
    await proxy.stop()


async def test_service_down_call_takes_fallback_queue_and_still_gets_its_case(
        lab, phones, services, sounds, tmp_path):
    service = await services.start()
    await services.stop(service)  # members stay in Asterisk; FastAGI is now closed

    # Call A starts while the service is down and is still up when it comes back.
    agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path,
                                                          caller="13700002222")
    service = await services.start()

    async def resynced() -> bool:  # the service has learnt call A at its resync
        rt = service.nodes[lab.node.id]
        return any(not c.ended for c in rt.tracker.calls.values())
    await eventually(resynced, what="call A learnt at the resync")
    await hang_up(party, call, incoming)
    a = await only_case(service)
    assert a.source in ("resync", "cel")  # learnt at the resync, history from CEL
    assert a.queue == "province-general"
    assert a.route_source == "fallback" and "router_unavailable" in a.flags
    assert a.agent_id == "1001" and a.outcome == "answered"
    assert a.hangup_by == "caller"
    assert a.arrived_at < a.answered_at < a.ended_at
    await services.stop(service)

    # Call B starts and ends while the service is down: Asterisk's CEL tells its story.
    await agent.close()
    agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path,
                                                          caller="13700003333")
    await asyncio.sleep(2)
    await hang_up(party, call, incoming)
    service = await services.start()
    cases = await eventually(lambda: _n_cases(service, 2), what="two cases")
    b = next(c for c in cases if c.caller_masked == "137****3333")
    assert b.source == "cel"
    assert b.queue == "province-general" and b.agent_id == "1001"
    assert b.outcome == "answered" and b.call_state == "ended"
    assert "router_unavailable" in b.flags
    assert b.hangup_by == "caller"
    assert b.talk_seconds is not None and 1.0 <= b.talk_seconds <= 5.0
    assert b.wait_seconds is not None and b.wait_seconds < 5


async def _n_cases(service, n):
    cases = await service.store.recent(10)
    return cases if len(cases) == n and all(c.call_state == "ended" for c in cases) else None


GARBAGE = [
    b"this line has no colon and no end",
    b"\r\n\r\n",
    b"Event: AgentConnect\r\nQueue: nanjing-general\r\n\r\n",           # fields missing
    b"Event: TotallyUnknownEvent\r\nFoo: bar\r\n\r\n",                  # unknown: ignored
    b"Event: Hangup\r\nChannel: PJSIP/x\r\nUniqueid: 1\r\nCause: abc\r\n\r\n",  # bad number
    b"Response: Success\r\nActionID: nobody-asked\r\n\r\n",            # stray response
    b"Event: Newchannel\r\nChannel: \xff\xfe\xfd\r\nUniqueid: \x80\r\n\r\n",   # not UTF-8
    b"\x00\x01\x02 binary noise \r\n\r\n",
]


async def test_malformed_and_unknown_ami_data_is_reported_not_fatal(
        lab, phones, services, sounds, tmp_path, caplog):
    proxy, service = await proxied_service(lab, services)
    _agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path)
    for chunk in GARBAGE:
        proxy.inject(chunk)
    proxy.inject(b"x" * (1100 * 1024))  # a megabyte without a message end
    proxy.inject(b"\r\n\r\n")
    await asyncio.sleep(1)
    ami = service.nodes[lab.node.id].ami
    await hang_up(party, call, incoming)
    case = await only_case(service)
    assert case.outcome == "answered" and case.agent_id == "1001"
    assert ami.malformed >= 4
    assert any("malformed AMI data ignored" in r.getMessage() for r in caplog.records)
    assert ami.connected
    await proxy.stop()


async def test_asterisk_killed_with_a_call_up_closes_the_case_honestly(
        lab, phones, services, sounds, tmp_path):
    service = await services.start()
    agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path)
    await asyncio.sleep(1)
    await asyncio.to_thread(lab.instance.kill)
    await asyncio.sleep(0.5)
    await lab.start_asterisk()
    ami = service.nodes[lab.node.id].ami
    await eventually(lambda: _up(ami), timeout=30, what="AMI back after the restart")
    case = await only_case(service)
    assert case.outcome == "answered"  # it was answered; how it ended nobody knows
    assert "end_unknown" in case.flags
    assert case.hangup_by == "system"
    # The phones still believe in their call: end it on their side.
    await party.hangup(call)
    await agent.hangup(incoming)


async def _up(ami):
    return ami.connected


async def test_database_lost_during_a_call_holds_the_facts_and_loses_none(
        lab, phones, services, sounds, tmp_path):
    """PostgreSQL going away mid-call (as in a restart: connections dropped, new ones refused):
    the call's facts wait for it, in order, and the case completes exactly once."""
    from sqlalchemy.engine import make_url

    real = make_url(await services.database("postgresql"))
    proxy = await FaultProxy(real.host or "127.0.0.1", real.port or 5432).start()
    services.db_url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    service = await services.start("postgresql")
    _agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path)
    await eventually(lambda: _answered_case(service), what="the answered case")
    proxy.refusing = True
    proxy.cut()
    await asyncio.sleep(2)
    await hang_up(party, call, incoming)  # the hang-up's facts arrive while it is away
    await eventually(lambda: _held(service), what="facts held for the database")
    await asyncio.sleep(1)
    proxy.refusing = False
    case = await only_case(service)
    assert case.outcome == "answered" and case.agent_id == "1001"
    assert case.hangup_by == "caller" and case.talk_seconds and case.talk_seconds >= 2
    kinds = [e.kind for e in case.events]
    assert kinds.count("answered") == 1 and kinds.count("ended") == 1, kinds
    await proxy.stop()


async def _answered_case(service):
    cases = await service.store.recent(5)
    return cases[0] if cases and cases[0].agent_id else None


async def _held(service):
    return service.store.unavailable_retries > 0
