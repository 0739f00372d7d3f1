"""How a delivery is signed, and how a receiver checks it (pure functions; docs/webhooks.md
shows a department the same check).

    X-Hotline-Timestamp: 1767225600
    X-Hotline-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

During a rotation's grace the header carries one signature per valid secret, comma-separated
(``sha256=<new>,sha256=<old>``): a receiver accepts the request when any one matches a secret
it holds. The timestamp is signed with the body, so a captured request cannot be replayed
later than the receiver's tolerance (five minutes by default).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

SCHEME = "sha256"
TOLERANCE_S = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``timestamp + "." + body`` under ``secret`` (its UTF-8 text)."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                    hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: str, body: bytes) -> str:
    return ",".join(f"{SCHEME}={sign(s, timestamp, body)}" for s in secrets)


def verify(secret: str, timestamp: str, body: bytes, header: str, *, now: float,
           tolerance_s: float = TOLERANCE_S) -> bool:
    """True when ``header`` (X-Hotline-Signature) holds a signature of ``body`` at
    ``timestamp`` (X-Hotline-Timestamp) under ``secret``, and the timestamp is within
    ``tolerance_s`` of ``now`` (seconds since the epoch)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    ok = False
    for part in header.split(","):
        scheme, _, value = part.strip().partition("=")
        # Every candidate compared in constant time; no early answer to time.
        if scheme == SCHEME and hmac.compare_digest(value, expected):
            ok = True
    return ok
