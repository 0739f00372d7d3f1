"""Secrets derived from the ones in the environment, so the repo and config hold none.

Keys for different purposes come from one secret through HKDF-SHA256 (RFC 5869) with a label
per purpose (``LABELS``): knowing one derived key tells nothing about the secret or the
others, and no purpose can be confused with another."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# One HKDF label ("info") per purpose; a new purpose gets a new label, never an old one.
DATA_ENCRYPT = b"hotline/data-key/encrypt/v2"
DATA_LOOKUP = b"hotline/data-key/lookup/v2"
SESSION_SIGN = b"hotline/session-secret/sign/v2"
SESSION_CSRF = b"hotline/session-secret/csrf/v2"
WEBHOOK_SIGN = b"hotline/webhook-secret/sign/v1"
# Words of what callers said, counted and used as features without being kept in clear.
DATA_TERMS = b"hotline/data-key/terms/v1"
LABELS = (DATA_ENCRYPT, DATA_LOOKUP, SESSION_SIGN, SESSION_CSRF, WEBHOOK_SIGN, DATA_TERMS)
_SALT = b"hotline-12345"


def derive_key(secret: str, label: bytes, length: int = 32) -> bytes:
    """A key for one purpose (``label``) from a secret of the environment."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT,
                info=label).derive(secret.encode())


def sip_password(master: str, endpoint: str) -> str:
    """Each agent's SIP password: unique, strong, and reproducible by the softphone command."""
    digest = hmac.new(master.encode(), f"sip:{endpoint}".encode(), hashlib.sha256).hexdigest()
    return digest[:32]


def webhook_secret(master: str, department: str, generation: int) -> str:
    """A department's webhook signing secret (its ``generation``-th: rotating it takes the
    next). Nothing is stored: it follows from the master secret, so a stolen database holds
    no department's secret. 43 URL-safe characters (32 bytes); the HMAC key is this text."""
    label = WEBHOOK_SIGN + f":{department}:{generation}".encode()
    key = derive_key(master, label)
    return "whsec_" + base64.urlsafe_b64encode(key).decode().rstrip("=")
