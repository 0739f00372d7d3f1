"""Where a transfer goes: configured lines, colleagues (on this node or another's) and skill
queues (another city's over the inter-node trunk). Pure: the config only."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from common.config import parse_config
from lab.harness import EXAMPLE_CONFIG, to_toml
from telephony.transfers.services import CallControl, TransferError


def control(**changes: Any) -> CallControl:
    raw = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    raw.update(changes)
    cfg = parse_config(to_toml(raw), source="hotline.toml")
    # AMI and the trackers are never reached: resolving a target reads the config only.
    return CallControl(cfg, ami_of=lambda n: None, tracker_of=lambda n: None,
                       sinks=[])


TWO_NODES = {
    "nodes": [{"id": "node1", "sip_port": 5060, "ami_port": 5038},
              {"id": "node2", "sip_port": 5160, "ami_port": 5138}],
    "cities": [{"id": "nanjing", "name": "南京", "node": "node1"},
               {"id": "suzhou", "name": "苏州", "node": "node2"}],
    "trunks": [{"id": "nanjing", "node": "node1", "city": "nanjing", "match": ["10.0.0.1"]}],
}


def test_configured_lines_by_id_or_number():
    cc = control()
    tax = cc._destination("12366", "node1")
    assert (tax.id, tax.kind, tax.channel) == ("tax", "branch_center", "PJSIP/12366@dest-tax")
    assert cc._destination("police", "node1").present_caller


def test_a_colleague_on_this_node_or_over_the_trunk():
    cc = control()
    here = cc._destination("agent:1002", "node1", "1001")
    assert (here.id, here.kind, here.number, here.channel) == (
        "agent:1002", "colleague", "1002", "PJSIP/1002")
    assert here.name == "1002 李强"
    assert cc._destination("1002", "node1", "1001").id == "agent:1002"
    with pytest.raises(TransferError) as err:
        cc._destination("agent:1001", "node1", "1001")
    assert err.value.code == "unknown_destination"
    far = control(**TWO_NODES)._destination("agent:2001", "node1", "1001")
    assert far.channel == "PJSIP/2001@node-node2"


def test_a_skill_queue_here_or_in_another_citys_node():
    cc = control(**TWO_NODES)
    here = cc._destination("queue:nanjing-enterprise_policy", "node1")
    assert here.kind == "queue" and here.channel == \
        "Local/nanjing-enterprise_policy@hotline-xfer-queue/n"
    assert dict(here.variables) == {"HOTLINE_XFER_QUEUE": "nanjing-enterprise_policy",
                                    "HOTLINE_XFER_PEER": ""}
    assert here.name == "南京 · 一企来 企业服务"
    there = cc._destination("queue:suzhou-lang_en", "node1")
    assert dict(there.variables)["HOTLINE_XFER_PEER"] == "node-node2"
    province = cc._destination("queue:province-general", "node2")
    assert dict(province.variables)["HOTLINE_XFER_PEER"] == ""
    for bad in ("queue:nowhere-general", "queue:nanjing-nothing", "agent:9999", "x" * 40):
        with pytest.raises(TransferError):
            cc._destination(bad, "node1")
