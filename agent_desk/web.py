"""The web app: agent console, supervisor wallboard and their HTTP/WebSocket API (aiohttp).

Built from the service's collaborators (``build_app(service)``), so the same app runs inside
``hotline serve`` and alone in tests. Every API route is declared once in ``ROUTES`` with the
roles that may call it and the pydantic model of its body; the same table produces the
OpenAPI description at ``/api/openapi.json``. See docs/console.md.

Errors are JSON ``{"error": <code>, "message": <words>}`` with a 4xx status: 400 bad JSON,
401 not signed in / session expired, 403 wrong role or missing CSRF token, 404 unknown id,
409 an action that does not fit the call or agent now, 413 body too large, 422 invalid
fields, 429 too many logins. A request that fails validation changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from sqlalchemy import select

from agent_desk import metrics
from agent_desk.audit import ACTIONS, Actor, Audit
from agent_desk.auth import COOKIE, LoginLimiter, Session, Sessions, Users
from agent_desk.models import CATEGORIES, ROLES
from agent_desk.presence.services import PAUSE_REASONS, AgentPresence, PresenceError
from agent_desk.store import EXPORT_COLUMNS, FORM_FIELDS, Conflict, ConsoleStore, NotFound
from agent_desk.supervision.wallboard import Client, Wallboard
from cases.models import Case
from common.facts import CallFact
from common.privacy import scrub
from telephony.transfers.services import TransferError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# Everyone who works on cases; auditors only read the audit log (minimum necessary).
ALL = ("agent", "supervisor", "admin")
SUPERVISORS = ("supervisor", "admin")
AUDITORS = ("admin", "auditor")
EVERYONE = (*ALL, "auditor")


CONSOLE_KEY: web.AppKey[ConsoleApp] = web.AppKey("console")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


# -- request bodies ---------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(Body):
    username: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    password: Annotated[StrictStr, Field(min_length=1, max_length=256)]


class PauseBody(Body):
    reason: Literal["rest", "training", "after_call_work", "meeting", "supervisor"]


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


class TransferBody(Body):
    action: Literal["consult", "three_way", "leave", "cancel", "emergency"]
    destination: Annotated[StrictStr, Field(max_length=32)] | None = None


class AgentPauseBody(Body):
    paused: StrictBool
    reason: Literal["rest", "training", "after_call_work", "meeting", "supervisor"] = \
        "supervisor"


class SkillsBody(Body):
    skills: dict[Annotated[str, Field(max_length=32)], StrictInt]


class CallbackOutcomeBody(Body):
    outcome: Literal["reached", "no_answer", "busy", "wrong_number", "cancelled"]
    note: Annotated[StrictStr, Field(max_length=200)] = ""


class UserBody(Body):
    username: Annotated[StrictStr, Field(min_length=1, max_length=64,
                                         pattern=r"^[A-Za-z0-9_.-]+$")]
    password: Annotated[StrictStr, Field(min_length=8, max_length=256)]
    role: Literal["agent", "supervisor", "admin", "auditor"]
    agent_id: Annotated[StrictStr, Field(pattern=r"^[0-9]{3,8}$")] | None = None
    display_name: Annotated[StrictStr, Field(max_length=64)] = ""


class SurgeProposalBody(Body):
    target: Annotated[StrictStr, Field(min_length=1, max_length=64)]


class SurgeApplyBody(Body):
    proposal_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]


class SurgeReturnBody(Body):
    agent_ids: Annotated[list[Annotated[StrictStr, Field(pattern=r"^[0-9]{3,8}$")]],
                         Field(min_length=1, max_length=200)]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str
    roles: tuple[str, ...]  # () = no session needed
    summary: str
    body: type[Body] | None = None
    query: tuple[str, ...] = ()


# -- the OpenAPI description's parts (what each answer holds) --------------------------------

_S = {"type": "string"}
_SN = {"type": ["string", "null"]}
_N = {"type": ["number", "null"]}
_I = {"type": "integer"}
_B = {"type": "boolean"}
_OBJ = {"type": "object"}
_ARR = {"type": "array"}


def _obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required),
            "properties": {**required, **optional}}


SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _obj({"error": _S, "message": _S}),
    "Ok": _obj({"ok": {"const": True}}),
    "Me": _obj({"user": _S, "role": {"enum": list(ROLES)}, "agent": _SN, "csrf": _S,
                "expires_at": {"type": "number"}, "see_numbers": _B},
               name=_S, agent_name=_S, city=_S),
    "CaseSummary": _obj({"number": _S, "call_id": _SN, "caller": _S, "city": _SN,
                         "dialed_number": _SN, "queue": _SN, "agent_id": _SN,
                         "route_reasons": _SN, "priority": _I, "flags": _ARR,
                         "outcome": _SN, "call_state": _S,
                         "status": {"enum": ["open", "closed"]}, "created_at": _SN,
                         "answered_at": _SN, "ended_at": _SN, "wait_seconds": _N,
                         "talk_seconds": _N, "closed_at": _SN,
                         "category": {"enum": [*CATEGORIES, None]}, "subject": _S}),
    "Form": _obj({"category": {"enum": [*CATEGORIES, None]}, "subject": _S, "address": _S,
                  "content": _S, "department": _S, "version": _I, "updated_by": _S,
                  "updated_at": _SN}),
    "Task": _obj({"id": _I, "status": {"enum": ["pending", "calling", "done", "failed",
                                                "cancelled"]},
                  "attempts": _I, "max_attempts": _I, "outcome": _SN, "city": _SN,
                  "queue": _SN, "log": _ARR, "created_at": _SN}, case=_S, caller=_S),
}
SCHEMAS["CaseDetail"] = {"allOf": [{"$ref": "#/components/schemas/CaseSummary"}, _obj({
    "form": {"$ref": "#/components/schemas/Form"}, "timeline": _ARR, "legs": _ARR,
    "transfers": _ARR, "callback": {"oneOf": [{"$ref": "#/components/schemas/Task"},
                                              {"type": "null"}]},
    "earlier": _ARR, "links": _ARR})]}
_REF = {k: {"$ref": f"#/components/schemas/{k}"} for k in SCHEMAS}
_OK_AND = lambda **kw: _obj({"ok": {"const": True}, **kw})  # noqa: E731

RESPONSES: dict[str, dict[str, Any]] = {
    "login": _REF["Me"], "me": _REF["Me"], "logout": _REF["Ok"],
    "console_state": _obj({"agent": _S, "signed_in": _B, "state": _SN, "reason": _S,
                           "since": _N, "call": {"type": ["object", "null"]},
                           "case": {"type": ["object", "null"]}, "now": {"type": "number"}}),
    "console_signin": _OK_AND(signed_in=_B, changes=_I),
    "console_signout": _OK_AND(signed_in=_B, changes=_I),
    "console_ready": _REF["Ok"], "console_pause": _REF["Ok"], "console_wrapup": _REF["Ok"],
    "console_answer": _OK_AND(sent=_S, id=_S), "console_hold": _OK_AND(sent=_S, id=_S),
    "console_unhold": _OK_AND(sent=_S, id=_S), "console_hangup": _OK_AND(channels=_I),
    "console_transfer": _OK_AND(leg=_OBJ),
    "destinations": _obj({"destinations": {"type": "array", "items": _obj({
        "id": _S, "name": _S, "number": _S, "kind": _S, "category": _S})}}),
    "cases": _obj({"total": _I, "cases": {"type": "array", "items": _REF["CaseSummary"]}}),
    "export_cases": _obj({"export": _S, "clear": _B, "cases": {"type": "array", "items": _OBJ}}),
    "audit": _obj({"total": _I, "entries": {"type": "array", "items": _obj({
        "id": _I, "at": _S, "user": _S, "role": _S, "action": _S, "case": _SN,
        "address": _S, "detail": _OBJ})}}),
    "case": _REF["CaseDetail"],
    "case_form": _OK_AND(form=_REF["Form"]),
    "case_close": _OK_AND(status={"const": "closed"}),
    "case_transcript": _obj({"status": _S, "error": _SN, "segments": {
        "type": "array", "items": _obj({"speaker": _S, "start": {"type": "number"},
                                        "end": {"type": "number"}, "text": _S})},
        "recordings": {"type": "array", "items": _obj({"side": _S, "url_name": _S,
                                                       "url": _S, "deleted_at": _SN})}}),
    "callbacks": _obj({"callbacks": {"type": "array", "items": _REF["Task"]}}),
    "callback_call": _OK_AND(task=_REF["Task"]),
    "callback_outcome": _OK_AND(task=_REF["Task"]),
    "wallboard": _obj({"type": {"const": "snapshot"}, "seq": _I}),
    "agents": _obj({"agents": {"type": "array", "items": _obj({"agent": _S})},
                    "skills": _OBJ}),
    "agent_pause": _OK_AND(agent=_S, paused=_B),
    "agent_skills": _OK_AND(agent=_S, before=_OBJ, after=_OBJ),
    "users_add": _OK_AND(user=_S, role={"enum": list(ROLES)}),
    "surge_moves": _obj({"moves": _ARR}),
}

_DATE = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "format": "date"}
# The audit log's times: a day, or a day and time (local time unless an offset is given).
_TIME = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
                                      r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                                      r"(Z|[+-][0-9]{2}:[0-9]{2})?)?$"}
QUERY: dict[str, dict[str, Any]] = {
    "number": {"type": "string", "maxLength": 32},
    "from": _DATE, "to": _DATE, "city": {"type": "string", "maxLength": 32},
    "category": {"enum": list(CATEGORIES)}, "status": {"enum": ["open", "closed"]},
    "limit": {"type": "integer", "minimum": 1, "maximum": 200},
    "offset": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
    "format": {"enum": ["csv", "json"]},
    "case": {"type": "string", "maxLength": 32}, "user": {"type": "string", "maxLength": 64},
}
# Per route where a parameter means something else.
QUERY_OF: dict[str, dict[str, dict[str, Any]]] = {
    "audit": {"from": _TIME, "to": _TIME,
              "action": {"enum": list(ACTIONS)},
              "limit": {"type": "integer", "minimum": 1, "maximum": 1000}},
    "callbacks": {"status": {"enum": ["pending", "calling", "done", "failed", "cancelled"]}},
    "surge_moves": {"limit": {"type": "integer", "minimum": 1, "maximum": 1000}},
}


def query_problems(route: str, names: tuple[str, ...], query: Any) -> list[str]:
    """The query checked against the description (the same table): every documented
    constraint is enforced, so what the description refuses the API refuses (422)."""
    import re

    problems = []
    for name in names:
        if name not in query:
            continue
        v = query[name]
        spec = QUERY_OF.get(route, {}).get(name) or QUERY.get(name, _S)
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
        else:
            if len(v) > spec.get("maxLength", 1 << 30):
                problems.append(f"{name}: at most {spec['maxLength']} characters")
            elif "pattern" in spec and not re.search(spec["pattern"], v):
                problems.append(f"{name}: not a valid value ({v[:40]!r})")
            elif spec.get("format") == "date":
                try:
                    date.fromisoformat(v)
                except ValueError:
                    problems.append(f"{name}: not a date (YYYY-MM-DD)")
    return problems


PATH: dict[str, dict[str, Any]] = {
    "number": {"type": "string", "minLength": 1, "maxLength": 32},
    "name": {"type": "string", "minLength": 1, "maxLength": 255},
    "id": {"type": "string", "minLength": 1, "maxLength": 20},
    "agent": {"type": "string", "minLength": 1, "maxLength": 16},
}


ROUTES: list[Route] = [
    Route("POST", "/api/login", "login", (), "Sign in; sets the session cookie", LoginBody),
    Route("POST", "/api/logout", "logout", EVERYONE, "Sign out"),
    Route("GET", "/api/me", "me", EVERYONE, "The signed-in user and the CSRF token"),
    Route("GET", "/api/console/state", "console_state", ("agent",),
          "The agent's state, signed-in flag and current call with its case (screen pop)"),
    Route("POST", "/api/console/signin", "console_signin", ("agent",), "签入: join the queues"),
    Route("POST", "/api/console/signout", "console_signout", ("agent",),
          "签出: leave the queues"),
    Route("POST", "/api/console/ready", "console_ready", ("agent",), "示闲: ready for calls"),
    Route("POST", "/api/console/pause", "console_pause", ("agent",), "示忙 with a reason",
          PauseBody),
    Route("POST", "/api/console/wrapup", "console_wrapup", ("agent",),
          "After-call work (paused until ready)"),
    Route("POST", "/api/console/answer", "console_answer", ("agent",),
          "Answer the ringing call at the agent's softphone"),
    Route("POST", "/api/console/hold", "console_hold", ("agent",), "Hold (softphone)"),
    Route("POST", "/api/console/unhold", "console_unhold", ("agent",), "Unhold (softphone)"),
    Route("POST", "/api/console/hangup", "console_hangup", ("agent",),
          "Hang up the agent's call (AMI)"),
    Route("POST", "/api/console/transfer", "console_transfer", ("agent",),
          "Transfer panel: consult / three_way / leave / cancel / emergency", TransferBody),
    Route("GET", "/api/console/destinations", "destinations", ALL,
          "Branch centers and emergency lines"),
    Route("GET", "/api/cases", "cases", ALL, "Search cases",
          query=("number", "from", "to", "city", "category", "status", "limit", "offset")),
    Route("GET", "/api/export/cases", "export_cases", SUPERVISORS,
          "Export cases (CSV or JSON), callers masked unless the role sees numbers; every "
          "exported case is audited",
          query=("format", "from", "to", "city", "category", "status")),
    Route("GET", "/api/audit", "audit", AUDITORS,
          "The audit log: who viewed, exported or changed which case (reading it is "
          "audited too)", query=("case", "user", "action", "from", "to", "limit", "offset")),
    Route("GET", "/api/cases/{number}", "case", ALL,
          "A case: timeline, transfers, form, callback, repeat-caller links"),
    Route("PUT", "/api/cases/{number}/form", "case_form", ("agent", "supervisor"),
          "Save the case form (during or after the call)", FormBody),
    Route("POST", "/api/cases/{number}/close", "case_close", ("agent", "supervisor"),
          "办结: finish the work on the case"),
    Route("GET", "/api/cases/{number}/transcript", "case_transcript", ALL,
          "Transcript and recordings of the case"),
    Route("GET", "/api/recordings/{number}/{name}", "recording", ALL,
          "A recording file of the case"),
    Route("GET", "/api/callbacks", "callbacks", ALL, "Missed-call callback tasks",
          query=("status", "city")),
    Route("POST", "/api/callbacks/{id}/call", "callback_call", ("agent",),
          "Call the caller back from the agent's softphone (Originate)"),
    Route("POST", "/api/callbacks/{id}/outcome", "callback_outcome", ("agent", "supervisor"),
          "Record the outcome of the callback attempt", CallbackOutcomeBody),
    Route("GET", "/api/wallboard", "wallboard", SUPERVISORS, "The wallboard's full state"),
    Route("GET", "/api/agents", "agents", SUPERVISORS, "Agents with state and skills"),
    Route("POST", "/api/agents/{agent}/pause", "agent_pause", SUPERVISORS,
          "Pause or unpause an agent", AgentPauseBody),
    Route("PUT", "/api/agents/{agent}/skills", "agent_skills", SUPERVISORS,
          "Change an agent's skills and levels (applied live)", SkillsBody),
    Route("POST", "/api/users", "users_add", ("admin",), "Create or reset a user", UserBody),
    Route("GET", "/api/surge", "surge", SUPERVISORS, "Surge status (when available)"),
    Route("POST", "/api/surge/proposal", "surge_proposal", SUPERVISORS,
          "Propose agents to lend to a city or queue", SurgeProposalBody),
    Route("POST", "/api/surge/apply", "surge_apply", SUPERVISORS, "Apply a proposal",
          SurgeApplyBody),
    Route("POST", "/api/surge/return", "surge_return", SUPERVISORS,
          "Return borrowed agents home", SurgeReturnBody),
    Route("GET", "/api/surge/moves", "surge_moves", SUPERVISORS, "Audit of agent moves",
          query=("limit",)),
]


def openapi() -> dict[str, Any]:
    """The API as OpenAPI 3.1, from ROUTES: roles (``x-roles``), parameters with the values the
    handlers accept, bodies from the pydantic models, and each answer's schema. Schemathesis
    exercises every route from it (tests/test_api_fuzz.py)."""
    error = {"description": "error", "content": {"application/json": {
        "schema": _REF["Error"]}}}
    paths: dict[str, Any] = {}
    for r in ROUTES:
        schema = RESPONSES.get(r.name, _OBJ)
        ok: dict[str, Any] = {"description": "OK", "content": {"application/json": {
            "schema": schema}}}
        if r.name == "recording":
            ok = {"description": "the recording (WAV)", "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("audio/wav", "audio/x-wav", "application/octet-stream")}}
        elif r.name == "export_cases":
            ok["content"]["text/csv"] = {"schema": {"type": "string"}}
        responses: dict[str, Any] = {"200": ok, "4XX": error}
        if r.name == "login":
            responses["429"] = {**error, "description": "too many failed sign-ins",
                                "headers": {"Retry-After": {"required": True, "schema": {
                                    "type": "integer", "minimum": 1}}}}
        op: dict[str, Any] = {
            "operationId": r.name, "summary": r.summary,
            "x-roles": list(r.roles) or ["anyone"], "responses": responses,
        }
        params = [{"name": p.strip("{}"), "in": "path", "required": True,
                   "schema": PATH.get(p.strip("{}"), {"type": "string"})}
                  for p in r.path.split("/") if p.startswith("{")]
        params += [{"name": q, "in": "query", "required": False,
                    "schema": QUERY_OF.get(r.name, {}).get(q) or QUERY.get(q, _S)}
                   for q in r.query]
        if params:
            op["parameters"] = params
        if r.roles:
            op["security"] = [{"session": []}] if r.method == "GET" else [
                {"session": [], "csrf": []}]
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": r.body.model_json_schema()}}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    paths["/api/ws"] = {"get": {"operationId": "ws", "summary":
                                "WebSocket: wallboard updates (supervisors) or the agent's own "
                                "events (agents)", "x-roles": list(ALL),
                                "security": [{"session": []}],
                                "responses": {"101": {"description": "switching protocols"},
                                              "4XX": error}}}
    paths["/api/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "This description", "x-roles": ["anyone"],
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": _obj({"openapi": _S, "paths": _OBJ})}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "12345 hotline console API", "version": "1.1",
                 "description": "Errors are JSON {error, message} with a 4xx status; see "
                                "docs/console.md and docs/security.md."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": COOKIE,
                            "description": "the signed session cookie from POST /api/login"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "state changes: the csrf value of GET /api/me"}},
            "schemas": SCHEMAS,
        },
    }


# -- the app ----------------------------------------------------------------------------------


class ConsoleApp:
    def __init__(self, service: Any):
        self.service = service
        self.cfg = service.cfg
        self.web = service.cfg.web
        self.sessions = Sessions(service.cfg.session_secret, self.web.session_ttl_s)
        sm = service.store.sessions
        self.users = Users(sm)
        self.store = ConsoleStore(sm, service.personal, service.cfg.service.timezone)
        self.limiter = LoginLimiter(service.redis, service.cfg.redis.prefix,
                                    self.web.login_attempts, self.web.login_window_s,
                                    self.web.login_attempts_per_address)
        self.audit = Audit(sm)
        # Screen pops already audited, per (session, case): the page reloads the state on
        # every event of the call; one entry per session and case says it all.
        self._popped: dict[tuple[str, str], float] = {}
        self.presence: AgentPresence = service.presence
        self.board = Wallboard(service.cfg, service.redis, service.cfg.redis.prefix, sm,
                               service_level_s=self.web.service_level_s)
        self.prefix = service.cfg.redis.prefix
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self.board.start()

    async def stop(self) -> None:
        await self.board.stop()
        for t in list(self._tasks):
            t.cancel()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- plumbing ---------------------------------------------------------------------------

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._errors],
                              client_max_size=self.web.max_body_bytes)
        for r in ROUTES:
            # A recording's url_name may hold folders ("2026/11/22/<case>-mix.wav").
            app.router.add_route(r.method, r.path.replace("{name}", "{name:.+}"), self._wrap(r))
        app.router.add_get("/api/openapi.json", self.h_openapi)
        app.router.add_get("/metrics", self.h_metrics)
        app.router.add_get("/api/ws", self.h_ws)
        app.router.add_get("/", self.h_index)
        for page in ("login", "console", "wallboard", "cases"):
            app.router.add_get(f"/{page}", self._page(page))
        app.router.add_static("/static", STATIC, show_index=False)
        app.on_startup.append(lambda _app: self.start())
        app.on_cleanup.append(lambda _app: self.stop())
        app[CONSOLE_KEY] = self
        return app

    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except ApiError as exc:
            return web.json_response({"error": exc.code, "message": exc.message},
                                     status=exc.status, headers=exc.headers)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": "too_large", "message":
                                      f"the body is larger than {self.web.max_body_bytes} "
                                      "bytes"}, status=413)
        except web.HTTPException as exc:
            if not request.path.startswith("/api/") or exc.status < 400:
                raise
            keep = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
            return web.json_response({"error": exc.reason.lower().replace(" ", "_"),
                                      "message": exc.text or exc.reason}, status=exc.status,
                                     headers=keep)
        except Exception:
            log.exception("console request failed", extra={"path": request.path})
            return web.json_response({"error": "internal", "message":
                                      "internal error (logged)"}, status=500)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    async def session_of(self, request: web.Request) -> Session:
        sess, why = self.sessions.read(request.cookies.get(COOKIE))
        if sess is None:
            if why == "expired":
                raise ApiError(401, "session_expired", "your session has expired; sign in "
                                                       "again")
            raise ApiError(401, "not_signed_in", "sign in first")
        # Signed out sessions stay refused until they would have expired (a copied cookie).
        if await self.service.redis.exists(self._revoked_key(sess)):
            raise ApiError(401, "not_signed_in", "this session was signed out; sign in again")
        return sess

    def _revoked_key(self, sess: Session) -> str:
        return f"{self.prefix}:web:revoked:{sess.sid}"

    def _wrap(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        handler = getattr(self, f"h_{route.name}")

        async def wrapped(request: web.Request) -> web.StreamResponse:
            sess: Session | None = None
            if route.roles:
                sess = await self.session_of(request)
                if sess.role not in route.roles:
                    raise ApiError(403, "forbidden", f"role {sess.role} may not do this "
                                                     f"({', '.join(route.roles)} only)")
                if route.method != "GET" and not self.sessions.check_csrf(
                        sess, request.headers.get("X-CSRF-Token")):
                    raise ApiError(403, "csrf", "missing or wrong X-CSRF-Token header")
            if route.query and (problems := query_problems(route.name, route.query,
                                                            request.query)):
                raise ApiError(422, "invalid", "query: " + "; ".join(problems))
            body = None
            if route.body is not None:
                body = await self._body(request, route.body)
            elif route.method != "GET" and request.can_read_body:
                # No body expected: still enforce the size limit and reject garbage.
                raw = await request.read()
                if raw.strip() not in (b"", b"{}", b"null"):
                    await self._body(request, Body, raw)
            return await handler(request, sess, body)  # type: ignore[no-any-return]

        return wrapped

    async def _body(self, request: web.Request, model: type[Body], raw: bytes | None = None
                    ) -> Body:
        if request.content_length is not None and request.content_length > \
                self.web.max_body_bytes:
            raise ApiError(413, "too_large",
                           f"the body is larger than {self.web.max_body_bytes} bytes")
        if raw is None:
            raw = await request.read()
        try:
            doc = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "bad_json", "the body must be a JSON object")
        try:
            return model.model_validate(doc)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors())
            raise ApiError(422, "invalid", problems) from None

    def clear_numbers(self, sess: Session) -> bool:
        return sess.role in self.web.see_numbers

    @staticmethod
    def actor(sess: Session, request: web.Request) -> Actor:
        return Actor(sess.user, sess.role, request.remote or "")

    def _agent(self, sess: Session | None) -> str:
        assert sess is not None
        if not sess.agent:
            raise ApiError(409, "no_agent", "this user is not linked to an agent")
        return sess.agent

    # -- pages ------------------------------------------------------------------------------

    async def h_index(self, request: web.Request) -> web.StreamResponse:
        sess, _ = self.sessions.read(request.cookies.get(COOKIE))
        if sess is None:
            raise web.HTTPFound("/login")
        raise web.HTTPFound({"agent": "/console", "auditor": "/api/audit"}.get(
            sess.role, "/wallboard"))

    def _page(self, name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def page(request: web.Request) -> web.StreamResponse:
            if name != "login":
                sess, _ = self.sessions.read(request.cookies.get(COOKIE))
                if sess is None:
                    raise web.HTTPFound("/login")
            resp = web.FileResponse(STATIC / f"{name}.html")
            resp.headers["Content-Security-Policy"] = (
                "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self'; "
                "style-src 'self' 'unsafe-inline'")
            resp.headers["X-Frame-Options"] = "DENY"
            return resp
        return page

    async def h_openapi(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(openapi())

    async def h_metrics(self, request: web.Request) -> web.StreamResponse:
        """Prometheus scrape (agent_desk/metrics.py): loopback, or the metrics token."""
        if not metrics.allowed(request.remote, request.headers.get("Authorization"),
                               os.environ.get("HOTLINE_METRICS_TOKEN")):
            raise ApiError(403, "forbidden", "metrics are served to the loopback or with "
                                             "the bearer token in HOTLINE_METRICS_TOKEN")
        return web.Response(text=await metrics.exposition(self.service, self.board),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    # -- sign in ----------------------------------------------------------------------------

    async def h_login(self, request: web.Request, sess: None, body: LoginBody
                      ) -> web.StreamResponse:
        address = request.remote or "?"
        wait = await self.limiter.blocked(body.username, address)
        if wait:
            raise ApiError(429, "too_many_attempts",
                           f"too many failed sign-ins; try again in {wait} s",
                           headers={"Retry-After": str(wait)})
        user = await self.users.authenticate(body.username, body.password)
        if user is None:
            await self.limiter.failed(body.username, address)
            log.info("console sign-in failed", extra={"address": address})
            raise ApiError(401, "bad_credentials", "wrong username or password")
        await self.limiter.succeeded(body.username, address)
        cookie, new = self.sessions.issue(user)
        resp = web.json_response(self._me(new, user.display_name))
        resp.set_cookie(COOKIE, cookie, max_age=self.web.session_ttl_s, httponly=True,
                        samesite="Strict", secure=self.web.secure_cookies, path="/")
        log.info("console sign-in", extra={"user": user.username, "role": user.role})
        return resp

    def _me(self, sess: Session, name: str = "") -> dict[str, Any]:
        out = {"user": sess.user, "role": sess.role, "agent": sess.agent,
               "csrf": self.sessions.csrf(sess), "expires_at": sess.exp,
               "see_numbers": sess.role in self.web.see_numbers}
        if name:
            out["name"] = name
        if sess.agent:
            with contextlib.suppress(KeyError):
                a = self.cfg.agent(sess.agent)
                out.update(agent_name=a.name, city=a.city)
        return out

    async def h_logout(self, request: web.Request, sess: Session, body: None
                       ) -> web.StreamResponse:
        ttl = int(sess.exp - time.time()) + 1
        if ttl > 0:
            await self.service.redis.set(self._revoked_key(sess), "1", ex=ttl)
        resp = web.json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def h_me(self, request: web.Request, sess: Session, body: None) -> web.StreamResponse:
        return web.json_response(self._me(sess))

    # -- the agent's console ----------------------------------------------------------------

    def current_call(self, agent: str) -> tuple[str, dict[str, Any]] | None:
        calls = [(cid, c) for cid, c in self.board.calls.items() if c.get("agent") == agent]
        return calls[-1] if calls else None

    async def h_console_state(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        agent = self._agent(sess)
        live = await self.service.live.agent(agent)
        out: dict[str, Any] = {
            "agent": agent, "signed_in": self.presence.is_signed_in(agent),
            "state": self.board.agents.get(agent, {}).get("state", live.get("state")),
            "reason": live.get("reason", ""), "since": float(live.get("since") or 0) or None,
            "call": None, "case": None, "now": time.time()}
        cur = self.current_call(agent)
        if cur is not None:
            call_id, c = cur
            hot = await self.service.live.call(call_id)
            out["call"] = {"call_id": call_id, "queue": c.get("queue"),
                           "state": hot.get("state"), "answered_at": _f(hot.get("talking_at")),
                           "ringing_at": _f(hot.get("ringing_at")),
                           "legs": [leg.snapshot() for leg in
                                    self.service.callcontrol.legs(call_id)]}
            number = hot.get("case") or self.service.store.cached_number(call_id)
            case = await self._case_by(number=number, call_id=call_id)
            if case is not None:
                out["case"] = await self._screen_pop(case, sess)
                await self._audit_pop(request, sess, case.number)
        return web.json_response(out)

    async def _audit_pop(self, request: web.Request, sess: Session, number: str) -> None:
        key = (sess.sid, number)
        if key in self._popped:
            return
        await self.audit.record(self.actor(sess, request), "case.screen_pop", number)
        self._popped[key] = time.time()
        if len(self._popped) > 20_000:  # forget the oldest half
            for k in sorted(self._popped, key=self._popped.__getitem__)[:10_000]:
                del self._popped[k]

    async def _case_by(self, *, number: str | None, call_id: str | None) -> Case | None:
        async with self.service.store.sessions() as s:
            if number:
                c = (await s.execute(select(Case).where(Case.number == number))
                     ).scalar_one_or_none()
                if c is not None:
                    return c
            if call_id:
                return (await s.execute(select(Case).where(Case.call_id == call_id))
                        ).scalar_one_or_none()
        return None

    async def _screen_pop(self, case: Case, sess: Session) -> dict[str, Any]:
        detail = await self.store.detail(case.number, clear=self.clear_numbers(sess))
        detail["earlier"] = await self._earlier(case)
        detail["links"] = [{"case": n, "reason": r}
                           for n, r in await self.service.store.links(case.number)]
        detail.pop("timeline", None)
        return detail

    async def _earlier(self, case: Case) -> list[dict[str, Any]]:
        if not case.caller_hash:
            return []
        async with self.service.store.sessions() as s:
            rows = (await s.execute(select(Case).where(
                Case.caller_hash == case.caller_hash, Case.id != case.id
            ).order_by(Case.id.desc()).limit(5))).scalars().all()
        return [{"case": c.number, "created_at": c.created_at.isoformat(),
                 "status": "closed" if c.closed_at else "open", "outcome": c.outcome}
                for c in rows]

    async def h_console_signin(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        agent = self._agent(sess)
        changes = await self.presence.sign_in(agent, by=sess.user)
        return web.json_response({"ok": True, "signed_in": True, "changes": changes})

    async def h_console_signout(self, request: web.Request, sess: Session, body: None
                                ) -> web.StreamResponse:
        agent = self._agent(sess)
        if self.current_call(agent) is not None:
            raise ApiError(409, "on_call", "finish the call before signing out")
        changes = await self.presence.sign_out(agent, by=sess.user)
        return web.json_response({"ok": True, "signed_in": False, "changes": changes})

    async def _pause(self, agent: str, paused: bool, reason: str, by: str) -> None:
        try:
            await self.presence.pause(agent, paused, reason=reason, by=by)
        except PresenceError as exc:
            raise ApiError(409, exc.code, exc.message) from None
        except KeyError:
            raise ApiError(404, "unknown_agent", f"no agent {agent}") from None
        except Exception as exc:  # AMI refused (e.g. the agent left every queue)
            raise ApiError(409, "unavailable", f"Asterisk refused: {exc}") from None

    async def h_console_ready(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        await self._pause(self._agent(sess), False, "", sess.user)
        return web.json_response({"ok": True})

    async def h_console_pause(self, request: web.Request, sess: Session, body: PauseBody
                              ) -> web.StreamResponse:
        await self._pause(self._agent(sess), True, body.reason, sess.user)
        return web.json_response({"ok": True})

    async def h_console_wrapup(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        await self._pause(self._agent(sess), True, "after_call_work", sess.user)
        return web.json_response({"ok": True})

    async def _softphone(self, agent: str, op: str) -> dict[str, Any]:
        rid = f"{agent}-{time.time_ns()}"
        n = await self.service.redis.publish(f"{self.prefix}:softphone:{agent}",
                                             json.dumps({"op": op, "id": rid}))
        if not n:
            raise ApiError(409, "no_softphone", "the agent's softphone is not connected to "
                                                "the console (hotline softphone --answer "
                                                "console)")
        return {"ok": True, "sent": op, "id": rid}

    async def h_console_answer(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        return web.json_response(await self._softphone(self._agent(sess), "answer"))

    async def h_console_hold(self, request: web.Request, sess: Session, body: None
                             ) -> web.StreamResponse:
        agent = self._agent(sess)
        if self.current_call(agent) is None:
            raise ApiError(409, "no_call", "no call to hold")
        return web.json_response(await self._softphone(agent, "hold"))

    async def h_console_unhold(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        agent = self._agent(sess)
        if self.current_call(agent) is None:
            raise ApiError(409, "no_call", "no call to take off hold")
        return web.json_response(await self._softphone(agent, "unhold"))

    async def _agent_channels(self, agent: str) -> tuple[str, list[str]]:
        node = self.presence.node_of(agent)
        ami = self.service.nodes[node].ami
        rows = await ami.send_list({"Action": "CoreShowChannels"})
        return node, [str(m.get("Channel")) for m in rows
                      if str(m.get("Channel", "")).startswith(f"PJSIP/{agent}-")]

    async def h_console_hangup(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        agent = self._agent(sess)
        node, channels = await self._agent_channels(agent)
        if not channels:
            raise ApiError(409, "no_call", "the agent has no call to hang up")
        ami = self.service.nodes[node].ami
        for ch in channels:
            await ami.hangup(ch)
        log.info("console hangup", extra={"agent": agent, "channels": len(channels)})
        return web.json_response({"ok": True, "channels": len(channels)})

    async def h_console_transfer(self, request: web.Request, sess: Session, body: TransferBody
                                 ) -> web.StreamResponse:
        agent = self._agent(sess)
        cur = self.current_call(agent)
        if cur is None:
            raise ApiError(409, "no_call", "the agent has no call to transfer")
        call_id = cur[0]
        cc = self.service.callcontrol
        if body.action in ("consult", "emergency") and not body.destination:
            raise ApiError(422, "invalid", "destination: required for consult and emergency")
        try:
            if body.action == "consult":
                leg = await cc.consult(call_id, agent, body.destination)
            elif body.action == "emergency":
                leg = await cc.emergency(call_id, agent, body.destination)
            elif body.action == "three_way":
                leg = await cc.three_way(call_id, agent)
            elif body.action == "leave":
                leg = await cc.leave(call_id, agent)
            else:
                leg = await cc.cancel(call_id, agent)
        except TransferError as exc:
            status = 404 if exc.code == "unknown_destination" else 409
            raise ApiError(status, exc.code, exc.message) from None
        return web.json_response({"ok": True, "leg": leg.snapshot()})

    async def h_destinations(self, request: web.Request, sess: Session, body: None
                             ) -> web.StreamResponse:
        return web.json_response({"destinations": [
            {"id": d.id, "name": d.name, "number": d.number, "kind": d.kind,
             "category": d.category} for d in self.cfg.destinations]})

    # -- cases ------------------------------------------------------------------------------

    async def h_cases(self, request: web.Request, sess: Session, body: None
                      ) -> web.StreamResponse:
        q = request.query
        try:
            day_from = date.fromisoformat(q["from"]) if q.get("from") else None
            day_to = date.fromisoformat(q["to"]) if q.get("to") else None
            limit = int(q.get("limit", "50"))
            offset = int(q.get("offset", "0"))
        except ValueError as exc:
            raise ApiError(422, "invalid", f"query: {exc}") from None
        if not (1 <= limit <= 200) or offset < 0:
            raise ApiError(422, "invalid", "limit: 1-200; offset: 0 or more")
        if q.get("category") and q["category"] not in CATEGORIES:
            raise ApiError(422, "invalid", f"category: one of {', '.join(CATEGORIES)}")
        if q.get("status") and q["status"] not in ("open", "closed"):
            raise ApiError(422, "invalid", "status: open or closed")
        caller_hash = self.service.personal.lookup_hash(q["number"]) if q.get("number") else None
        out = await self.store.search(caller_hash=caller_hash, day_from=day_from, day_to=day_to,
                                      city=q.get("city") or None,
                                      category=q.get("category") or None,
                                      status=q.get("status") or None, limit=limit,
                                      offset=offset, clear=self.clear_numbers(sess))
        # The filters, never the number searched for (only that one was given).
        await self.audit.record(self.actor(sess, request), "cases.search", None, {
            "filters": {k: q[k] for k in ("from", "to", "city", "category", "status")
                        if q.get(k)}, "by_number": bool(caller_hash),
            "results": len(out["cases"]), "total": out["total"]})
        return web.json_response(out)

    def _filters(self, q: Any) -> dict[str, Any]:
        try:
            day_from = date.fromisoformat(q["from"]) if q.get("from") else None
            day_to = date.fromisoformat(q["to"]) if q.get("to") else None
        except ValueError as exc:
            raise ApiError(422, "invalid", f"query: {exc}") from None
        if q.get("category") and q["category"] not in CATEGORIES:
            raise ApiError(422, "invalid", f"category: one of {', '.join(CATEGORIES)}")
        if q.get("status") and q["status"] not in ("open", "closed"):
            raise ApiError(422, "invalid", "status: open or closed")
        return {"day_from": day_from, "day_to": day_to, "city": q.get("city") or None,
                "category": q.get("category") or None, "status": q.get("status") or None}

    async def h_export_cases(self, request: web.Request, sess: Session, body: None
                             ) -> web.StreamResponse:
        q = request.query
        fmt = q.get("format") or "csv"
        if fmt not in ("csv", "json"):
            raise ApiError(422, "invalid", "format: csv or json")
        clear = self.clear_numbers(sess)
        try:
            rows, export_id = await self.store.export(self.actor(sess, request), clear=clear,
                                                      fmt=fmt, **self._filters(q))
        except Conflict as exc:
            raise ApiError(422, exc.code, exc.message) from None
        name = f"cases-{export_id}.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"',
                   "X-Export-Id": export_id}
        if fmt == "json":
            return web.json_response({"export": export_id, "clear": clear, "cases": rows},
                                     headers=headers)
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(EXPORT_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            # A cell starting with = + - @ is a formula to a spreadsheet: quote it away.
            w.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@" else v)
                        for k, v in r.items()})
        # UTF-8 with a byte order mark: spreadsheets then read the Chinese text right.
        return web.Response(body=("\ufeff" + buf.getvalue()).encode(),
                            content_type="text/csv", charset="utf-8", headers=headers)

    async def h_audit(self, request: web.Request, sess: Session, body: None
                      ) -> web.StreamResponse:
        from datetime import UTC, datetime

        q = request.query
        try:
            limit = int(q.get("limit", "100"))
            offset = int(q.get("offset", "0"))
            since = datetime.fromisoformat(q["from"]) if q.get("from") else None
            until = datetime.fromisoformat(q["to"]) if q.get("to") else None
        except ValueError as exc:
            raise ApiError(422, "invalid", f"query: {exc}") from None
        if not (1 <= limit <= 1000) or not (0 <= offset <= 10_000_000):
            raise ApiError(422, "invalid", "limit: 1-1000; offset: 0 or more")
        since, until = (v.replace(tzinfo=self.store.tz).astimezone(UTC)
                        if v is not None and v.tzinfo is None else v for v in (since, until))
        if q.get("action") and q["action"] not in ACTIONS:
            raise ApiError(422, "invalid", f"action: one of {', '.join(ACTIONS)}")
        return web.json_response(await self.audit.read(
            self.actor(sess, request), case=q.get("case") or None, user=q.get("user") or None,
            action=q.get("action") or None, since=since, until=until, limit=limit,
            offset=offset))

    async def h_case(self, request: web.Request, sess: Session, body: None
                     ) -> web.StreamResponse:
        number = request.match_info["number"]
        case = await self._case_by(number=number, call_id=None)
        if case is None:
            raise ApiError(404, "not_found", f"no case {number}")
        detail = await self.store.detail(number, clear=self.clear_numbers(sess))
        detail["earlier"] = await self._earlier(case)
        detail["links"] = [{"case": n, "reason": r}
                           for n, r in await self.service.store.links(number)]
        await self.audit.record(self.actor(sess, request), "case.view", number)
        return web.json_response(detail)

    async def h_case_form(self, request: web.Request, sess: Session, body: FormBody
                          ) -> web.StreamResponse:
        number = request.match_info["number"]
        values = body.model_dump(exclude_unset=True, exclude={"version"})
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            raise ApiError(422, "invalid", "nothing to save")
        try:
            form = await self.store.save_form(number, values, by=sess.user,
                                              version=body.version,
                                              actor=self.actor(sess, request))
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except Conflict as exc:
            raise ApiError(409, exc.code, exc.message) from None
        return web.json_response({"ok": True, "form": form})

    async def h_case_close(self, request: web.Request, sess: Session, body: None
                           ) -> web.StreamResponse:
        number = request.match_info["number"]
        try:
            case, caller_hash = await self.store.close(number, self.actor(sess, request))
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except Conflict as exc:
            raise ApiError(409, exc.code, exc.message) from None
        # The repeat-caller routing forgets the closed case (in every service).
        await self.service.lookups.case_closed(caller_hash)
        if case.call_id:
            await self.service.store.apply(CallFact("closed", case.call_id, case.node or "",
                                                    time.time(), {"by": sess.user},
                                                    source="console"))
        return web.json_response({"ok": True, "status": "closed"})

    async def h_case_transcript(self, request: web.Request, sess: Session, body: None
                                ) -> web.StreamResponse:
        number = request.match_info["number"]
        if await self._case_by(number=number, call_id=None) is None:
            raise ApiError(404, "not_found", f"no case {number}")
        transcripts = getattr(self.service, "transcripts", None)
        if transcripts is None:
            doc: dict[str, Any] = {"status": "none", "error": None, "segments": [],
                                   "recordings": []}
        else:
            doc = await transcripts.for_case(number)
        for rec in doc.get("recordings", []):
            rec["url"] = f"/api/recordings/{number}/{rec.get('url_name', '')}"
            rec.pop("path", None)
        if not self.clear_numbers(sess):
            # Numbers said aloud are masked for roles that do not see callers' numbers.
            for seg in doc.get("segments", []):
                seg["text"] = scrub(str(seg.get("text", "")))
        await self.audit.record(self.actor(sess, request), "case.transcript", number)
        return web.json_response(doc)

    async def h_recording(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        number, name = request.match_info["number"], request.match_info["name"]
        transcripts = getattr(self.service, "transcripts", None)
        # The transcript helper's recordings dir, or [web] recordings_dir.
        root = getattr(transcripts, "dir", None) or self.web.recordings_dir
        if transcripts is None or root is None:
            raise ApiError(404, "not_found", "no recordings here")
        doc = await transcripts.for_case(number)
        rec = next((r for r in doc.get("recordings", []) if r.get("url_name") == name), None)
        if rec is None or rec.get("deleted_at"):
            raise ApiError(404, "not_found", f"no recording {name} for case {number}")
        base = (self.cfg.base_dir / root).resolve()
        path = Path(rec["path"])
        path = (path if path.is_absolute() else base / path).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise ApiError(404, "not_found", "recording not available")
        await self.audit.record(self.actor(sess, request), "recording.download", number,
                                {"file": name, "side": rec.get("side")})
        return web.FileResponse(path)

    # -- callbacks --------------------------------------------------------------------------

    async def h_callbacks(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        status = request.query.get("status") or None
        if status and status not in ("pending", "calling", "done", "failed", "cancelled"):
            raise ApiError(422, "invalid", "status: pending, calling, done, failed or cancelled")
        return web.json_response({"callbacks": await self.store.callbacks(
            status=status, city=request.query.get("city") or None)})

    def _task_id(self, request: web.Request) -> int:
        try:
            return int(request.match_info["id"])
        except ValueError:
            raise ApiError(404, "not_found", "no such callback task") from None

    async def h_callback_call(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        agent = self._agent(sess)
        task_id = self._task_id(request)
        if self.current_call(agent) is not None:
            raise ApiError(409, "on_call", "finish the current call first")
        try:
            task, number = await self.store.begin_callback(task_id, agent,
                                                           self.actor(sess, request))
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except Conflict as exc:
            raise ApiError(409, exc.code, exc.message) from None
        node = self.presence.node_of(agent)
        ring = self.web.callback_ring_s
        try:
            await self.service.nodes[node].ami.originate(
                channel=f"PJSIP/{agent}", application="Dial",
                data=f"{self.web.callback_dial.format(number=number)},{ring}",
                caller_id=f"12345 <{self.cfg.transfers.hotline_number}>", timeout_s=ring,
                variables={"HOTLINE_CALLBACK": str(task_id)})
        except Exception as exc:
            # Nothing half-done: the attempt is recorded as failed, the task stays open.
            task = await self.store.finish_callback(task_id, "failed_to_dial", by=agent,
                                                    note=str(exc)[:200])
            raise ApiError(409, "unavailable", f"Asterisk could not place the call: {exc}"
                           ) from None
        await self._case_fact(task["case"], f"callback_{task['attempts']}",
                              {"agent": agent, "attempt": task["attempts"], "event": "dialing"})
        log.info("callback dialled", extra={"task": task_id, "agent": agent,
                                            "attempt": task["attempts"]})
        return web.json_response({"ok": True, "task": task})

    async def h_callback_outcome(self, request: web.Request, sess: Session,
                                 body: CallbackOutcomeBody) -> web.StreamResponse:
        task_id = self._task_id(request)
        try:
            task = await self.store.finish_callback(task_id, body.outcome, by=sess.user,
                                                    note=body.note,
                                                    actor=self.actor(sess, request))
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except Conflict as exc:
            raise ApiError(409, exc.code, exc.message) from None
        fact: dict[str, Any] = {"by": sess.user, "outcome": body.outcome}
        if body.note:  # the agent's words: encrypted on the timeline too
            fact["note_enc"] = self.service.personal.encrypt(body.note)
        await self._case_fact(task["case"], f"callback_{task['attempts']}_{body.outcome}"[:32],
                              fact)
        return web.json_response({"ok": True, "task": task})

    async def _case_fact(self, number: str, kind: str, data: dict[str, Any]) -> None:
        case = await self._case_by(number=number, call_id=None)
        if case is not None and case.call_id:
            await self.service.store.apply(CallFact(kind, case.call_id, case.node or "",
                                                    time.time(), data, source="console"))

    # -- supervisors ------------------------------------------------------------------------

    async def h_wallboard(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        return web.json_response(self.board.snapshot())

    async def h_agents(self, request: web.Request, sess: Session, body: None
                       ) -> web.StreamResponse:
        return web.json_response({"agents": [
            {**self.board.agents.get(a.id, {"agent": a.id, "name": a.name}),
             "signed_in": self.presence.is_signed_in(a.id),
             "skills": self.service.skills.of(a.id)} for a in self.cfg.agents],
            "skills": dict(self.cfg.skills)})

    def _known_agent(self, request: web.Request) -> str:
        agent = request.match_info["agent"]
        if agent not in {a.id for a in self.cfg.agents}:
            raise ApiError(404, "unknown_agent", f"no agent {agent}")
        return agent

    async def h_agent_pause(self, request: web.Request, sess: Session, body: AgentPauseBody
                            ) -> web.StreamResponse:
        agent = self._known_agent(request)
        await self._pause(agent, body.paused, body.reason, sess.user)
        return web.json_response({"ok": True, "agent": agent, "paused": body.paused})

    async def h_agent_skills(self, request: web.Request, sess: Session, body: SkillsBody
                             ) -> web.StreamResponse:
        from queueing.routing.skills import SkillError

        agent = self._known_agent(request)
        try:
            change = await self.service.skills.change(agent, body.skills, by=sess.user)
        except SkillError as exc:
            raise ApiError(422, "invalid", str(exc)) from None
        return web.json_response({"ok": True, "agent": agent, "before": change.before,
                                  "after": change.after, "applied": change.applied})

    def _surge(self) -> Any:
        surge = getattr(self.service, "surge", None)
        if surge is None:
            raise ApiError(404, "not_available", "surge handling is not part of this service")
        return surge

    async def _surge_call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await fn()
        except Exception as exc:
            code = getattr(exc, "code", None)
            if type(exc).__name__ != "SurgeError" or code is None:
                raise
            status = {"not_found": 404, "invalid": 400, "unavailable": 503}.get(str(code), 409)
            raise ApiError(status, str(code), getattr(exc, "message", None) or str(exc)
                           ) from None

    async def h_surge(self, request: web.Request, sess: Session, body: None
                      ) -> web.StreamResponse:
        surge = self._surge()
        return web.json_response(await self._surge_call(surge.status))

    async def h_surge_proposal(self, request: web.Request, sess: Session,
                               body: SurgeProposalBody) -> web.StreamResponse:
        surge = self._surge()
        return web.json_response(await self._surge_call(lambda: surge.proposal(body.target)))

    async def h_surge_apply(self, request: web.Request, sess: Session, body: SurgeApplyBody
                            ) -> web.StreamResponse:
        surge = self._surge()
        return web.json_response(await self._surge_call(
            lambda: surge.apply(body.proposal_id, by=sess.user)))

    async def h_surge_return(self, request: web.Request, sess: Session, body: SurgeReturnBody
                             ) -> web.StreamResponse:
        surge = self._surge()
        return web.json_response(await self._surge_call(
            lambda: surge.return_agents(body.agent_ids, by=sess.user)))

    async def h_surge_moves(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        surge = self._surge()
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise ApiError(422, "invalid", "limit: a whole number") from None
        if not 1 <= limit <= 1000:
            raise ApiError(422, "invalid", "limit: 1-1000")
        return web.json_response({"moves": await self._surge_call(lambda: surge.moves(limit))})

    async def h_users_add(self, request: web.Request, sess: Session, body: UserBody
                          ) -> web.StreamResponse:
        if body.role == "agent":
            if not body.agent_id or body.agent_id not in {a.id for a in self.cfg.agents}:
                raise ApiError(422, "invalid", "agent_id: an agent of the configuration is "
                                               "required for role agent")
        try:
            user = await self.users.add(body.username, body.password, body.role,
                                        agent_id=body.agent_id,
                                        display_name=body.display_name)
        except ValueError as exc:
            raise ApiError(422, "invalid", str(exc)) from None
        log.info("console user saved", extra={"user": body.username, "role": body.role,
                                              "by": sess.user})
        return web.json_response({"ok": True, "user": user.username, "role": user.role})

    # -- WebSocket --------------------------------------------------------------------------

    async def h_ws(self, request: web.Request) -> web.StreamResponse:
        try:
            sess = await self.session_of(request)
        except ApiError as exc:
            return web.json_response({"error": exc.code, "message": exc.message},
                                     status=exc.status)
        # No compression: wallboard updates are framed once and written to every socket.
        origin = request.headers.get("Origin")
        if origin and origin.split("://", 1)[-1] != request.host:
            # Another site's page using the agent's cookie (cross-site WebSocket hijacking).
            return web.json_response({"error": "forbidden", "message": "cross-origin "
                                      "WebSocket refused"}, status=403)
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096, compress=False)
        await ws.prepare(request)

        async def overflow() -> None:
            await ws.close(code=4000, message=b"too slow: reconnect for a fresh snapshot")

        client = Client(ws.send_str, role=sess.role, agent=sess.agent if sess.role == "agent"
                        else None, on_overflow=overflow,
                        transport=request.transport if sess.role != "agent" else None)
        if sess.role == "agent":
            await ws.send_str(json.dumps({"type": "hello", "agent": sess.agent}))
        self.board.add(client, snapshot=sess.role != "agent")
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
                elif msg.type == WSMsgType.ERROR:
                    break
                if time.time() > sess.exp:
                    await ws.close(code=4001, message=b"session expired")
                    break
        finally:
            self.board.remove(client)
        return ws


def _f(v: str | None) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None


def build_app(service: Any) -> tuple[web.Application, ConsoleApp]:
    console = ConsoleApp(service)
    return console.build(), console


__all__ = ["PAUSE_REASONS", "ROLES", "ConsoleApp", "build_app", "openapi"]
