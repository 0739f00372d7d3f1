"""Missed-call callbacks: request body and answer schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictStr

from agent_desk.web.routes import ARR, SN, Body, I, S, obj, ok_and, ref

STATUSES = ["pending", "calling", "done", "failed", "cancelled"]


class CallbackOutcomeBody(Body):
    outcome: Literal["reached", "no_answer", "busy", "wrong_number", "cancelled"]
    note: Annotated[StrictStr, Field(max_length=200)] = ""


SCHEMAS: dict[str, dict[str, Any]] = {
    "Task": obj({"id": I, "status": {"enum": STATUSES}, "attempts": I, "max_attempts": I,
                 "outcome": SN, "reason": S, "city": SN, "queue": SN, "log": ARR,
                 "created_at": SN},
                case=S, caller=S),
}
CALLBACKS = obj({"callbacks": {"type": "array", "items": ref("Task")}})
TASK = ok_and(task=ref("Task"))
QUERY: dict[str, dict[str, Any]] = {"status": {"enum": STATUSES}}
