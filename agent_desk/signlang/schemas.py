"""The sign-language page and the seat's video recording: bodies and answer schemas."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictInt

from agent_desk.web.routes import ARR, B, Body, I, S, obj

SCHEMAS: dict[str, dict[str, Any]] = {}
TICKET = obj({"uri": S, "username": S, "password": S, "ws_url": S, "target": S,
              "ticket": S, "expires_s": I, "ice_servers": ARR})
PIECE = obj({"case": S, "seq": I, "stored": B})
CLOSED = obj({"case": S, "pieces": I, "closed": B})
# A piece of the seat's video: a few seconds of WebM (the console asks for ~1 Mbit/s).
PIECE_MAX_BYTES = 8 << 20
SEQ_MAX = 100_000


class VideoClose(Body):
    """The end of the seat's video: how many pieces the console sent."""

    pieces: Annotated[StrictInt, Field(ge=0, le=SEQ_MAX)]
