"""The API as OpenAPI 3.1, assembled from every feature's route declarations and schemas:
roles (``x-roles``), parameters with the values the handlers accept, bodies from the pydantic
models, each answer's schema. Schemathesis exercises every route from it
(tests/integration/test_api_fuzz.py). The app builds it once (app.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent_desk.web.auth import COOKIE
from agent_desk.web.routes import ALL, HEADERS, OBJ, PATH, Route, S, obj, ref


def _operation(r: Route, error: dict[str, Any]) -> dict[str, Any]:
    ok = r.ok or {"description": "OK", "content": {"application/json": {"schema": r.answer}}}
    op: dict[str, Any] = {
        "operationId": r.name, "summary": r.summary,
        "x-roles": list(r.roles) or ["anyone"],
        "responses": {"200": ok, "4XX": error, **r.more},
    }
    params = [{"name": p.strip("{}"), "in": "path", "required": True,
               "schema": PATH.get(p.strip("{}"), {"type": "string"})}
              for p in r.path.split("/") if p.startswith("{")]
    params += [{"name": q, "in": "query", "required": False, "schema": r.spec_of(q)}
               for q in r.query]
    params += [{"name": h, "in": "header", "required": True, "schema": spec}
               for h, spec in r.headers.items()]
    params += [{"name": h, "in": "header", "required": False, "schema": HEADERS[h]}
               for h in r.optional_headers]
    if params:
        op["parameters"] = params
    if r.roles:
        op["security"] = [{"session": []}] if r.method == "GET" else [
            {"session": [], "csrf": []}]
    elif r.bearer:
        op["security"] = [{"bearer": []}]
        op["x-roles"] = ["api token"]
    if r.upload:
        op["requestBody"] = {"required": True, "content": {t: {"schema": {
            "type": "string", "format": "binary", "maxLength": r.max_body}} for t in r.upload}}
    if r.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": r.body.model_json_schema()}}}
    return op


def describe(routes: Iterable[Route], schemas: Mapping[str, dict[str, Any]]
             ) -> dict[str, Any]:
    error = {"description": "error", "content": {"application/json": {
        "schema": ref("Error")}}}
    paths: dict[str, Any] = {}
    for r in routes:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r, error)
    paths["/api/ws"] = {"get": {"operationId": "ws", "summary":
                                "WebSocket: wallboard updates (supervisors) or the agent's own "
                                "events (agents)", "x-roles": list(ALL),
                                "security": [{"session": []}],
                                "responses": {"101": {"description": "switching protocols"},
                                              "4XX": error}}}
    paths["/api/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "This description", "x-roles": ["anyone"],
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": obj({"openapi": S, "paths": OBJ})}}}}}}
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
                         "description": "state changes: the csrf value of GET /api/me"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an API token: a channel's (intake) or a "
                                          "department's system's (docs/departments.md)"}},
            "schemas": dict(schemas),
        },
    }
