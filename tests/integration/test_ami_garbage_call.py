"""Garbage on the AMI wire between a real Asterisk and the service, while a call is up: cut,
fieldless, repeated and stray messages, binary, LF-only line ends, an oversized message, then
half a message and the connection cut. Nothing drops the connection for garbage, the next
connection starts clean, and the call's case is complete. (The same garbage fed to the reader
alone: tests/unit/test_ami_fuzz.py.)"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.amiwire import EOM
from tests.support.calls import (
    arrived_names,
    call_in_progress,
    hang_up,
    only_case,
    proxied_service,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

MID_STREAM = [
    b"Event: Hangup\r\nChannel: PJSIP/trunk-nanjing-0000ffff\r\nUniqueid: gone.1\r\n",  # cut
    b"Event: AgentConnect\r\nQueue: province-general\r\nChannel: PJSIP/x-1\r\n" + EOM,   # fields
    b"Event: Newchannel\r\nChannel: PJSIP/trunk-nanjing-1\r\nChannel: again\r\n"
    b"Uniqueid: dup.1\r\nContext: from-carrier\r\n" + EOM,                              # repeated
    b"Response: Fine\r\nActionID: nobody\r\n" + EOM,                                     # stray
    bytes(range(256)) + EOM,                                                            # binary
    b"Event: VarSet\nChannel: lf-only\nVariable: HOTLINE_KEY\n\n" + EOM,                 # LF only
    b"k" * (1100 * 1024) + EOM,                                                          # huge
]


async def test_garbage_mid_stream_during_a_call_leaves_its_case_complete(
        lab, phones, services, sounds, tmp_path):
    proxy, service = await proxied_service(lab, services)
    ami = service.nodes[lab.node.id].ami
    names = arrived_names(service, lab.node.id)
    _agent, party, call, incoming = await call_in_progress(lab, sounds, tmp_path, name="张三丰")
    await service.drain()
    connections, malformed = ami.connections, ami.malformed
    for chunk in MID_STREAM:
        proxy.inject(chunk)
        # A cut message is cut by the garbage after it, in the same write: left alone, the
        # next bytes may be a reply to the watchdog's ping, which an event may carry as a
        # field (OriginateResponse), so nothing would tell the cut.
        if chunk.endswith(EOM):
            await asyncio.sleep(0.05)
    await eventually(lambda: _at_least(ami, malformed + 5), what="garbage to be counted")
    assert ami.connected and ami.connections == connections  # no drop for garbage
    # Then half a message and the connection cut: the next connection starts clean.
    proxy.inject(b"Event: AgentComplete\r\nQueue: province-general\r\nChannel: PJSIP/tr")
    await asyncio.sleep(0.1)
    proxy.cut()
    await eventually(lambda: _reconnected(ami, connections), what="AMI to reconnect")
    await asyncio.sleep(1)
    await hang_up(party, call, incoming)
    case = await only_case(service)
    assert case.outcome == "answered" and case.agent_id == "1001"
    assert case.hangup_by == "caller" and case.call_state == "ended"
    assert names == ["张三丰"]
    kinds = [e.kind for e in case.events]
    assert kinds.count("answered") == 1 and kinds.count("ended") == 1, kinds
    await proxy.stop()


async def _at_least(ami, n):
    return ami.malformed >= n


async def _reconnected(ami, before):
    return ami.connected and ami.connections > before
