"""Network exposure, checked at start and in the rendered Asterisk configuration: AMI only on
the loopback unless over TLS, ARI/HTTP disabled, ACLs on every agent and trunk endpoint.
(Weak secrets refused, also by `hotline config check`: tests/integration/test_config_check_cli.py;
AMI over TLS for real: tests/integration/test_security_tls.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import ConfigError, parse_config
from lab.harness import lab_config_toml, to_toml
from telephony.asterisk.instance import AsteriskInstance
from telephony.asterisk.runtime import container_runtime


def _cfg(tmp_path: Path, **overrides):
    return parse_config(lab_config_toml(tmp_path, overrides=overrides), source="t.toml",
                        base_dir=tmp_path)


def _node(tmp_path: Path, **node):
    import tomllib

    raw = tomllib.loads(lab_config_toml(tmp_path))
    raw["nodes"][0].update(node)
    return parse_config(to_toml(raw), source="t.toml", base_dir=tmp_path)


@pytest.mark.parametrize("host", ["10.1.2.3", "0.0.0.0", "asterisk.example", "192.168.1.9"])
def test_ami_off_the_loopback_is_refused_without_tls(tmp_path, host):
    with pytest.raises(ConfigError) as err:
        _node(tmp_path, ami_host=host)
    msg = str(err.value)
    assert "nodes[0]" in msg and "not a loopback address" in msg and "ami_tls" in msg, msg


def test_ami_on_the_loopback_or_over_tls_is_accepted(tmp_path):
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert _node(tmp_path, ami_host=host).nodes[0].ami_plain_host == host
    with pytest.raises(ConfigError, match="ami_tls needs ami_tls_port, ami_tls_cert, "
                                          "ami_tls_key"):
        _node(tmp_path, ami_host="10.1.2.3", ami_tls=True)
    cfg = _node(tmp_path, ami_host="10.1.2.3", ami_tls=True, ami_tls_port=5039,
                ami_tls_cert="ami.pem", ami_tls_key="ami.key", ami_clients=["10.1.2.0/24"])
    node = cfg.nodes[0]
    assert node.ami_plain_host == "127.0.0.1" and node.ami_endpoint() == ("10.1.2.3", 5039)
    with pytest.raises(ConfigError, match="ami_clients"):
        _node(tmp_path, ami_clients=["not-a-net"])


def test_rendered_config_keeps_ari_and_http_off_and_ami_on_the_loopback(tmp_path):
    cfg = _cfg(tmp_path / "data")
    node = cfg.nodes[0]
    inst = AsteriskInstance(container_runtime(), tmp_path / "inst", node)
    inst.render(cfg, ami_secret=cfg.ami_secret, sip_master=cfg.sip_secret)
    etc = tmp_path / "inst" / "etc"

    def settings(name: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        section = ""
        for line in (etc / name).read_text().splitlines():
            line = line.split(";", 1)[0].strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif "=" in line:
                k, _, v = line.partition("=")
                out.setdefault(f"{section}.{k.strip().rstrip('>')}", []).append(v.strip())
        return out

    http = settings("http.conf")
    assert http == {"general.enabled": ["no"]}, http
    manager = settings("manager.conf")
    assert manager["general.bindaddr"] == ["127.0.0.1"]
    assert "general.webenabled" not in manager and "general.tlsenable" not in manager
    assert manager[f"{node.ami_username}.deny"] == ["0.0.0.0/0.0.0.0"]
    assert manager[f"{node.ami_username}.permit"] == ["127.0.0.1/255.255.255.255"]
    modules = (etc / "modules.conf").read_text()
    for mod in ("res_ari.so", "res_ari_channels.so", "app_stasis.so"):
        assert f"noload => {mod}" in modules.replace("noload=>", "noload => "), mod
    pjsip = (etc / "pjsip.conf").read_text()
    for agent in cfg.agents_of(node.id):
        block = pjsip.split(f"[{agent.id}](hotline-endpoint)", 1)[1].split("\n\n", 1)[0]
        assert "acl = hotline-agents" in block and "contact_acl = hotline-agents" in block
    for trunk in cfg.trunks_of(node.id):
        block = pjsip.split(f"[trunk-{trunk.id}](hotline-endpoint)", 1)[1].split("\n\n", 1)[0]
        assert f"acl = hotline-trunk-{trunk.id}" in block
    acl = settings("acl.conf")
    assert acl["hotline-agents.deny"] == ["0.0.0.0/0", "::/0"]
    assert acl["hotline-agents.permit"] == cfg.security.agent_networks
    carrier = next(t for t in cfg.trunks if t.match)
    assert acl[f"hotline-trunk-{carrier.id}.permit"] == carrier.match
    header = next(t for t in cfg.trunks if not t.match)
    assert acl[f"hotline-trunk-{header.id}.permit"] == cfg.security.trunk_networks
    assert "security.log => security" in (etc / "logger.conf").read_text()
