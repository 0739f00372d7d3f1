"""[sip_tls] settings and the service's self-signed SIP certificate (pure logic, no Asterisk)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509

from common.config import ConfigError
from lab.harness import lab_config
from telephony.asterisk.certs import make_self_signed, sip_certificate

NODES = [{"id": "node1"}, {"id": "node2"}]


def test_tls_listens_only_where_an_endpoint_needs_it(tmp_path: Path) -> None:
    one = lab_config(tmp_path)
    assert not one.sip_tls_on(one.nodes[0].id)  # one node: no inter-node trunk
    agents = lab_config(tmp_path, overrides={"sip_tls.agents": True})
    assert agents.sip_tls_on(agents.nodes[0].id)
    off = lab_config(tmp_path, overrides={"sip_tls.internode": False})
    assert not off.sip_tls_on(off.nodes[0].id)


def test_cert_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cert and key go together"):
        lab_config(tmp_path, overrides={"sip_tls.cert": "sip.pem"})


def test_default_tls_port_is_next_to_the_sip_port(tmp_path: Path) -> None:
    cfg = lab_config(tmp_path)
    node = cfg.nodes[0].model_copy(update={"sip_tls_port": None})
    assert node.tls_port == node.sip_port + 1


def test_self_signed_certificate_names_the_nodes_and_keeps_its_key_private(
        tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "tls" / "c.pem", tmp_path / "tls" / "k.pem"
    make_self_signed(cert_path, key_path, names=["0.0.0.0", "10.1.2.3", "sip.example"])
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = alt.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert ipaddress.ip_address("10.1.2.3") in ips
    assert ipaddress.ip_address("0.0.0.0") not in ips
    assert "sip.example" in alt.get_values_for_type(x509.DNSName)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_the_service_makes_its_certificate_once(tmp_path: Path) -> None:
    cfg = lab_config(tmp_path)
    first = sip_certificate(cfg)
    made = first.cert.read_bytes()
    again = sip_certificate(cfg)
    assert again.cert.read_bytes() == made and again.ca == again.cert
