"""The agent's console: request bodies and answer schemas."""

from __future__ import annotations

from typing import Any, Literal

from agent_desk.web.routes import OBJ, OK, SN, B, Body, I, N, S, obj, ok_and

PauseReason = Literal["rest", "training", "after_call_work", "meeting", "supervisor"]


class PauseBody(Body):
    reason: PauseReason


SCHEMAS: dict[str, dict[str, Any]] = {}
STATE = obj({"agent": S, "signed_in": B, "state": SN, "reason": S, "since": N,
             "call": {"type": ["object", "null"]}, "case": {"type": ["object", "null"]},
             "now": {"type": "number"}})
SIGNED = ok_and(signed_in=B, changes=I)
SENT = ok_and(sent=S, id=S)
HANGUP = ok_and(channels=I)
DONE = OK
NAMES = obj({"province": S, "cities": OBJ, "skills": OBJ, "agents": OBJ})
