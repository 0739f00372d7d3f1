"""The sign-language page: answer schemas."""

from __future__ import annotations

from typing import Any

from agent_desk.web.routes import ARR, I, S, obj

SCHEMAS: dict[str, dict[str, Any]] = {}
TICKET = obj({"uri": S, "username": S, "password": S, "ws_url": S, "target": S,
              "ticket": S, "expires_s": I, "ice_servers": ARR})
