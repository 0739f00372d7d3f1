"""Secrets derived from the ones in the environment, so the repo and config hold none."""

from __future__ import annotations

import hashlib
import hmac


def sip_password(master: str, endpoint: str) -> str:
    """Each agent's SIP password: unique, strong, and reproducible by the softphone command."""
    digest = hmac.new(master.encode(), f"sip:{endpoint}".encode(), hashlib.sha256).hexdigest()
    return digest[:32]
