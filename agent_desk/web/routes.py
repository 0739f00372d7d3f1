"""How a feature declares its HTTP routes, and what every route shares: the roles, the
request body's pydantic base, the query's checks, the parts of the OpenAPI description.

Each feature's ``http.py`` declares ``ROUTES`` (one ``Route`` per operation, with its roles,
body model, query parameters and answer schema) and a handler class whose method
``h_<route name>(request, session, body)`` serves it. The app (app.py) wraps every handler
with the session, role, CSRF, query and body checks; the same declarations make the OpenAPI
description (openapi.py), so what the description refuses the API refuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from agent_desk.audit import Actor
from agent_desk.web.auth import Session
from common.config import WebSection
from common.errors import DomainError

# Everyone who works on cases; auditors only read the audit log (minimum necessary).
ALL = ("agent", "supervisor", "admin")
# The staff of a 承办单位 (their department's cases only, agent_desk/access.py); its own
# system comes with an API token (Route.bearer, agent_desk/departments).
DEPARTMENT = ("department",)
SUPERVISORS = ("supervisor", "admin")
AUDITORS = ("admin", "auditor")
# Quality inspectors (质检): the sampled calls' cases, transcripts and recordings only
# (agent_desk/access.py), callers' numbers masked.
QA = ("qa",)
EVERYONE = (*ALL, "auditor", "department", *QA)  # sign out, who am I

Handler = Callable[[web.Request, Any, Any], Awaitable[web.StreamResponse]]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @classmethod
    def problems(cls, exc: ValidationError) -> str:
        """What is wrong with a body, for the 422 answer; each problem names its field (a
        public form's model says it in the citizen's words)."""
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                         for e in exc.errors())


# -- JSON Schema parts for the answers ---------------------------------------------------------

S: dict[str, Any] = {"type": "string"}
SN: dict[str, Any] = {"type": ["string", "null"]}
N: dict[str, Any] = {"type": ["number", "null"]}
I: dict[str, Any] = {"type": "integer"}  # noqa: E741
B: dict[str, Any] = {"type": "boolean"}
OBJ: dict[str, Any] = {"type": "object"}
ARR: dict[str, Any] = {"type": "array"}


def obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required),
            "properties": {**required, **optional}}


def ref(name: str) -> dict[str, Any]:
    """A component schema of any feature (openapi.py gathers them all)."""
    return {"$ref": f"#/components/schemas/{name}"}


def ok_and(**fields: Any) -> dict[str, Any]:
    return obj({"ok": {"const": True}, **fields})


OK = ref("Ok")
# What every feature may refer to.
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": obj({"error": S, "message": S}),
    "Ok": obj({"ok": {"const": True}}),
}

DATE: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                        "format": "date"}
# The query parameters' usual meaning; a route may override one (Route.query_spec).
QUERY: dict[str, dict[str, Any]] = {
    "number": {"type": "string", "maxLength": 32},
    "from": DATE, "to": DATE, "city": {"type": "string", "maxLength": 32},
    "status": {"enum": ["open", "closed"]},
    "limit": {"type": "integer", "minimum": 1, "maximum": 200},
    "offset": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
    "format": {"enum": ["csv", "json"]},
    "case": {"type": "string", "maxLength": 32}, "user": {"type": "string", "maxLength": 64},
}
PATH: dict[str, dict[str, Any]] = {
    "number": {"type": "string", "minLength": 1, "maxLength": 32},
    "name": {"type": "string", "minLength": 1, "maxLength": 255},
    "id": {"type": "string", "minLength": 1, "maxLength": 20},
    "agent": {"type": "string", "minLength": 1, "maxLength": 16},
    "user": {"type": "string", "minLength": 1, "maxLength": 64},
    "department": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,32}$"},
    "token": {"type": "string", "minLength": 1, "maxLength": 12},
    "seq": {"type": "string", "pattern": "^[0-9]{1,6}$"},  # a piece of an upload, from 0
}
# Request headers a route may read (Route.headers): a retry of a change with the same key
# changes nothing the second time.
HEADERS: dict[str, dict[str, Any]] = {
    "Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 100,
                        "pattern": "^[!-~]+$"},
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str  # the operation id; served by the handler's h_<name>
    roles: tuple[str, ...]  # () = no session needed
    summary: str
    body: type[Body] | None = None
    query: tuple[str, ...] = ()
    answer: dict[str, Any] = field(default_factory=lambda: dict(OBJ))  # the 200 JSON schema
    query_spec: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # The whole 200 response when it is not just JSON, and further documented answers.
    ok: dict[str, Any] | None = None
    more: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # This route's body limit in bytes when smaller than [web] max_body_bytes (0: that); for
    # an ``upload``, its limit whatever [web] says.
    max_body: int = 0
    # The content types of a body taken as it is, not JSON (the handler gets the bytes).
    upload: tuple[str, ...] = ()
    # Request headers the route requires, with their schema (documented and checked).
    headers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # Served to a program with an API token (Authorization: Bearer), which the handler
    # checks; documented as the "bearer" security scheme. ``roles`` is then ().
    bearer: bool = False
    # Optional request headers it reads, by name (HEADERS): Idempotency-Key.
    optional_headers: tuple[str, ...] = ()

    def spec_of(self, name: str) -> dict[str, Any]:
        return self.query_spec.get(name) or QUERY.get(name, S)


def query_problems(route: Route, query: Mapping[str, str]) -> list[str]:
    """The query checked against the description: every documented constraint is enforced."""
    problems = []
    for name in route.query:
        if name not in query:
            continue
        v = query[name]
        spec = route.spec_of(name)
        if "enum" in spec and v not in spec["enum"]:
            problems.append(f"{name}: one of {', '.join(map(str, spec['enum']))}")
        elif spec.get("type") == "integer":
            try:
                n = int(v)
            except ValueError:
                problems.append(f"{name}: a whole number")
                continue
            if not spec.get("minimum", n) <= n <= spec.get("maximum", n):
                problems.append(f"{name}: {spec.get('minimum')}-{spec.get('maximum')}")
        elif len(v) > spec.get("maxLength", 1 << 30):
            problems.append(f"{name}: at most {spec['maxLength']} characters")
        elif "pattern" in spec and not re.search(spec["pattern"], v):
            problems.append(f"{name}: not a valid value ({v[:40]!r})")
        elif spec.get("format") == "date":
            try:
                date.fromisoformat(v)
            except ValueError:
                problems.append(f"{name}: not a date (YYYY-MM-DD)")
    return problems


def header_problems(route: Route, headers: Mapping[str, str]) -> list[str]:
    """The route's headers: the required ones present, each within its description."""
    problems = []
    for name, spec in [*route.headers.items(),
                       *((h, HEADERS[h]) for h in route.optional_headers)]:
        v = headers.get(name)
        if v is None or not v.strip():
            if name in route.headers:
                problems.append(f"{name}: the header is required")
            continue
        if not spec.get("minLength", 0) <= len(v) <= spec.get("maxLength", 1 << 30):
            problems.append(f"{name}: {spec.get('minLength', 0)}-{spec.get('maxLength')} "
                            f"characters")
        elif "pattern" in spec and not re.search(spec["pattern"], v):
            problems.append(f"{name}: not a valid value")
    return problems


async def read_upload(request: web.Request, route: Route) -> bytes:
    """The raw body of an ``upload`` route: its content type, not empty, at most
    ``max_body`` bytes (read as it comes: the app's own limit is for JSON bodies)."""
    if request.content_type not in route.upload:
        raise DomainError("invalid", f"the body must be {' or '.join(route.upload)}")
    too_large = DomainError("too_large", f"the body is larger than {route.max_body} bytes")
    if request.content_length is not None and request.content_length > route.max_body:
        raise too_large
    data = bytearray()
    async for block in request.content.iter_chunked(1 << 16):
        data += block
        if len(data) > route.max_body:
            raise too_large
    if not data:
        raise DomainError("invalid", "the body is empty")
    return bytes(data)


async def read_body(request: web.Request, model: type[Body], max_bytes: int,
                    raw: bytes | None = None) -> Body:
    """The JSON body validated by ``model`` (400 not JSON, 413 too large, 422 invalid)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise DomainError("too_large", f"the body is larger than {max_bytes} bytes")
    if raw is None:
        raw = await request.read()
    if len(raw) > max_bytes:  # sent without a length (chunked)
        raise DomainError("too_large", f"the body is larger than {max_bytes} bytes")
    try:
        doc = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError("bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DomainError("bad_json", "the body must be a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise DomainError("invalid", model.problems(exc)) from None


# -- what handlers ask of the request ----------------------------------------------------------


def actor(sess: Session, request: web.Request) -> Actor:
    return Actor(sess.user, sess.role, request.remote or "")


def agent_of(sess: Session) -> str:
    if not sess.agent:
        raise DomainError("no_agent", "this user is not linked to an agent")
    return sess.agent


def sees_numbers(settings: WebSection, sess: Session) -> bool:
    return sess.role in settings.see_numbers


# What a spreadsheet reads as a formula (or a DDE call) at the start of a cell.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(v: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a leading
    apostrophe (OWASP's CSV injection advice); anything else as it is."""
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return v


def as_float(v: str | None) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None
