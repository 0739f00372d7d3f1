"""Inter-node trunks encrypted (issue 15, medium 8): two real Asterisk nodes with the
service's self-signed certificate. A call node1 places to an agent registered on node2 (what
a lent agent's queue call is: ``PJSIP/<agent>@node-node2``) travels over SIP/TLS with SRTP
media on both nodes; a plain-UDP INVITE to the trunk endpoint, even with the right password
and SRTP offered, is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_desk.softphone.phones import SipPhones
from common.secrets import sip_password
from lab.harness import Lab
from queueing.surge.manager import borrowed_interface
from telephony.ami import AmiClient
from tests.support.rawsip import RawCaller
from tests.support.service import lab_test_config
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk]

NODES = [{"id": "node1"}, {"id": "node2"}]
CITIES = [{"id": "nanjing", "name": "南京", "node": "node1", "area_codes": ["025"]},
          {"id": "suzhou", "name": "苏州", "node": "node2", "area_codes": ["0512"]}]
TRUNKS = [{"id": "nanjing", "node": "node1", "city": "nanjing",
           "match_header": "X-Hotline-Trunk: nanjing"},
          {"id": "suzhou", "node": "node2", "city": "suzhou",
           "match_header": "X-Hotline-Trunk: suzhou"}]
AGENTS = [{"id": "1001", "name": "王芳", "city": "nanjing", "skills": {"general": 4}},
          {"id": "2001", "name": "陈静", "city": "suzhou", "skills": {"general": 4}}]


@pytest.fixture(scope="module")
async def tlab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    cfg = lab_test_config(tmp_path_factory.mktemp("tls-lab"), **{
        "nodes": NODES, "cities": CITIES, "trunks": TRUNKS, "agents": AGENTS,
        "numbers": [{"number": "12345", "skill": "general"}],
        "skills": {"general": "综合咨询"}, "menu.keys": {}, "routing.relax_skills": {},
        "branch_centers": [], "emergency_lines": []})
    the_lab = Lab(cfg)
    await the_lab.start_asterisk()
    yield the_lab
    await the_lab.close()


async def ami(lab: Lab, node: str) -> AmiClient:
    n = lab.cfg.node(node)
    client = AmiClient(node=node, host="127.0.0.1", port=n.ami_port,
                       username=n.ami_username, secret=lab.cfg.ami_secret)
    await client.start()
    await client.wait_connected(20)
    return client


async def channel_value(client: AmiClient, channel: str, expression: str) -> str:
    resp = await client.send({"Action": "Getvar", "Channel": channel,
                              "Variable": expression}, timeout=10)
    return str(resp.get("Value", ""))


async def up_channel(lab: Lab, node: str, prefix: str) -> str | None:
    out = await asyncio.to_thread(lab.instances[node].cli, "core show channels concise")
    for line in out.splitlines():
        fields = line.split("!")
        if fields[0].startswith(prefix) and "Up" in fields:
            return fields[0]
    return None


async def test_a_lent_agents_call_crosses_the_trunk_over_tls_with_srtp(
        tlab: Lab, tmp_path: Path, sounds: dict[str, Path]) -> None:
    pjsip1 = (tlab.instances["node1"].dir / "etc" / "pjsip.conf").read_text()
    trunk = pjsip1.split("[node-node2](hotline-endpoint)", 1)[1].split("\n\n", 1)[0]
    assert "transport = transport-tls" in trunk and "media_encryption = sdes" in trunk
    assert (tlab.cfg.data_dir / "tls" / "sip-cert.pem").exists()  # made at start

    phones = SipPhones(log_dir=tmp_path / "phones")
    tlab.sip = phones
    a1, a2 = await ami(tlab, "node1"), await ami(tlab, "node2")
    try:
        agent = await tlab.agent("2001", play=sounds["tone_agent"])
        # node1 rings Suzhou's agent over the trunk, as its queue does for a lent agent.
        await asyncio.to_thread(
            tlab.instances["node1"].cli,
            f"channel originate {borrowed_interface('2001', 'node2')} application Echo")
        incoming = await asyncio.wait_for(agent.incoming.get(), 30)
        await asyncio.wait_for(incoming.answered.wait(), 15)
        out = await eventually(lambda: up_channel(tlab, "node1", "PJSIP/node-node2-"),
                               timeout=15, what="node1's trunk leg up")
        into = await eventually(lambda: up_channel(tlab, "node2", "PJSIP/node-node1-"),
                                timeout=15, what="node2's trunk leg up")
        assert await channel_value(a1, out, "CHANNEL(pjsip,secure)") == "1"
        assert await channel_value(a2, into, "CHANNEL(pjsip,secure)") == "1"
        assert await channel_value(a1, out, "CHANNEL(rtp,secure)") == "1"
        assert await channel_value(a2, into, "CHANNEL(rtp,secure)") == "1"
        # node2 took the INVITE on its TLS listener.
        assert (await channel_value(a2, into, "CHANNEL(pjsip,local_addr)")).endswith(
            f":{tlab.cfg.node('node2').tls_port}")
        await agent.hangup(incoming)
        await asyncio.wait_for(incoming.disconnected.wait(), 15)
    finally:
        await phones.stop()
        tlab.sip = None
        await a1.stop()
        await a2.stop()


async def test_the_trunk_refuses_plain_udp_even_with_its_password(tlab: Lab) -> None:
    node2 = tlab.cfg.node("node2")
    # node1's identity at node2, over UDP, with the right password and SRTP offered.
    peer = await RawCaller(("127.0.0.1", node2.sip_port), "node-node1").start()
    try:
        uri = f"sip:2001@127.0.0.1:{node2.sip_port}"
        answer = await peer.invite(
            uri, auth=("node-node1", sip_password(tlab.cfg.sip_secret, "node-node1")),
            srtp=True)
        # And plain RTP (what a UDP peer would offer) is not even negotiated.
        plain = await RawCaller(("127.0.0.1", node2.sip_port), "node-node1").start()
        try:
            cleartext = await plain.invite(
                uri, auth=("node-node1", sip_password(tlab.cfg.sip_secret, "node-node1")))
        finally:
            plain.close()
    finally:
        peer.close()
    assert answer.status == 403, answer.raw
    assert cleartext.status in (403, 488), cleartext.raw
    out = await asyncio.to_thread(tlab.instances["node2"].cli, "core show channels count")
    assert out.split(" active channel")[0].strip().split()[-1] == "0"


