"""AMI over TLS for real: a self-signed certificate made here, Asterisk's TLS listener, the
service's AMI client verifying it, and a client that does not trust it kept out."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest

from common.config import parse_config
from lab.harness import Lab, free_port, lab_config_toml, to_toml


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

    from telephony.ami import AmiClient, AmiTimeout

    cert, key = make_cert(tmp_path / "tls")
    raw = tomllib.loads(lab_config_toml(tmp_path / "data", overrides={
        "menu.prompt": "您好", "service.log_format": "text"}))
    tls_port = free_port()
    raw["nodes"][0].update(ami_tls=True, ami_tls_port=tls_port, ami_tls_cert=str(cert),
                           ami_tls_key=str(key))
    raw["database"] = {"url": f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"}
    cfg = parse_config(to_toml(raw), source="tls.toml", base_dir=tmp_path)
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
