"""Cases: search, detail, the case form, closing, transcript and recordings, the export and
the audit log (thin handlers over agent_desk/cases/store.py and agent_desk/audit.py).

Every case route works within the asker's need-to-know (``ConsoleDeps.scope``,
agent_desk/access.py): a case outside it answers 404, like one that does not exist."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from agent_desk.cases.schemas import (
    AUDIT,
    AUDIT_QUERY,
    CASE,
    CASE_QUERY,
    CASES,
    CLOSE,
    EXPORT,
    EXPORT_OK,
    FORM,
    FORM_VERSIONS,
    RECORDING_OK,
    TRANSCRIPT,
    FormBody,
)
from agent_desk.cases.store import EXPORT_COLUMNS
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.routes import (
    ALL,
    AUDITORS,
    QA,
    SUPERVISORS,
    Route,
    actor,
    sees_numbers,
    spreadsheet_cell,
)
from common import sealed
from common.errors import DomainError
from common.privacy import scrub

FILTERS = ("from", "to", "city", "category", "status")
ROUTES = [
    Route("GET", "/api/cases", "cases", ALL, "Search cases",
          query=("number", *FILTERS, "limit", "offset"), answer=CASES, query_spec=CASE_QUERY),
    Route("GET", "/api/export/cases", "export_cases", SUPERVISORS,
          "Export cases (CSV or JSON), callers masked unless the role sees numbers; every "
          "exported case is audited", query=("format", *FILTERS), answer=EXPORT,
          query_spec=CASE_QUERY, ok=EXPORT_OK),
    Route("GET", "/api/audit", "audit", AUDITORS,
          "The audit log: who viewed, exported or changed which case (reading it is "
          "audited too)", query=("case", "user", "action", "from", "to", "limit", "offset"),
          answer=AUDIT, query_spec=AUDIT_QUERY),
    Route("GET", "/api/cases/{number}", "case", (*ALL, *QA),
          "A case: timeline, transfers, form, callback, repeat-caller links", answer=CASE),
    Route("PUT", "/api/cases/{number}/form", "case_form", ("agent", "supervisor"),
          "Save the case form (during or after the call; frozen once the case is closed)",
          FormBody, answer=FORM),
    Route("GET", "/api/cases/{number}/form/versions", "case_form_versions", SUPERVISORS,
          "Every saved state of the case form, oldest first (append-only)",
          answer=FORM_VERSIONS),
    Route("POST", "/api/cases/{number}/close", "case_close", ("agent", "supervisor"),
          "办结: finish the work on the case", answer=CLOSE),
    Route("GET", "/api/cases/{number}/transcript", "case_transcript", (*ALL, *QA),
          "Transcript and recordings of the case", answer=TRANSCRIPT),
    Route("GET", "/api/recordings/{number}/{name}", "recording", (*SUPERVISORS, *QA),
          "A recording file of the case", ok=RECORDING_OK),
]


def _filters(q: Any) -> dict[str, Any]:
    # The query is checked against the route's description first (routes.query_problems).
    return {"day_from": date.fromisoformat(q["from"]) if q.get("from") else None,
            "day_to": date.fromisoformat(q["to"]) if q.get("to") else None,
            "city": q.get("city") or None, "category": q.get("category") or None,
            "status": q.get("status") or None}


class CasesHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    async def h_cases(self, request: web.Request, sess: Session, body: None
                      ) -> web.StreamResponse:
        d, q = self.deps, request.query
        caller_hash = d.personal.lookup_hash(q["number"]) if q.get("number") else None
        out = await d.cases.search(await d.scope(sess), caller_hash=caller_hash, **_filters(q),
                                   limit=int(q.get("limit", "50")),
                                   offset=int(q.get("offset", "0")),
                                   clear=sees_numbers(d.web, sess))
        # The filters, never the number searched for (only that one was given).
        await d.audit.record(actor(sess, request), "cases.search", None, {
            "filters": {k: q[k] for k in FILTERS if q.get(k)}, "by_number": bool(caller_hash),
            "results": len(out["cases"]), "total": out["total"]})
        return web.json_response(out)

    async def h_export_cases(self, request: web.Request, sess: Session, body: None
                             ) -> web.StreamResponse:
        q = request.query
        fmt = q.get("format") or "csv"
        clear = sees_numbers(self.deps.web, sess)
        rows, export_id = await self.deps.cases.export(
            actor(sess, request), await self.deps.scope(sess), clear=clear, fmt=fmt,
            **_filters(q))
        name = f"cases-{export_id}.{fmt}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"',
                   "X-Export-Id": export_id}
        if fmt == "json":
            return web.json_response({"export": export_id, "clear": clear, "cases": rows},
                                     headers=headers)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(EXPORT_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: spreadsheet_cell(v) for k, v in r.items()})
        # UTF-8 with a byte order mark: spreadsheets then read the Chinese text right.
        return web.Response(body=("\ufeff" + buf.getvalue()).encode(),
                            content_type="text/csv", charset="utf-8", headers=headers)

    async def h_audit(self, request: web.Request, sess: Session, body: None
                      ) -> web.StreamResponse:
        q = request.query
        try:
            since = datetime.fromisoformat(q["from"]) if q.get("from") else None
            until = datetime.fromisoformat(q["to"]) if q.get("to") else None
        except ValueError as exc:
            raise DomainError("invalid", f"query: {exc}") from None
        tz = self.deps.cases.tz
        since, until = (v.replace(tzinfo=tz).astimezone(UTC)
                        if v is not None and v.tzinfo is None else v for v in (since, until))
        return web.json_response(await self.deps.audit.read(
            actor(sess, request), case=q.get("case") or None, user=q.get("user") or None,
            action=q.get("action") or None, since=since, until=until,
            limit=int(q.get("limit", "100")), offset=int(q.get("offset", "0"))))

    async def h_case(self, request: web.Request, sess: Session, body: None
                     ) -> web.StreamResponse:
        d = self.deps
        number = request.match_info["number"]
        scope = await d.scope(sess)
        case = await d.cases.visible(number, scope)
        detail = await d.cases.detail(number, clear=sees_numbers(d.web, sess), scope=scope)
        detail["earlier"] = await d.cases.earlier(case, scope)
        detail["links"] = [{"case": n, "reason": r} for n, r in await d.facts.links(number)]
        await d.audit.record(actor(sess, request), "case.view", number)
        return web.json_response(detail)

    async def h_case_form(self, request: web.Request, sess: Session, body: FormBody
                          ) -> web.StreamResponse:
        values = body.model_dump(exclude_unset=True, exclude={"version"})
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            raise DomainError("invalid", "nothing to save")
        form = await self.deps.cases.save_form(request.match_info["number"], values,
                                               by=sess.user, scope=await self.deps.scope(sess),
                                               version=body.version,
                                               actor=actor(sess, request))
        return web.json_response({"ok": True, "form": form})

    async def h_case_form_versions(self, request: web.Request, sess: Session, body: None
                                   ) -> web.StreamResponse:
        d = self.deps
        number = request.match_info["number"]
        versions = await d.cases.form_versions(number, await d.scope(sess))
        await d.audit.record(actor(sess, request), "case.view", number,
                             {"form_versions": len(versions)})
        return web.json_response({"case": number, "versions": versions})

    async def h_case_close(self, request: web.Request, sess: Session, body: None
                           ) -> web.StreamResponse:
        number = request.match_info["number"]
        case, caller_hash = await self.deps.cases.close(number, actor(sess, request),
                                                        await self.deps.scope(sess))
        # The repeat-caller routing forgets the closed case (in every service).
        await self.deps.repeat_callers.case_closed(caller_hash)
        await self.deps.case_fact(number, "closed", {"by": sess.user}, case=case)
        return web.json_response({"ok": True, "status": "closed"})

    async def h_case_transcript(self, request: web.Request, sess: Session, body: None
                                ) -> web.StreamResponse:
        d = self.deps
        number = request.match_info["number"]
        await d.cases.visible(number, await d.scope(sess))
        doc: dict[str, Any] = {"status": "none", "error": None, "segments": [],
                               "recordings": []}
        if d.transcripts is not None:
            doc = await d.transcripts.for_case(number)
        if sess.role not in (*SUPERVISORS, *QA):
            # Recordings are played by supervisors and, of the sampled calls, inspectors.
            doc["recordings"] = []
        for rec in doc.get("recordings", []):
            rec["url"] = f"/api/recordings/{number}/{rec.get('url_name', '')}"
            rec.pop("path", None)
        if not sees_numbers(d.web, sess):
            # Numbers said aloud are masked for roles that do not see callers' numbers.
            for seg in doc.get("segments", []):
                seg["text"] = scrub(str(seg.get("text", "")))
        await d.audit.record(actor(sess, request), "case.transcript", number)
        return web.json_response(doc)

    async def h_recording(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        d = self.deps
        number, name = request.match_info["number"], request.match_info["name"]
        # The transcript helper's recordings dir, or [web] recordings_dir.
        root = (d.transcripts.dir if d.transcripts is not None else None) \
            or d.web.recordings_dir
        await d.cases.visible(number, await d.scope(sess))
        if d.transcripts is None or root is None:
            raise DomainError("not_found", "no recordings here")
        doc = await d.transcripts.for_case(number)
        rec = next((r for r in doc.get("recordings", []) if r.get("url_name") == name), None)
        if rec is None or rec.get("deleted_at"):
            raise DomainError("not_found", f"no recording {name} for case {number}")
        base = (d.cfg.base_dir / root).resolve()
        path = Path(rec["path"])
        path = (path if path.is_absolute() else base / path).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise DomainError("not_found", "recording not available")
        # Recordings are sealed at rest (common/sealed.py): decrypted here chunk by chunk and
        # streamed; the first chunk is opened before anything is sent, so a file that does not
        # open (damaged, another data key) is an error answer, not a cut-off download.
        # The seat's video (asr/video.py) plays while its console still uploads it.
        video = rec.get("kind") == "video"
        chunks = sealed.read_chunks(path, d.personal, unfinished_ok=bool(rec.get("open")))
        try:
            try:
                first = await asyncio.to_thread(next, chunks, b"")
            except (sealed.SealedFileError, OSError) as exc:
                raise DomainError("not_found", f"recording not readable: {exc}") from None
            await d.audit.record(actor(sess, request), "recording.download", number,
                                 {"file": name, "side": rec.get("side")})
            clear_name = path.name.removesuffix(sealed.SUFFIX)
            resp = web.StreamResponse(headers={
                "Content-Type": "video/webm" if video else "audio/wav",
                "Cache-Control": "no-store",
                "Content-Disposition": f'inline; filename="{clear_name}"'})
            await resp.prepare(request)
            chunk: bytes | None = first
            while chunk:
                await resp.write(chunk)
                chunk = await asyncio.to_thread(next, chunks, None)
            await resp.write_eof()
            return resp
        finally:
            chunks.close()  # the file, also when the client goes away mid-stream
