"""What the public may know of a case, and the small rules of the intake; pure functions (no
I/O), covered by tests/unit/test_intake_public.py.

The status page and the channels see a case's *public* state, coarser than the loop's: a
department returning a case (退单) or a reply waiting for the hotline's review is the
hotline's business, and a reply is shown only once the hotline has reviewed it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# The loop's states (cases/loop/states.py) as the public sees them.
PUBLIC_STATE = {
    "accepted": "accepted",  # 已受理
    "dispatched": "processing", "handling": "processing", "returned": "processing",
    "replied": "processing",  # 办理中 (the reply is being reviewed)
    "follow_up": "answered",  # 已答复 (reviewed; 回访 to come)
    "closed": "closed",  # 已办结
    "merged": "merged",  # 已并案办理
}
PUBLIC_STATES = ("accepted", "processing", "answered", "closed", "merged")

# Query codes: no 0/O, 1/I/L; 8 characters = 40 bits, and wrong guesses are counted per case.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8


def public_state(state: str | None) -> str:
    """A case without loop work yet is simply accepted (a call's case before classification)."""
    return PUBLIC_STATE.get(state or "accepted", "processing")


@dataclass(frozen=True)
class LeadReply:
    """A lead (主办) dispatch's reply, as the store reads it."""

    round: int
    state: str  # the dispatch's state
    reply_enc: str | None
    replied_at: datetime | None


def reviewed_reply(state: str | None, current_round: int, leads: Sequence[LeadReply]
                   ) -> LeadReply | None:
    """The latest reply the hotline has reviewed, if any. A reply of the current round is
    reviewed once the case has moved on to 回访 or was closed after it; a reply of an earlier
    round was reviewed before the case went round again (重办 follows 回访 only)."""
    reviewed = [d for d in leads if d.state == "replied" and d.reply_enc and (
        d.round < current_round or state in ("follow_up", "closed"))]
    return max(reviewed, key=lambda d: d.round) if reviewed else None


def new_query_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str:
    """As the citizen may type it: lower case, spaces and dashes."""
    return "".join(ch for ch in text.upper() if ch not in " -")


def code_hash(number: str, code: str) -> str:
    return hashlib.sha256(f"{number}:{normalize_code(code)}".encode()).hexdigest()


def same_hash(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing side compares against a dummy and fails (the
    time taken does not tell whether the case exists)."""
    same = hmac.compare_digest((expected or "-").encode(), (given or "+").encode())
    return same and bool(expected)


def client_bucket(address: str | None) -> str:
    """Whom a per-address limit counts: an IPv4 address, or an IPv6 client's /64 (one
    household or phone holds a whole /64). Hashed: no address in Redis."""
    text = (address or "").strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        key = text or "-"
    else:
        if isinstance(ip, ipaddress.IPv6Address):
            mapped = ip.ipv4_mapped
            key = str(mapped) if mapped is not None else str(
                ipaddress.IPv6Network(f"{ip}/64", strict=False))
        else:
            key = str(ip)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def request_hash(doc: dict[str, object]) -> str:
    """The request as the idempotency check compares it (key order does not matter)."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False,
                                     separators=(",", ":")).encode()).hexdigest()
