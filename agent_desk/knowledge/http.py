"""The knowledge base (知识库) on the console: agents search it and get suggestions for the
case they are writing; supervisors and admins write, review, publish and withdraw articles;
admins import and export them (thin handlers over store.py).

What agents type and the case-form words sent for suggestions travel in request bodies (not
in URLs, which proxies log), are used for the search and forgotten: neither stored, audited
nor logged. Every edit is audited with the article's ref (store.py)."""

from __future__ import annotations

from datetime import date, datetime

from aiohttp import web

from agent_desk.knowledge.schemas import (
    ARTICLE,
    EXPORT_OK,
    HELPFUL,
    IMPORTED,
    LIST,
    QUERY,
    READ,
    RESULTS,
    VERSIONS,
    ArticleBody,
    ImportBody,
    RejectBody,
    ReviewBody,
    SearchBody,
    SuggestBody,
)
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, KnowledgeDesk
from agent_desk.web.routes import ALL, SUPERVISORS, Route, actor
from common.errors import DomainError

ARTICLE_PATH = "/api/knowledge/articles/{id}"
ROUTES = [
    Route("POST", "/api/knowledge/search", "kb_search", ALL,
          "Search the knowledge base (published articles in force, the province's and the "
          "asker's city's), best first; the words are not stored", SearchBody, answer=RESULTS),
    Route("POST", "/api/knowledge/suggest", "kb_suggest", ALL,
          "Articles for the case being written: its 事项 and its words (not stored)",
          SuggestBody, answer=RESULTS),
    Route("GET", "/api/knowledge/articles", "kb_articles", SUPERVISORS,
          "The editors' list of articles (working copies of their city)",
          query=("status", "matter", "city", "limit", "offset"), answer=LIST,
          query_spec=QUERY),
    Route("POST", "/api/knowledge/articles", "kb_create", SUPERVISORS,
          "Write a new article (a draft)", ArticleBody, answer=ARTICLE),
    Route("GET", ARTICLE_PATH, "kb_article", ALL,
          "An article: agents read its published version (a view is counted), editors also "
          "its working copy", answer=READ),
    Route("PUT", ARTICLE_PATH, "kb_update", SUPERVISORS,
          "Change the working copy (back to draft; the published version stays live)",
          ArticleBody, answer=ARTICLE),
    Route("POST", ARTICLE_PATH + "/submit", "kb_submit", SUPERVISORS,
          "Send the draft to review", ReviewBody, answer=ARTICLE),
    Route("POST", ARTICLE_PATH + "/approve", "kb_approve", SUPERVISORS,
          "Approve and publish it as a new version (not by one of its authors)", ReviewBody,
          answer=ARTICLE),
    Route("POST", ARTICLE_PATH + "/reject", "kb_reject", SUPERVISORS,
          "Send it back to draft with a note (not by one of its authors)", RejectBody,
          answer=ARTICLE),
    Route("POST", ARTICLE_PATH + "/withdraw", "kb_withdraw", SUPERVISORS,
          "Withdraw it: agents see it no more (its versions are kept)", answer=ARTICLE),
    Route("GET", ARTICLE_PATH + "/versions", "kb_versions", SUPERVISORS,
          "Every published version, oldest first", answer=VERSIONS),
    Route("POST", ARTICLE_PATH + "/helpful", "kb_helpful", ALL,
          "Mark the article helpful (once per user)", answer=HELPFUL),
    Route("GET", "/api/knowledge/export", "kb_export", ("admin",),
          "The published articles as a file (JSON, or Markdown with front matter)",
          query=("format",), query_spec=QUERY, ok=EXPORT_OK),
    Route("POST", "/api/knowledge/import", "kb_import", ("admin",),
          "Load articles from a file's text (drafts, or sent to review; by ref: the same "
          "file twice changes nothing)", ImportBody, answer=IMPORTED),
]


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31):
        raise DomainError("not_found", "no such article")
    return int(raw)


class KnowledgeHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    def _kb(self) -> KnowledgeDesk:
        if self.deps.knowledge is None:
            raise DomainError("not_available", "the knowledge base is not part of this service")
        return self.deps.knowledge

    def _today(self) -> date:
        return datetime.now(self.deps.cases.tz).date()

    async def h_kb_search(self, request: web.Request, sess: Session, body: SearchBody
                          ) -> web.StreamResponse:
        return web.json_response({"results": await self._kb().search(
            body.q, await self.deps.scope(sess), self._today(), matter=body.matter,
            limit=body.limit)})

    async def h_kb_suggest(self, request: web.Request, sess: Session, body: SuggestBody
                           ) -> web.StreamResponse:
        return web.json_response({"results": await self._kb().search(
            body.text, await self.deps.scope(sess), self._today(), matter=body.matter,
            limit=body.limit)})

    async def h_kb_articles(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        q = request.query
        return web.json_response(await self._kb().listing(
            await self.deps.scope(sess), status=q.get("status") or None,
            matter=q.get("matter") or None, city=q.get("city") or None,
            limit=int(q.get("limit", "50")), offset=int(q.get("offset", "0"))))

    async def h_kb_create(self, request: web.Request, sess: Session, body: ArticleBody
                          ) -> web.StreamResponse:
        article = await self._kb().create(body.model_dump(exclude={"revision"}),
                                          await self.deps.scope(sess), actor(sess, request))
        return web.json_response({"ok": True, "article": article})

    async def h_kb_article(self, request: web.Request, sess: Session, body: None
                           ) -> web.StreamResponse:
        return web.json_response(await self._kb().read(
            _id(request), await self.deps.scope(sess), self._today()))

    async def h_kb_update(self, request: web.Request, sess: Session, body: ArticleBody
                          ) -> web.StreamResponse:
        article = await self._kb().update(
            _id(request), body.model_dump(exclude={"revision", "ref"}),
            await self.deps.scope(sess), actor(sess, request), revision=body.revision)
        return web.json_response({"ok": True, "article": article})

    async def _act(self, request: web.Request, sess: Session, action: str, *,
                   revision: int | None = None, note: str = "") -> web.StreamResponse:
        article = await self._kb().act(_id(request), action, await self.deps.scope(sess),
                                       actor(sess, request), revision=revision, note=note)
        return web.json_response({"ok": True, "article": article})

    async def h_kb_submit(self, request: web.Request, sess: Session, body: ReviewBody
                          ) -> web.StreamResponse:
        return await self._act(request, sess, "submit", revision=body.revision)

    async def h_kb_approve(self, request: web.Request, sess: Session, body: ReviewBody
                           ) -> web.StreamResponse:
        return await self._act(request, sess, "approve", revision=body.revision)

    async def h_kb_reject(self, request: web.Request, sess: Session, body: RejectBody
                          ) -> web.StreamResponse:
        return await self._act(request, sess, "reject", revision=body.revision, note=body.note)

    async def h_kb_withdraw(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        return await self._act(request, sess, "withdraw")

    async def h_kb_versions(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        return web.json_response({"versions": await self._kb().versions(
            _id(request), await self.deps.scope(sess))})

    async def h_kb_helpful(self, request: web.Request, sess: Session, body: None
                           ) -> web.StreamResponse:
        out = await self._kb().mark_helpful(_id(request), await self.deps.scope(sess),
                                            self._today())
        return web.json_response({"ok": True, **out})

    async def h_kb_export(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        fmt = request.query.get("format") or "json"
        text, count = await self._kb().export_text(await self.deps.scope(sess),
                                                   actor(sess, request), fmt)
        ext, ctype = ("md", "text/markdown") if fmt == "markdown" else ("json",
                                                                        "application/json")
        return web.Response(text=text, content_type=ctype, charset="utf-8", headers={
            "Content-Disposition": f'attachment; filename="knowledge.{ext}"',
            "X-Articles": str(count)})

    async def h_kb_import(self, request: web.Request, sess: Session, body: ImportBody
                          ) -> web.StreamResponse:
        counts = await self._kb().import_text(body.content, body.format,
                                              await self.deps.scope(sess),
                                              actor(sess, request), submit=body.submit)
        return web.json_response({"ok": True, **counts})
