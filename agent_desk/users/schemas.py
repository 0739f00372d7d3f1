"""Sign-in and users: request bodies and answer schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictStr

from agent_desk.models import ROLES
from agent_desk.web.routes import OK, SN, B, Body, S, obj, ok_and, ref


class LoginBody(Body):
    username: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    password: Annotated[StrictStr, Field(min_length=1, max_length=256)]


class UserBody(Body):
    username: Annotated[StrictStr, Field(min_length=1, max_length=64,
                                         pattern=r"^[A-Za-z0-9_.-]+$")]
    password: Annotated[StrictStr, Field(min_length=8, max_length=256)]
    role: Literal["agent", "supervisor", "admin", "auditor", "department", "qa"]
    agent_id: Annotated[StrictStr, Field(pattern=r"^[0-9]{3,8}$")] | None = None
    # For role department: the 承办单位 (a department of the directory) they work for.
    department_id: Annotated[StrictStr, Field(min_length=1, max_length=32,
                                              pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    display_name: Annotated[StrictStr, Field(max_length=64)] = ""
    # A city of the configuration, or "province" (every city); omitted: unchanged.
    city: Annotated[StrictStr, Field(min_length=1, max_length=32)] | None = None


class UserStateBody(Body):
    disabled: bool


SCHEMAS: dict[str, dict[str, Any]] = {
    "Me": obj({"user": S, "role": {"enum": list(ROLES)}, "agent": SN, "csrf": S,
               "expires_at": {"type": "number"}, "see_numbers": B, "timezone": S},
              name=S, agent_name=S, city=S),
}
ME = ref("Me")
LOGOUT = OK
USERS_ADD = ok_and(user=S, role={"enum": list(ROLES)})
USER_STATE = ok_and(user=S, disabled=B)
# A locked-out sign-in.
TOO_MANY = {"description": "too many failed sign-ins",
            "content": {"application/json": {"schema": ref("Error")}},
            "headers": {"Retry-After": {"required": True, "schema": {
                "type": "integer", "minimum": 1}}}}
