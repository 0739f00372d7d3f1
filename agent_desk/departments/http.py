"""The departments room's HTTP: the department's cases, for its staff in the console
(``/api/department/...``, session cookie) and for its own system (``/api/dept/...``, API
token: ``Authorization: Bearer dpt_...``), the same operations and answers; and the directory's
administration (``/api/directory/...``: departments, CSV, defaults per 事项, the departments'
users and API tokens). Thin handlers over services.py and tokens.py."""

from __future__ import annotations

from aiohttp import web

from agent_desk.access import Scope
from agent_desk.audit import Actor
from agent_desk.departments.schemas import (
    API_ME,
    BAD_TOKEN,
    CASE,
    CASES,
    CSV_OK,
    DEFAULTS,
    DIRECTORY,
    IMPORTED,
    ISSUED,
    RATE,
    REVOKED,
    SAVED,
    TOKENS,
    USERS,
    ActiveBody,
    DefaultBody,
    DepartmentBody,
    ExtensionBody,
    ImportBody,
    NoteBody,
    ReplyBody,
    ReturnBody,
    TokenBody,
)
from agent_desk.web.auth import ApiClient, Session
from agent_desk.web.deps import ApiTokens, ConsoleDeps, Departments
from agent_desk.web.routes import ALL, DEPARTMENT, OK, Body, Route, actor
from cases.loop.store import DepartmentEntry
from common.errors import DomainError

IDEM = ("Idempotency-Key",)
LIST_QUERY = {"tab": {"enum": ["todo", "pending", "signed", "replied", "returned", "all"]}}
DIR_QUERY = {"all": {"enum": ["true", "false"]}}
DEFAULT_QUERY = {"matter": {"type": "string", "minLength": 1, "maxLength": 128}}


def _case_routes(prefix: str, name: str, bearer: bool, who: str) -> list[Route]:
    """The department's operations on its cases, under ``prefix`` (operation ids
    ``<name>_cases``, ``<name>_case``, ``<name>_sign`` ...): for its staff (role department)
    or, ``bearer``, for its system with an API token (the handler checks it)."""
    more = {"401": BAD_TOKEN, "429": RATE} if bearer else {}
    roles = () if bearer else DEPARTMENT
    case = f"{prefix}/cases/{{number}}"

    def change(op: str, body: type[Body] | None, what: str) -> Route:
        return Route("POST", f"{case}/{op}", f"{name}_{op}", roles, f"{what} ({who})",
                     body, answer=CASE, bearer=bearer, optional_headers=IDEM, more=more)

    return [
        Route("GET", f"{prefix}/cases", f"{name}_cases", roles,
              f"The department's cases: to do (待签收 and 办理中), or one state; overdue "
              f"first ({who})", query=("tab", "limit", "offset"), query_spec=LIST_QUERY,
              answer=CASES, bearer=bearer, more=more),
        Route("GET", case, f"{name}_case", roles,
              f"One case dispatched to the department: the matter, the form's text, its "
              f"dispatch; the caller masked unless it must call back ({who})", answer=CASE,
              bearer=bearer, more=more),
        change("sign", None, "签收: sign for the case"),
        change("return", ReturnBody, "退单: return the case to the hotline, with the reason"),
        change("note", NoteBody, "办理备注: note the work done so far"),
        change("reply", ReplyBody, "答复: what was done, and whether the caller was contacted"),
        change("extension", ExtensionBody, "延期申请: ask for more working days, with the "
                                           "reason"),
    ]


ROUTES = [
    *_case_routes("/api/department", "dept", False, "department staff"),
    Route("GET", "/api/dept/me", "api_me", (), "The department this API token acts for",
          answer=API_ME, bearer=True, more={"401": BAD_TOKEN, "429": RATE}),
    *_case_routes("/api/dept", "api", True, "the department's system, by API token"),
    Route("GET", "/api/directory", "directory", ALL,
          "The 承办单位 directory (all=true: the deactivated ones too)",
          query=("city", "all"), query_spec=DIR_QUERY, answer=DIRECTORY),
    Route("GET", "/api/directory/export", "directory_export", ("admin",),
          "The active departments as CSV (id,name,level,city,parent,unit,webhook_url)",
          ok=CSV_OK),
    Route("POST", "/api/directory/import", "directory_import", ("admin",),
          "Departments from CSV: new ones created, known ones updated; dry_run: check only",
          ImportBody, answer=IMPORTED),
    Route("GET", "/api/directory/defaults", "directory_defaults", ("supervisor", "admin"),
          "The default department per 事项 and city, and the 事项 to choose from",
          answer=DEFAULTS),
    Route("PUT", "/api/directory/defaults", "directory_default_set", ("admin",),
          "Set the default department of a 事项 in a city (no city: the province's)",
          DefaultBody, answer=OK),
    Route("DELETE", "/api/directory/defaults", "directory_default_delete", ("admin",),
          "Remove the default department of a 事项 in a city (no city: the province's); its "
          "cases are then suggested the province's default, or none",
          query=("matter", "city"), query_spec=DEFAULT_QUERY, answer=OK),
    Route("PUT", "/api/directory/departments/{department}", "department_save", ("admin",),
          "Create or edit a department", DepartmentBody, answer=SAVED),
    Route("POST", "/api/directory/departments/{department}/state", "department_state", ("admin",),
          "Deactivate a department (no new dispatches, its API tokens refused) or activate it",
          ActiveBody, answer=SAVED),
    Route("GET", "/api/directory/departments/{department}/users", "department_users", ("admin",),
          "The department's console users (POST /api/users with role department makes one)",
          answer=USERS),
    Route("GET", "/api/directory/departments/{department}/tokens", "department_tokens", ("admin",),
          "The department's API tokens (never the tokens themselves)", answer=TOKENS),
    Route("POST", "/api/directory/departments/{department}/tokens", "department_token_issue",
          ("admin",), "Issue an API token for the department's system: shown this once",
          TokenBody, answer=ISSUED),
    Route("DELETE", "/api/directory/departments/{department}/tokens/{token}",
          "department_token_revoke", ("admin",),
          "Revoke an API token (refused from the next request on)", answer=REVOKED),
]


class DepartmentsHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    @property
    def desk(self) -> Departments:
        if self.deps.departments is None:
            raise DomainError("not_available", "the departments' side is not served here")
        return self.deps.departments

    @property
    def tokens(self) -> ApiTokens:
        if self.deps.tokens is None:
            raise DomainError("not_available", "API tokens are not served here")
        return self.deps.tokens

    async def _client(self, request: web.Request) -> ApiClient:
        """The department's system, by its API token (401 without a good one)."""
        return await self.tokens.client(request.headers.get("Authorization"))

    async def _who(self, request: web.Request, sess: Session | ApiClient
                   ) -> tuple[Scope, Actor, str]:
        """The department's scope, who is audited, and by which way it came."""
        if isinstance(sess, ApiClient):
            return (Scope(sess.user, sess.role, None, department=sess.department),
                    Actor(sess.user, sess.role, request.remote or ""), "api")
        return await self.deps.scope(sess), actor(sess, request), "console"

    # -- the department's cases (both ways in) ------------------------------------------------

    async def _cases(self, request: web.Request, sess: Session | ApiClient
                     ) -> web.StreamResponse:
        scope, who, via = await self._who(request, sess)
        q = request.query
        return web.json_response(await self.desk.cases(
            scope, who, tab=q.get("tab") or "todo", limit=int(q.get("limit") or 50),
            offset=int(q.get("offset") or 0), via=via))

    async def _case(self, request: web.Request, sess: Session | ApiClient
                    ) -> web.StreamResponse:
        scope, who, via = await self._who(request, sess)
        return web.json_response(await self.desk.case(request.match_info["number"], scope,
                                                      who, via=via))

    async def _act(self, request: web.Request, sess: Session | ApiClient, action: str, *,
                   text: str = "", contacted: bool | None = None, days: int = 0
                   ) -> web.StreamResponse:
        scope, who, via = await self._who(request, sess)
        return web.json_response(await self.desk.act(
            request.match_info["number"], action, scope, who, text=text, contacted=contacted,
            days=days, idempotency_key=request.headers.get("Idempotency-Key"), via=via))

    async def h_dept_cases(self, request: web.Request, sess: Session, body: None
                           ) -> web.StreamResponse:
        return await self._cases(request, sess)

    async def h_dept_case(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        return await self._case(request, sess)

    async def h_dept_sign(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        return await self._act(request, sess, "sign")

    async def h_dept_return(self, request: web.Request, sess: Session, body: ReturnBody
                            ) -> web.StreamResponse:
        return await self._act(request, sess, "return", text=body.reason)

    async def h_dept_note(self, request: web.Request, sess: Session, body: NoteBody
                          ) -> web.StreamResponse:
        return await self._act(request, sess, "note", text=body.text)

    async def h_dept_reply(self, request: web.Request, sess: Session, body: ReplyBody
                           ) -> web.StreamResponse:
        return await self._act(request, sess, "reply", text=body.text,
                               contacted=body.contacted)

    async def h_dept_extension(self, request: web.Request, sess: Session, body: ExtensionBody
                               ) -> web.StreamResponse:
        return await self._act(request, sess, "extension", text=body.reason, days=body.days)

    async def h_api_me(self, request: web.Request, sess: None, body: None
                       ) -> web.StreamResponse:
        client = await self._client(request)
        return web.json_response({"department": await self.desk.department(client.department),
                                  "token": {"id": client.token_id, "label": client.label}})

    async def h_api_cases(self, request: web.Request, sess: None, body: None
                          ) -> web.StreamResponse:
        client = await self._client(request)
        return await self._cases(request, client)

    async def h_api_case(self, request: web.Request, sess: None, body: None
                         ) -> web.StreamResponse:
        client = await self._client(request)
        return await self._case(request, client)

    async def h_api_sign(self, request: web.Request, sess: None, body: None
                         ) -> web.StreamResponse:
        client = await self._client(request)
        return await self._act(request, client, "sign")

    async def h_api_return(self, request: web.Request, sess: None, body: ReturnBody
                           ) -> web.StreamResponse:
        client = await self._client(request)
        return await self._act(request, client, "return", text=body.reason)

    async def h_api_note(self, request: web.Request, sess: None, body: NoteBody
                         ) -> web.StreamResponse:
        client = await self._client(request)
        return await self._act(request, client, "note", text=body.text)

    async def h_api_reply(self, request: web.Request, sess: None, body: ReplyBody
                          ) -> web.StreamResponse:
        client = await self._client(request)
        return await self._act(request, client, "reply", text=body.text,
                               contacted=body.contacted)

    async def h_api_extension(self, request: web.Request, sess: None,
                              body: ExtensionBody) -> web.StreamResponse:
        client = await self._client(request)
        return await self._act(request, client, "extension", text=body.reason,
                               days=body.days)

    # -- the directory (admins) ---------------------------------------------------------------

    async def h_directory(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        q = request.query
        rows = await self.desk.directory(city=q.get("city") or None,
                                         include_inactive=q.get("all") == "true")
        return web.json_response({
            "departments": rows, "levels": ["province", "city", "district", "street"],
            "cities": [{"id": k, "name": v} for k, v in self.desk.city_names().items()]})

    async def h_directory_export(self, request: web.Request, sess: Session, body: None
                                 ) -> web.StreamResponse:
        text = await self.desk.export_csv(actor(sess, request))
        # UTF-8 with a byte order mark: spreadsheets then read the Chinese names right (the
        # import takes it off again).
        return web.Response(body=("\ufeff" + text).encode(), content_type="text/csv",
                            charset="utf-8", headers={
                                "Content-Disposition": 'attachment; filename="departments.csv"'})

    async def h_directory_import(self, request: web.Request, sess: Session, body: ImportBody
                                 ) -> web.StreamResponse:
        return web.json_response(await self.desk.import_csv(body.csv, actor(sess, request),
                                                            dry_run=body.dry_run))

    async def h_directory_defaults(self, request: web.Request, sess: Session, body: None
                                   ) -> web.StreamResponse:
        return web.json_response(await self.desk.defaults())

    async def h_directory_default_set(self, request: web.Request, sess: Session,
                                      body: DefaultBody) -> web.StreamResponse:
        await self._known(body.department)
        await self.desk.set_default(body.matter, body.city, body.department,
                                    actor(sess, request))
        return web.json_response({"ok": True})

    async def h_directory_default_delete(self, request: web.Request, sess: Session,
                                         body: None) -> web.StreamResponse:
        matter = request.query.get("matter")
        if not matter:
            raise DomainError("invalid", "matter: required (the 事项's code)")
        await self.desk.delete_default(matter, request.query.get("city") or None,
                                       actor(sess, request))
        return web.json_response({"ok": True})

    async def _known(self, dept: str) -> None:
        """A department of the directory (else 404, before anything changes)."""
        rows = await self.desk.directory(include_inactive=True)
        if dept not in {d["id"] for d in rows}:
            raise DomainError("not_found", f"no department {dept}")

    async def h_department_save(self, request: web.Request, sess: Session,
                                body: DepartmentBody) -> web.StreamResponse:
        entry = DepartmentEntry(request.match_info["department"], body.name.strip(), body.level,
                                body.city, body.parent, body.unit.strip(), body.webhook_url,
                                body.active)
        saved = await self.desk.save(entry, actor(sess, request),
                                     keep_webhook="webhook_url" not in body.model_fields_set)
        return web.json_response({"ok": True, "department": saved})

    async def h_department_state(self, request: web.Request, sess: Session, body: ActiveBody
                                 ) -> web.StreamResponse:
        saved = await self.desk.set_active(request.match_info["department"], body.active,
                                           actor(sess, request))
        return web.json_response({"ok": True, "department": saved})

    async def h_department_users(self, request: web.Request, sess: Session, body: None
                                 ) -> web.StreamResponse:
        dept = request.match_info["department"]
        await self._known(dept)
        return web.json_response({"users": await self.desk.users(dept)})

    async def h_department_tokens(self, request: web.Request, sess: Session, body: None
                                  ) -> web.StreamResponse:
        dept = request.match_info["department"]
        await self._known(dept)
        return web.json_response({"tokens": await self.tokens.tokens(dept)})

    async def h_department_token_issue(self, request: web.Request, sess: Session,
                                       body: TokenBody) -> web.StreamResponse:
        issued = await self.tokens.issue(request.match_info["department"], body.label.strip(),
                                         actor(sess, request))
        token = issued.pop("token")
        return web.json_response({"ok": True, "token": token, "issued": issued})

    async def h_department_token_revoke(self, request: web.Request, sess: Session,
                                        body: None) -> web.StreamResponse:
        raw = request.match_info["token"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            raise DomainError("not_found", f"no token {raw[:12]}")
        revoked = await self.tokens.revoke(request.match_info["department"], int(raw),
                                           actor(sess, request))
        return web.json_response({"ok": True, "revoked": revoked})
