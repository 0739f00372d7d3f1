"""The hotline's side of the case loop (工单流转): request bodies and answer schemas."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictStr

from agent_desk.web.routes import SN, B, Body, I, S, obj, ref
from cases.loop.lists import LIGHTS
from cases.loop.models import LEVELS
from cases.loop.states import OPEN_STATES, STATES, Satisfaction

# Free text about a case (a reason, a note): personal data, encrypted by the store.
Text = Annotated[StrictStr, Field(max_length=2000)]
Id = Annotated[StrictStr, Field(min_length=1, max_length=32)]
ADDRESS_MAX = 256  # as long as the case form's address (agent_desk/cases/store.py)


class ClassifyBody(Body):
    """诉求类型 and 事项 (a leaf of the tree); the place: district and address (the address
    is kept as a keyed hash for repeat complaints and saved, encrypted, on the case form)."""

    appeal_type: Annotated[StrictStr, Field(min_length=1, max_length=16)]
    matter: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    district: Annotated[StrictStr, Field(max_length=32)] | None = None
    address: Annotated[StrictStr, Field(max_length=ADDRESS_MAX)] | None = None
    reason: Text = ""


class ReasonBody(Body):
    """An action whose only detail is why (finish_direct: what the caller was told; close;
    reopen: why the case is reopened; note: its text)."""

    reason: Text = ""


class DispatchBody(Body):
    """派单 / 改派: the 主办 department and any 协办 departments."""

    lead: Id
    assist: Annotated[list[Id], Field(max_length=20, default_factory=list)]
    reason: Text = ""  # instructions to the departments


class ReviewBody(Body):
    """审核 of the lead department's reply: accept, or send it back with a reason."""

    accept: StrictBool
    reason: Text = ""


class FollowUpBody(Body):
    """回访: what the caller said, as the agent entered it."""

    reached: StrictBool = True
    resolved: StrictBool | None = None
    satisfaction: Satisfaction | None = None
    reason: Text = ""


class MergeBody(Body):
    """并单: this case lives on in another one."""

    merge_into: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    reason: Text = ""


class ExtensionDecisionBody(Body):
    """延期审批: the supervisor grants or refuses the extension asked for."""

    accept: StrictBool
    reason: Text = ""


LIGHT = {"enum": list(LIGHTS)}
STATE = {"enum": list(STATES)}
DEPARTMENT = obj({"id": S, "name": S, "level": {"enum": list(LEVELS)}, "city": SN,
                  "parent": SN, "unit": S})
MATTER: dict[str, Any] = {"type": "object", "required": ["code", "name", "children"],
                          "properties": {"code": S, "name": S, "children": {
                              "type": "array", "items": {"$ref": "#/components/schemas/"
                                                                 "MatterNode"}}}}
DISPATCH = obj({
    "department": S, "department_name": S, "round": I, "role": {"enum": ["lead", "assist"]},
    "state": S, "dispatched_at": SN, "sign_due_at": SN, "signed_at": SN, "due_at": SN,
    "returned_at": SN, "return_reason": S, "replied_at": SN, "reply": S,
    "contacted_caller": {"type": ["boolean", "null"]},
    "extension": obj({"state": SN, "days": I, "granted_days": I, "reason": S})})
FACT = obj({"kind": S, "at": S}, by=S, role=S, to=S, reason=S)
CLASSIFIED = {"appeal_type": SN, "appeal_type_name": S, "matter": SN, "matter_name": S}
SCHEMAS: dict[str, dict[str, Any]] = {
    "MatterNode": MATTER,
    "Department": DEPARTMENT,
    "CaseLoop": obj({
        "number": S, "state": STATE, "channel": S, "city": SN, "district": SN,
        "district_name": S, "districts": {"type": "array", "items": obj({"id": S, "name": S})},
        **CLASSIFIED, "round": I, "lead_department": SN, "lead_department_name": S,
        "light": LIGHT, "supervised": B, "sign_due_at": SN, "due_at": SN,
        "reopen_count": I, "return_count": I,
        "followup": obj({"resolved": {"type": ["boolean", "null"]}, "satisfaction": SN,
                         "at": SN}),
        "closed_at": SN, "closed_how": SN, "version": I,
        "dispatches": {"type": "array", "items": DISPATCH},
        "supervision": {"type": "array", "items": obj({
            "kind": S, "department": S, "opened_at": SN, "closed_at": SN})},
        "timeline": {"type": "array", "items": FACT}}),
}

TAXONOMY = obj({
    "appeal_types": {"type": "array", "items": obj({"code": S, "name": S})},
    "matters": {"type": "array", "items": ref("MatterNode")}})
DEPARTMENTS = obj({"departments": {"type": "array", "items": ref("Department")}})
LOOP = ref("CaseLoop")
SUGGESTION = obj({
    "number": S, "matter": SN, "matter_name": S, "city": SN, "department": SN,
    "department_name": S,
    "repeats": {"type": "array", "items": obj({"case": S, "reason": S})}})
SUPERVISION_CASE = obj({
    "number": S, "city": SN, "district": SN, "state": STATE, "channel": S, **CLASSIFIED,
    "lead_department": SN, "lead_department_name": S, "light": LIGHT, "supervised": B,
    "round": I, "reopen_count": I, "return_count": I, "accepted_at": SN,
    "dispatched_at": SN, "sign_due_at": SN, "due_at": SN})
SUPERVISION = obj({
    "total": I,
    "cases": {"type": "array", "items": SUPERVISION_CASE},
    "extensions": {"type": "array", "items": obj({
        "number": S, "city": SN, **CLASSIFIED, "department": S, "department_name": S,
        "role": S, "days": I, "reason": S, "due_at": SN, "asked_at": SN})},
    "replies": {"type": "array", "items": obj({
        "number": S, "city": SN, **CLASSIFIED, "department": S, "department_name": S,
        "reply": S, "contacted_caller": {"type": ["boolean", "null"]}, "replied_at": SN,
        "replied_by": S})}})

SUPERVISION_QUERY: dict[str, dict[str, Any]] = {
    "light": LIGHT, "supervised": {"enum": ["true", "false"]},
    "department": {"type": "string", "maxLength": 32},
    "state": {"enum": list(OPEN_STATES)},
}
