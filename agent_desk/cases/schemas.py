"""Cases, the case form, exports and the audit log: request bodies and answer schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictInt, StrictStr

from agent_desk.audit import ACTIONS
from agent_desk.cases.store import FORM_FIELDS
from agent_desk.models import CATEGORIES
from agent_desk.web.routes import ARR, OBJ, SN, B, Body, I, N, S, obj, ok_and, ref


class FormBody(Body):
    # At least one field to save (an empty body is refused: "nothing to save").
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"minProperties": 1})

    category: Literal["consultation", "help", "complaint", "report", "suggestion"] | None = None
    subject: Annotated[StrictStr, Field(max_length=FORM_FIELDS["subject"])] | None = None
    address: Annotated[StrictStr, Field(max_length=FORM_FIELDS["address"])] | None = None
    content: Annotated[StrictStr, Field(max_length=FORM_FIELDS["content"])] | None = None
    department: Annotated[StrictStr, Field(max_length=FORM_FIELDS["department"])] | None = None
    # The version the agent edited (from the last read); omit to overwrite.
    version: StrictInt | None = None


CATEGORY = {"enum": [*CATEGORIES, None]}
SCHEMAS: dict[str, dict[str, Any]] = {
    "CaseSummary": obj({"number": S, "call_id": SN, "caller": S, "city": SN,
                        "dialed_number": SN, "queue": SN, "agent_id": SN,
                        "route_reasons": SN, "priority": I, "flags": ARR,
                        "outcome": SN, "call_state": S,
                        "status": {"enum": ["open", "closed"]}, "created_at": SN,
                        "answered_at": SN, "ended_at": SN, "wait_seconds": N,
                        "talk_seconds": N, "closed_at": SN, "category": CATEGORY,
                        "subject": S,
                        "rating": {"enum": ["satisfied", "basic", "unsatisfied", "none",
                                            None]}}),
    "Form": obj({"category": CATEGORY, "subject": S, "address": S, "content": S,
                 "department": S, "version": I, "updated_by": S, "updated_at": SN}),
    "CaseDetail": {"allOf": [ref("CaseSummary"), obj({
        "form": ref("Form"), "timeline": ARR, "legs": ARR, "transfers": ARR,
        "callback": {"oneOf": [ref("Task"), {"type": "null"}]},
        "earlier": ARR, "links": ARR})]},
}

CASES = obj({"total": I, "cases": {"type": "array", "items": ref("CaseSummary")}})
EXPORT = obj({"export": S, "clear": B, "cases": {"type": "array", "items": OBJ}})
EXPORT_OK = {"description": "OK", "content": {"application/json": {"schema": EXPORT},
                                              "text/csv": {"schema": {"type": "string"}}}}
AUDIT = obj({"total": I, "entries": {"type": "array", "items": obj({
    "id": I, "at": S, "user": S, "role": S, "action": S, "case": SN, "address": S,
    "detail": OBJ})}})
CASE = ref("CaseDetail")
FORM = ok_and(form=ref("Form"))
FORM_VERSIONS = obj({"case": S, "versions": {"type": "array", "items": obj({
    "version": I, "saved_by": S, "saved_at": SN, "fields": {"type": "array", "items": S},
    "values": OBJ, "purged": B})}})
CLOSE = ok_and(status={"const": "closed"})
TRANSCRIPT = obj({"status": S, "error": SN, "segments": {
    "type": "array", "items": obj({"speaker": S, "start": {"type": "number"},
                                   "end": {"type": "number"}, "text": S})},
    "recordings": {"type": "array", "items": obj({"side": S, "url_name": S, "url": S,
                                                  "kind": {"enum": ["audio", "video"]},
                                                  "open": B, "deleted_at": SN})}})
RECORDING_OK = {"description": "the recording (WAV; the sign-language seat's video: WebM)",
                "content": {t: {"schema": {"type": "string", "format": "binary"}}
                            for t in ("audio/wav", "audio/x-wav", "video/webm",
                                      "application/octet-stream")}}

# The query parameters of the case routes.
CASE_QUERY: dict[str, dict[str, Any]] = {"category": {"enum": list(CATEGORIES)}}
# The audit log's times: a day, or a day and time (local time unless an offset is given).
TIME = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
                                     r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                                     r"(Z|[+-][0-9]{2}:[0-9]{2})?)?$"}
AUDIT_QUERY: dict[str, dict[str, Any]] = {
    "from": TIME, "to": TIME, "action": {"enum": list(ACTIONS)},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000}}
