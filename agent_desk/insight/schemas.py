"""Hot-topic alerts and suggested classification: request bodies and answer schemas."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictStr

from agent_desk.web.routes import ARR, SN, B, Body, I, N, S, obj, ref

NUMBER = Annotated[StrictStr, Field(min_length=1, max_length=32)]


class MergeBody(Body):
    # The case the others are merged into (one of the alert's); omitted: the earliest.
    into: NUMBER | None = None


class SuggestBody(Body):
    # What the agent is typing on the form, not saved yet (used, never kept).
    text: Annotated[StrictStr, Field(max_length=4000)] = ""


NI = {"type": ["integer", "null"]}
SCHEMAS: dict[str, dict[str, Any]] = {
    "HotAlert": obj({
        "id": I, "kind": {"enum": ["matter", "keyword"]}, "city": SN, "city_name": SN,
        "district": SN, "district_name": SN,
        "matter": SN, "matter_name": SN, "term": SN, "observed": I, "expected": N,
        "p_value": N, "peak": I, "cases": I, "opened_at": SN, "last_warm_at": SN,
        "closed_at": SN, "open": B, "acknowledged_by": SN, "acknowledged_at": SN,
        "merged_into": SN, "merged_by": SN, "merged_at": SN, "signals": ARR},
        case_list={"type": "array", "items": obj({
            "number": S, "city": SN, "at": SN, "state": S, "matter": SN, "matter_name": SN,
            "district": SN, "district_name": SN, "merged": B})}),
    "Suggestion": obj({"number": S, "matter": SN, "matter_name": SN, "confidence": N,
                       "department": SN, "department_name": SN,
                       "source": {"enum": ["model", "rules"]}, "model_id": NI}),
}
ALERTS = obj({"alerts": {"type": "array", "items": ref("HotAlert")}})
ALERT = ref("HotAlert")
MERGED = obj({"alert": I, "into": S, "merged": {"type": "array", "items": S},
              "skipped": {"type": "array", "items": obj({"number": S, "error": S,
                                                         "message": S})}})
CLASSIFIER = obj({"source": {"enum": ["model", "rules"]}, "model_id": NI, "min_confirmed": I,
                  "models": {"type": "array", "items": obj({
                      "id": I, "trained_at": SN, "kind": S, "cases": I, "held_back": I,
                      "accuracy": N, "rules_accuracy": N, "active": B, "classes": I})},
                  "suggestions": {"type": "object"}})
SUGGESTION = ref("Suggestion")
ALERT_QUERY: dict[str, dict[str, Any]] = {"status": {"enum": ["open", "closed", "all"]}}
# Short in the address (percent-encoded Chinese is nine bytes a character; the server's
# request line is at most 8 KiB): longer texts go in the POST body.
SUGGEST_QUERY: dict[str, dict[str, Any]] = {"text": {"type": "string", "maxLength": 500}}
