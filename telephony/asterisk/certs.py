"""The certificate Asterisk's SIP/TLS transport presents and trusts ([sip_tls]).

An operator's certificate (``[sip_tls] cert``/``key``, ``ca``) is used as given. Without one
the service makes a self-signed certificate once, in ``<data_dir>/tls``, for the loopback and
every node's SIP address: every node rendered by this service presents it and trusts it, so
the inter-node trunks are encrypted and verified from the first start, nothing downloaded."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.config import Config

SELF_SIGNED_DAYS = 3650


@dataclass(frozen=True)
class SipCertificate:
    cert: Path
    key: Path
    ca: Path  # what peers' certificates are checked against


def sip_certificate(cfg: Config) -> SipCertificate:
    """The configured certificate, or the service's self-signed one (made if missing)."""
    t = cfg.sip_tls
    if t.cert is not None and t.key is not None:
        cert, key = _beside(cfg, t.cert), _beside(cfg, t.key)
        ca = _beside(cfg, t.ca) if t.ca is not None else cert
        return SipCertificate(cert, key, ca)
    folder = cfg.data_dir / "tls"
    cert, key = folder / "sip-cert.pem", folder / "sip-key.pem"
    if not (cert.exists() and key.exists()):
        make_self_signed(cert, key, names=[n.sip_host for n in cfg.nodes])
    return SipCertificate(cert, key, _beside(cfg, t.ca) if t.ca is not None else cert)


def _beside(cfg: Config, p: Path) -> Path:
    return p if p.is_absolute() else cfg.base_dir / p


def make_self_signed(cert_path: Path, key_path: Path, *, names: list[str]) -> None:
    """A self-signed certificate (its own CA, so it can be the trust list) for the loopback
    and ``names`` (addresses or host names; 0.0.0.0 is skipped). The key is written 0600."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hotline-sip")])
    alt: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                   x509.IPAddress(ipaddress.ip_address("::1"))]
    for name in dict.fromkeys(names):
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            alt.append(x509.DNSName(name))
            continue
        if not address.is_unspecified and not address.is_loopback:
            alt.append(x509.IPAddress(address))
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def spki_sha256(cert_path: Path) -> str:
    """The base64 SHA-256 of a certificate's public key: how a browser is told to trust a
    self-signed certificate by its key (Chromium's --ignore-certificate-errors-spki-list)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(key).digest()).decode()
