"""The console's phone: answer schemas."""

from __future__ import annotations

from typing import Any

from agent_desk.web.routes import ARR, B, S, obj

SCHEMAS: dict[str, dict[str, Any]] = {}
CREDENTIALS = obj({"agent": S, "display_name": S, "uri": S, "username": S, "password": S,
                   "ws_url": S, "ice_servers": ARR, "ring_sound": B,
                   "record_video": B})
