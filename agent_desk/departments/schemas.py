"""The departments room: request bodies and answer schemas (the same for the console page and
the departments' own systems)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from agent_desk.web.routes import ARR, OBJ, SN, B, Body, I, S, obj, ok_and, ref

# Free text must say something (a blank reason is refused by the loop anyway).
SAYS = r"\S"
ID = r"^[A-Za-z0-9_-]+$"


class ReturnBody(Body):
    reason: Annotated[StrictStr, Field(min_length=1, max_length=1000, pattern=SAYS)]


class NoteBody(Body):
    text: Annotated[StrictStr, Field(min_length=1, max_length=4000, pattern=SAYS)]


class ReplyBody(Body):
    text: Annotated[StrictStr, Field(min_length=1, max_length=4000, pattern=SAYS)]
    contacted: StrictBool  # the department talked to the caller


class ExtensionBody(Body):
    days: Annotated[StrictInt, Field(ge=1, le=60)]  # working days more
    reason: Annotated[StrictStr, Field(min_length=1, max_length=1000, pattern=SAYS)]


class DepartmentBody(Body):
    name: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=SAYS)]
    level: Literal["province", "city", "district", "street"]
    city: Annotated[StrictStr, Field(min_length=1, max_length=32)] | None = None
    parent: Annotated[StrictStr, Field(min_length=1, max_length=32, pattern=ID)] | None = None
    unit: Annotated[StrictStr, Field(max_length=32)] = ""
    active: StrictBool = True
    # Omitted: an existing department keeps its webhook (agent_desk/webhooks).
    webhook_url: Annotated[StrictStr, Field(max_length=256,
                                            pattern=r"^https?://[^\s]+$")] | None = None


class ActiveBody(Body):
    active: StrictBool


class ImportBody(Body):
    # The CSV's text (id,name,level,city,parent,unit,webhook_url; a header row).
    csv: Annotated[StrictStr, Field(min_length=1, max_length=1_000_000)]
    dry_run: StrictBool = False


class DefaultBody(Body):
    matter: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    city: Annotated[StrictStr, Field(min_length=1, max_length=32)] | None = None
    department: Annotated[StrictStr, Field(min_length=1, max_length=32, pattern=ID)]


class TokenBody(Body):
    label: Annotated[StrictStr, Field(max_length=64)] = ""


TS = SN  # an ISO 8601 time in UTC, or null
LIGHT = {"enum": ["red", "yellow", "green", "none"]}
DEPARTMENT = obj({"id": S, "name": S, "level": S, "city": SN, "parent": SN, "parent_name": S,
                  "unit": S, "webhook_url": SN, "active": B}, city_name=S)
ITEM = {
    "number": S, "state": S, "dispatch_state": S, "role": S, "round": I, "city": SN,
    "city_name": S,
    "district": SN, "district_name": S, "channel": S, "appeal_type": SN, "appeal_type_name": S,
    "matter": SN,
    "matter_name": S, "subject": S, "dispatched_at": TS, "sign_due_at": TS, "due_at": TS,
    "signed_at": TS, "replied_at": TS, "returned_at": TS, "deadline": TS, "overdue": B,
    "light": LIGHT, "supervised": B, "extension_state": SN,
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "DirectoryDepartment": DEPARTMENT,
    "DepartmentCases": obj({
        "department": OBJ, "tab": S,
        "counts": obj({k: I for k in ("todo", "pending", "signed", "replied", "returned",
                                      "overdue")}),
        "cases": {"type": "array", "items": obj(ITEM)}}),
    "DepartmentCase": obj({
        **ITEM, "department": S, "accepted_at": TS, "caller": S, "caller_clear": B,
        "form": obj({"subject": S, "address": S, "content": S}),
        "dispatches": ARR, "others": ARR,
        "timeline": {"type": "array", "items": obj({"kind": S, "at": S, "own": B},
                                                   by=S, reason=S)},
        "actions": {"type": "array", "items": {
            "enum": ["sign", "return", "note", "reply", "extension"]}}}),
    "DepartmentToken": obj({"id": I, "department": S, "label": S, "hint": S,
                            "created_at": TS, "created_by": S, "revoked_at": TS,
                            "revoked_by": SN, "last_used_at": TS}),
}
CASES = ref("DepartmentCases")
CASE = ref("DepartmentCase")
API_ME = obj({"department": ref("DirectoryDepartment"), "token": obj({"id": I, "label": S})})
DIRECTORY = obj({"departments": {"type": "array", "items": ref("DirectoryDepartment")},
                 "levels": {"type": "array", "items": S},
                 "cities": {"type": "array", "items": obj({"id": S, "name": S})}})
SAVED = ok_and(department=ref("DirectoryDepartment"))
IMPORTED = ok_and(count=I, created=I, updated=I, dry_run=B)
DEFAULTS = obj({
    "defaults": {"type": "array", "items": obj({
        "matter": S, "matter_name": S, "city": SN, "department": S, "department_name": S})},
    "matters": {"type": "array", "items": obj({"code": S, "name": S})}})
USERS = obj({"users": {"type": "array", "items": obj({"user": S, "name": S,
                                                      "disabled": B})}})
TOKENS = obj({"tokens": {"type": "array", "items": ref("DepartmentToken")}})
ISSUED = ok_and(token=S, issued=ref("DepartmentToken"))
REVOKED = ok_and(revoked=ref("DepartmentToken"))
CSV_OK = {"description": "the directory as CSV (UTF-8 with BOM)",
          "content": {"text/csv": {"schema": {"type": "string"}}}}
BAD_TOKEN = {"description": "no API token, or one unknown, revoked or of a deactivated "
                            "department", "content": {"application/json": {
                                "schema": ref("Error")}},
             "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}}
RATE = {"description": "too many requests with this API token",
        "content": {"application/json": {"schema": ref("Error")}},
        "headers": {"Retry-After": {"required": True, "schema": {
            "type": "integer", "minimum": 1}}}}
