"""What to do after an attempt, and where a webhook may go (pure functions, unit-tested).

- ``decide()``: a 2xx answer delivers; anything else is retried after an exponential
  backoff with jitter, until ``max_attempts`` or ``max_age_s``, then the delivery is dead (on
  the admin's dead-letter list). A URL the service refuses (not http(s), an address not
  allowed) is dead at once: no retry can change it, an admin must fix the URL.
- ``url_problem()`` / ``address_allowed()``: only http(s), and no loopback, private,
  link-local, multicast or reserved address unless in ``[webhooks] allow_networks`` (a
  webhook must not become a way into the hotline's own network).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cases.loop.outbox import DEAD, DELIVERED, PENDING
from common.config import WebhooksSection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Attempt:
    """One POST's result: the answer's status, or the failure (an exception's name and
    words, never the payload). ``refused``: the service would not send it at all."""

    status: int | None = None
    error: str | None = None
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Outcome:
    state: str
    next_attempt_at: datetime | None  # when pending: the next try
    last_status: int | None
    last_error: str | None


def backoff_s(attempts: int, base_s: float, max_s: float, rand: float) -> float:
    """The wait after the ``attempts``-th failure: base * 2^(attempts-1), capped, of which a
    random half is dropped (``rand`` in [0, 1)) so that receivers coming back up are not hit
    by every sender at once."""
    full = min(max_s, base_s * 2.0 ** min(max(attempts - 1, 0), 60))
    return full / 2 + full / 2 * rand


def decide(attempt: Attempt, *, attempts: int, created_at: datetime, now: datetime,
           settings: WebhooksSection, rand: float) -> Outcome:
    """The delivery after its ``attempts``-th attempt (this one included)."""
    if attempt.ok:
        return Outcome(DELIVERED, None, attempt.status, None)
    error = (attempt.error or f"HTTP {attempt.status}")[:256]
    if attempt.refused:
        return Outcome(DEAD, None, attempt.status, error)
    if attempts >= settings.max_attempts:
        return Outcome(DEAD, None, attempt.status, error)
    wait = backoff_s(attempts, settings.backoff_base_s, settings.backoff_max_s, rand)
    at = now + timedelta(seconds=wait)
    if at - created_at > timedelta(seconds=settings.max_age_s):
        return Outcome(DEAD, None, attempt.status, error)
    return Outcome(PENDING, at, attempt.status, error)


def networks(items: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in items)


def address_allowed(address: str, allowed: Sequence[Network]) -> bool:
    """A public address, or one in the allowed networks."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is the loopback
    if any(ip in n for n in allowed if n.version == ip.version):
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def url_problem(url: str, allowed: Sequence[Network]) -> str | None:
    """Why the service will not POST to ``url`` (None: it may; a host name is checked again
    for each address it resolves to when connecting)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "only http:// and https:// URLs"
    host = parts.hostname
    if not host:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL (use the signature instead)"
    if port == 0:
        return "port 0"
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # a name: its addresses are checked when resolved
    if not address_allowed(host, allowed):
        return f"address {host} is not allowed ([webhooks] allow_networks)"
    return None
