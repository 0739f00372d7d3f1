"""回访 tasks: request body and answer schemas."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictStr

from agent_desk.web.routes import SN, Body, I, S, obj, ok_and, ref

STATES = ["pending", "calling", "answered", "done", "refused", "cancelled"]


class FollowUpBody(Body):
    case: Annotated[StrictStr, Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z-]+$")]


SCHEMAS: dict[str, dict[str, Any]] = {
    "FollowUp": obj({
        "id": I, "case": S, "round": I, "city": SN, "origin": {"enum": ["loop", "operator"]},
        "requested_by": S, "state": {"enum": STATES}, "attempts": I, "max_attempts": I,
        "next_at": SN, "attempt_at": SN, "last_outcome": SN,
        "resolved": {"type": ["boolean", "null"]}, "satisfaction": SN, "outcome": SN,
        "reason": S, "created_at": SN}),
}
FOLLOWUPS = obj({"followups": {"type": "array", "items": ref("FollowUp")}})
FOLLOWUP = ok_and(followup=ref("FollowUp"))
QUERY: dict[str, dict[str, Any]] = {"state": {"enum": STATES}}
