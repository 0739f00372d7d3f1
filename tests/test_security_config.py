"""Network exposure and secrets, checked at start and in the rendered Asterisk configuration:
AMI only on the loopback unless over TLS (and then for real: a self-signed certificate made
here, Asterisk's TLS listener, the service's AMI client verifying it), ARI/HTTP disabled,
SIP and AMI secrets strong enough, ACLs on every agent and trunk endpoint."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import ConfigError, parse_config, secret_weakness
from lab.harness import REPO, Lab, free_port, lab_config_toml
from telephony.asterisk.instance import AsteriskInstance
from telephony.asterisk.runtime import container_runtime


def _cfg(tmp_path: Path, **overrides):
    return parse_config(lab_config_toml(tmp_path, overrides=overrides), source="t.toml",
                        base_dir=tmp_path)


def _node(tmp_path: Path, **node):
    import tomllib

    raw = tomllib.loads(lab_config_toml(tmp_path))
    raw["nodes"][0].update(node)
    from lab.harness import _to_toml

    return parse_config(_to_toml(raw), source="t.toml", base_dir=tmp_path)


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


def test_weak_sip_and_ami_secrets_are_refused_with_a_clear_message(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    for weak in ("changeme-changeme", "aaaaaaaaaaaaaaaaaaaa", "password12345678",
                 "abcdefghijklmnopqrstu", "Secret-123"):
        monkeypatch.setenv("HOTLINE_SIP_SECRET", weak)
        with pytest.raises(ConfigError) as err:
            _ = cfg.sip_secret
        assert "security.sip_secret_env" in str(err.value) and "HOTLINE_SIP_SECRET" in str(
            err.value), err.value
        monkeypatch.setenv("HOTLINE_AMI_SECRET", weak)
        with pytest.raises(ConfigError, match="HOTLINE_AMI_SECRET"):
            _ = cfg.ami_secret
    strong = "vX7q-Lm2pR9zKt4wB8nE"
    assert secret_weakness(strong) is None
    monkeypatch.setenv("HOTLINE_SIP_SECRET", strong)
    assert cfg.sip_secret == strong
    # `hotline config check` says it too, naming the variable.
    path = tmp_path / "hotline.toml"
    path.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    env = {**os.environ, "HOTLINE_SIP_SECRET": "hotline-hotline-1"}
    out = subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(path), "config",
                          "check"], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=60)
    assert out.returncode == 2 and "HOTLINE_SIP_SECRET is too weak" in out.stdout, out


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


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made now (nothing downloaded)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hotline-ami-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "ami-cert.pem", folder / "ami-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.asterisk
async def test_ami_over_tls_for_real(tmp_path, redis):
    import tomllib

    from lab.harness import _to_toml
    from telephony.ami import AmiClient, AmiTimeout

    cert, key = make_cert(tmp_path / "tls")
    raw = tomllib.loads(lab_config_toml(tmp_path / "data", overrides={
        "menu.prompt": "您好", "service.log_format": "text"}))
    tls_port = free_port()
    raw["nodes"][0].update(ami_tls=True, ami_tls_port=tls_port, ami_tls_cert=str(cert),
                           ami_tls_key=str(key))
    raw["database"] = {"url": f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"}
    cfg = parse_config(_to_toml(raw), source="tls.toml", base_dir=tmp_path)
    node = cfg.nodes[0]
    lab = Lab(cfg)
    try:
        await lab.start_asterisk()
        manager = (lab.instance.dir / "etc" / "manager.conf").read_text()
        assert f"tlsbindaddr = 127.0.0.1:{tls_port}" in manager
        assert oct((lab.instance.dir / "etc" / "keys" / "ami-key.pem").stat().st_mode)[-3:] \
            == "600"
        # The service's own client: TLS, the certificate checked against the configured one.
        ami = AmiClient(node=node.id, host="127.0.0.1", port=tls_port,
                        username=node.ami_username, secret=cfg.ami_secret,
                        ssl=node.ami_ssl_context(cfg.base_dir), server_hostname="127.0.0.1")
        await ami.start()
        try:
            await ami.wait_connected(20)
            pong = await ami.send({"Action": "Ping"})
            assert pong.get("Response") == "Success"
            assert ami.protocol.transport.get_extra_info("ssl_object").version() in (
                "TLSv1.2", "TLSv1.3")
        finally:
            await ami.stop()
        # A client that does not trust the certificate does not get in.
        untrusting = AmiClient(node=node.id, host="127.0.0.1", port=tls_port,
                               username=node.ami_username, secret=cfg.ami_secret,
                               ssl=ssl.create_default_context(), server_hostname="127.0.0.1",
                               backoff=(0.2,))
        await untrusting.start()
        with pytest.raises(AmiTimeout):
            await untrusting.wait_connected(2)
        await untrusting.stop()
        # And the whole service connects through it, as configured.
        service = lab.build_service(cfg, cel_from_now=True,
                                    ami_options={"backoff": (0.1, 0.2, 0.5)})
        await service.start()
        try:
            await service.wait_connected(20)
            assert service.nodes[node.id].ami.port == tls_port
            assert service.nodes[node.id].ami.ssl is not None
        finally:
            await service.stop()
    finally:
        keys = [k async for k in redis.scan_iter(f"{cfg.redis.prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await lab.close()
