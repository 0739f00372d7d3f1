"""The knowledge base (知识库): articles written by supervisors and admins, reviewed by another
editor before agents read them, every publication kept as a version; search and suggestions
for agents; "helpful" marks and views counted; import and export.

Every change is written with its audit entry in the same transaction (agent_desk/audit.py;
``knowledge.*`` actions: the article's ref and version, never its text). What agents type to
search, and the case-form words suggestions are computed from, are neither stored nor logged.

Search (ranking.py for the order): the question's search words (text.py); in how many
articles each is (kb_terms); the articles holding the rarest ones (index.py: the database's
full-text index, within a budget), those the asker may see; the best candidates read in full
and scored in Python, so SQLite and PostgreSQL agree.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.access import Scope
from agent_desk.audit import Actor, Audit
from agent_desk.knowledge import formats, index, ranking, workflow
from agent_desk.knowledge.formats import ArticleDoc
from agent_desk.knowledge.models import KbArticle, KbFeedback, KbIndex, KbVersion, KbWords
from agent_desk.knowledge.text import Segmenter, expanded, joined
from agent_desk.knowledge.workflow import Editor, decide, may_touch
from common.errors import DomainError

# Articles read per question to pick candidates: the rarest words' first, as long as they
# fit (the rarest always, its first BUDGET by id); common words still count in the score.
BUDGET = 20_000
SNIPPET = 120
FIELDS = ("title", "body", "matter", "city", "valid_from", "valid_to")
STATS_TTL_S = 30.0
ANALYSE_AFTER = 1000  # articles published by one load: the planner's statistics refreshed
# A matter's display name ("占道经营"), if the taxonomy knows the code.
MatterNames = Callable[[str], str | None]


def _no_names(code: str) -> str | None:
    return None


def _iso(v: date | datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


READERS = ("agent", "supervisor", "admin")
# At most this many distinct words of a question are looked up (a whole case text may be
# given for suggestions): the longer words first, they say the most.
MAX_WORDS = 32
LONG_TEXT = 400


def editor_of(scope: Scope) -> Editor:
    """Who edits: the console user's role and city (agent_desk/access.py Scope; None: the
    province)."""
    return Editor(scope.user, scope.role, scope.city)


def read_plan(df: Mapping[str, int], budget: int | None = None) -> dict[str, int | None]:
    """Which words' articles to read (None: all of them; a number: the first so many by
    id): the rarest first while they fit the budget, the rarest always."""
    budget = BUDGET if budget is None else budget
    plan: dict[str, int | None] = {}
    spent = 0
    for w in sorted((w for w in df if df[w] > 0), key=lambda w: (df[w], w)):
        if not plan:
            plan[w] = None if df[w] <= budget else budget
            spent = min(df[w], budget)
        elif spent + df[w] <= budget:
            plan[w] = None
            spent += df[w]
    return plan


def question_words(words: Sequence[str], limit: int = MAX_WORDS) -> list[str]:
    first = {w: i for i, w in reversed(list(enumerate(words)))}
    keep = set(sorted(first, key=lambda w: (-len(w), first[w]))[:limit])
    return [w for w in words if w in keep]


class KnowledgeBase:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *,
                 cities: Iterable[str] = (), matter_names: MatterNames = _no_names,
                 segmenter: Segmenter | None = None):
        self.sessions = sessions
        # The configuration's cities: an article's city must be one of them.
        self.cities = frozenset(cities)
        self.matter_names = matter_names
        self.words = segmenter or Segmenter.shared()
        self._figures_at: tuple[float, int, int] | None = None
        self._seen: dict[tuple[str | None, bool, date], tuple[float, frozenset[int]]] = {}

    # -- editing -------------------------------------------------------------------------------

    def _check_city(self, city: str | None) -> None:
        if city is not None and self.cities and city not in self.cities:
            raise DomainError("invalid", f"city: not a city of the configuration: {city!r}")

    async def _article(self, s: AsyncSession, article_id: int, *, lock: bool = False
                       ) -> KbArticle:
        q = sa.select(KbArticle).where(KbArticle.id == article_id)
        a = (await s.execute(q.with_for_update() if lock else q)).scalar_one_or_none()
        if a is None:
            raise DomainError("not_found", f"no article {article_id}")
        return a

    @staticmethod
    def _stale(a: KbArticle, revision: int | None) -> None:
        if revision is not None and revision != a.revision:
            raise DomainError("stale", f"the article changed meanwhile (revision {a.revision}, "
                                       f"you had {revision}): reload it")

    async def create(self, fields: Mapping[str, Any], scope: Scope, actor: Actor
                     ) -> dict[str, Any]:
        """A new draft from an editor's fields (formats.checked); no ``ref``: "kb-<id>"."""
        raw = dict(fields)
        ref = str(raw.pop("ref", None) or "")
        doc = formats.checked({**raw, "ref": ref or "new"})
        editor = editor_of(scope)
        decide("create", None, editor, cities=[doc.city])
        self._check_city(doc.city)
        try:
            async with self.sessions() as s, s.begin():
                if ref and await self._ref_taken(s, ref):
                    raise DomainError("exists", f"an article {ref} exists already")
                a = KbArticle(ref=ref or f"new-{secrets.token_hex(8)}", status="draft",
                              title=doc.title, body=doc.body, matter=doc.matter,
                              city=doc.city, valid_from=doc.valid_from,
                              valid_to=doc.valid_to, revision=1, authors=[editor.user],
                              created_by=editor.user, updated_by=editor.user, versions=0,
                              views=0, helpful=0, review_note="")
                s.add(a)
                await s.flush()
                if not ref:  # an imported file may hold kb-<this id> already
                    taken = await self._ref_taken(s, f"kb-{a.id}")
                    a.ref = f"kb-{a.id}-{secrets.token_hex(2)}" if taken else f"kb-{a.id}"
                Audit.add(s, actor, "knowledge.create", None, {"article": a.ref})
                return self._working(a)
        except IntegrityError:  # the same ref made meanwhile (an import)
            raise DomainError("exists", f"an article {ref} exists already") from None

    @staticmethod
    async def _ref_taken(s: AsyncSession, ref: str) -> bool:
        return (await s.execute(sa.select(KbArticle.id).where(KbArticle.ref == ref))
                ).first() is not None

    async def update(self, article_id: int, fields: Mapping[str, Any], scope: Scope,
                     actor: Actor, *, revision: int | None = None) -> dict[str, Any]:
        """The working copy replaced by the editor's fields: back to draft (a published
        version stays live meanwhile). ``revision``: the one the editor changed."""
        editor = editor_of(scope)
        async with self.sessions() as s, s.begin():
            a = await self._article(s, article_id, lock=True)
            doc = formats.checked({**fields, "ref": a.ref})
            decide("edit", a.status, editor, cities=[a.city, doc.city])
            self._check_city(doc.city)
            self._stale(a, revision)
            changed = [f for f in FIELDS if getattr(a, f) != getattr(doc, f)]
            if not changed and a.status == "draft":
                return self._working(a)
            for f in changed:
                setattr(a, f, getattr(doc, f))
            self._touch(a, editor.user, "draft")
            Audit.add(s, actor, "knowledge.edit", None,
                      {"article": a.ref, "fields": changed, "revision": a.revision})
            return self._working(a)

    async def act(self, article_id: int, action: str, scope: Scope, actor: Actor, *,
                  revision: int | None = None, note: str = "") -> dict[str, Any]:
        """submit, approve, reject (with a note) or withdraw."""
        editor = editor_of(scope)
        if action == "submit":
            return await self.submit(article_id, editor, actor, revision=revision)
        if action == "approve":
            return await self.approve(article_id, editor, actor, revision=revision)
        if action == "reject":
            return await self.reject(article_id, editor, actor, note=note, revision=revision)
        if action == "withdraw":
            return await self.withdraw(article_id, editor, actor)
        raise DomainError("invalid", f"unknown action {action!r}")

    @staticmethod
    def _touch(a: KbArticle, user: str, status: str, *, author: bool = True) -> None:
        a.status = status
        a.revision += 1
        a.updated_by = user
        if author and user not in a.authors:
            a.authors = [*a.authors, user]

    async def submit(self, article_id: int, editor: Editor, actor: Actor, *,
                     revision: int | None = None) -> dict[str, Any]:
        async with self.sessions() as s, s.begin():
            a = await self._article(s, article_id, lock=True)
            status = decide("submit", a.status, editor, cities=[a.city])
            self._stale(a, revision)
            self._touch(a, editor.user, status)  # who sends it vouches for it: not a reviewer
            a.submitted_by, a.review_note = editor.user, ""
            Audit.add(s, actor, "knowledge.submit", None,
                      {"article": a.ref, "revision": a.revision})
            return self._working(a)

    async def approve(self, article_id: int, editor: Editor, actor: Actor, *,
                      revision: int | None = None) -> dict[str, Any]:
        """Publish the working copy as a new version: agents read it from now on."""
        async with self.sessions() as s, s.begin():
            a = await self._article(s, article_id, lock=True)
            decide("approve", a.status, editor, authors=a.authors, cities=[a.city])
            self._stale(a, revision)
            self._publish(s, a, editor.user)
            await s.flush()
            await self._index(s, [a])
            Audit.add(s, actor, "knowledge.approve", None,
                      {"article": a.ref, "version": a.versions})
            out = self._working(a)
        self._forget_figures()
        return out

    def _publish(self, s: AsyncSession, a: KbArticle, approver: str) -> None:
        """The working copy as a new version (its search words: ``_index`` after the flush
        that gives a new article its id)."""
        a.versions += 1
        a.live_version = a.versions
        s.add(KbVersion(article_id=a.id, version=a.versions, title=a.title, body=a.body,
                        matter=a.matter, city=a.city, valid_from=a.valid_from,
                        valid_to=a.valid_to, authors=list(a.authors), approved_by=approver))
        self._touch(a, approver, "published", author=False)
        a.authors, a.submitted_by, a.review_note = [], None, ""

    async def _index(self, s: AsyncSession, published: Sequence[KbArticle]) -> None:
        """The published articles' live versions into the search index (segmented in a
        thread: a bulk load's batch takes a moment)."""
        if not published:
            return
        await self.words.ready()
        texts = [(a.title, a.body) for a in published]
        words = await asyncio.to_thread(
            lambda: [(self.words.words(t), self.words.words(b)) for t, b in texts])
        await index.put_many(s, [(KbIndex(
            article_id=a.id, version=a.versions, ref=a.ref, matter=a.matter, city=a.city,
            valid_from=a.valid_from, valid_to=a.valid_to, length=ranking.length(t, b)),
            KbWords(article_id=a.id, title_words=joined(t), body_words=joined(b)))
            for a, (t, b) in zip(published, words, strict=True)])

    async def reject(self, article_id: int, editor: Editor, actor: Actor, *, note: str = "",
                     revision: int | None = None) -> dict[str, Any]:
        async with self.sessions() as s, s.begin():
            a = await self._article(s, article_id, lock=True)
            status = decide("reject", a.status, editor, authors=a.authors, cities=[a.city])
            self._stale(a, revision)
            self._touch(a, editor.user, status, author=False)
            a.review_note = note
            Audit.add(s, actor, "knowledge.reject", None,
                      {"article": a.ref, "revision": a.revision})
            return self._working(a)

    async def withdraw(self, article_id: int, editor: Editor, actor: Actor) -> dict[str, Any]:
        """Agents see it no more (its versions stay)."""
        async with self.sessions() as s, s.begin():
            a = await self._article(s, article_id, lock=True)
            status = decide("withdraw", a.status, editor, cities=[a.city])
            was = a.live_version
            self._touch(a, editor.user, status, author=False)
            a.live_version = None
            await index.drop(s, a.id)
            Audit.add(s, actor, "knowledge.withdraw", None, {"article": a.ref, "version": was})
            out = self._working(a)
        self._forget_figures()
        return out

    # -- reading -------------------------------------------------------------------------------

    def _working(self, a: KbArticle) -> dict[str, Any]:
        return {"id": a.id, "ref": a.ref, "status": a.status, "title": a.title,
                "body": a.body, "matter": a.matter,
                "matter_name": self.matter_names(a.matter) if a.matter else None,
                "city": a.city, "valid_from": _iso(a.valid_from),
                "valid_to": _iso(a.valid_to), "revision": a.revision,
                "authors": list(a.authors), "submitted_by": a.submitted_by,
                "review_note": a.review_note, "versions": a.versions,
                "live_version": a.live_version, "views": a.views, "helpful": a.helpful,
                "created_by": a.created_by, "created_at": _iso(a.created_at),
                "updated_by": a.updated_by, "updated_at": _iso(a.updated_at)}

    def _published(self, a: KbArticle, v: KbVersion, helped: bool) -> dict[str, Any]:
        return {"id": a.id, "ref": a.ref, "version": v.version, "title": v.title,
                "body": v.body, "matter": v.matter,
                "matter_name": self.matter_names(v.matter) if v.matter else None,
                "city": v.city, "valid_from": _iso(v.valid_from), "valid_to": _iso(v.valid_to),
                "published_at": _iso(v.published_at), "views": a.views,
                "helpful": a.helpful, "helped": helped}

    async def _live(self, s: AsyncSession, article_id: int, reader: Scope, today: date
                    ) -> tuple[KbArticle, KbVersion]:
        """The article as an agent may read it: published, in force, of the province or the
        reader's city (anything else: no such article)."""
        row = (await s.execute(
            sa.select(KbArticle, KbVersion)
            .join(KbIndex, KbIndex.article_id == KbArticle.id)
            .join(KbVersion, sa.and_(KbVersion.article_id == KbArticle.id,
                                     KbVersion.version == KbIndex.version))
            .where(KbArticle.id == article_id,
                   index.visible(reader.city, today, all_cities=self._all(reader))))).first()
        if row is None:
            raise DomainError("not_found", f"no article {article_id}")
        return row[0], row[1]

    @staticmethod
    def _reads(reader: Scope, city: str | None) -> bool:
        """An editor reads the articles of their city and the province-wide ones (and edits
        only the former: workflow.may_touch)."""
        return reader.role in workflow.EDITORS and (
            reader.city is None or city is None or city == reader.city)

    @staticmethod
    def _all(reader: Scope) -> bool:
        # A province editor reads every city's; a province agent (no city) the province's.
        return reader.city is None and reader.role in workflow.EDITORS

    async def read(self, article_id: int, reader: Scope, today: date) -> dict[str, Any]:
        """An agent's read counts as a view. Editors get the working copy too."""
        async with self.sessions() as s, s.begin():
            doc: dict[str, Any] = {}
            if reader.role == "agent":
                a, v = await self._live(s, article_id, reader, today)
                await self._count(s, a, "views")
            else:
                a = await self._article(s, article_id)
                if not self._reads(reader, a.city):
                    raise DomainError("not_found", f"no article {article_id}")
                doc["working"] = self._working(a)
                v = None
                if a.live_version is not None:
                    v = (await s.execute(sa.select(KbVersion).where(
                        KbVersion.article_id == a.id,
                        KbVersion.version == a.live_version))).scalar_one()
            helped = (await s.execute(sa.select(KbFeedback.id).where(
                KbFeedback.article_id == a.id, KbFeedback.username == reader.user))
                      ).first() is not None
            doc["published"] = self._published(a, v, helped) if v is not None else None
            return doc

    @staticmethod
    async def _count(s: AsyncSession, a: KbArticle, column: str) -> None:
        """One more, in SQL (concurrent readers each count), then the row's new figure."""
        await s.execute(sa.update(KbArticle).where(KbArticle.id == a.id)
                        .values({column: getattr(KbArticle, column) + 1})
                        .execution_options(synchronize_session=False))
        await s.refresh(a, [column])

    async def versions(self, article_id: int, reader: Scope) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            a = await self._article(s, article_id)
            if not self._reads(reader, a.city):
                raise DomainError("not_found", f"no article {article_id}")
            rows = (await s.execute(sa.select(KbVersion).where(KbVersion.article_id == a.id)
                                    .order_by(KbVersion.version))).scalars().all()
        return [{"version": v.version, "title": v.title, "body": v.body, "matter": v.matter,
                 "city": v.city, "valid_from": _iso(v.valid_from),
                 "valid_to": _iso(v.valid_to), "authors": list(v.authors),
                 "approved_by": v.approved_by, "published_at": _iso(v.published_at),
                 "live": v.version == a.live_version} for v in rows]

    async def listing(self, reader: Scope, *, status: str | None = None,
                      matter: str | None = None, city: str | None = None, limit: int = 50,
                      offset: int = 0) -> dict[str, Any]:
        """The editors' list: working copies of their city (the province: all), newest
        change first."""
        q = sa.select(KbArticle)
        if reader.city is not None:
            q = q.where(KbArticle.city == reader.city)
        if status:
            q = q.where(KbArticle.status == status)
        if matter:
            q = q.where(sa.or_(KbArticle.matter == matter,
                               KbArticle.matter.startswith(matter + ".", autoescape=True)))
        if city:
            q = q.where(KbArticle.city.is_(None) if city == "province"
                        else KbArticle.city == city)
        async with self.sessions() as s:
            total = (await s.execute(sa.select(sa.func.count()).select_from(q.subquery()))
                     ).scalar_one()
            rows = (await s.execute(q.order_by(KbArticle.updated_at.desc(), KbArticle.id.desc())
                                    .limit(limit).offset(offset))).scalars().all()
        return {"total": int(total), "articles": [
            {k: v for k, v in self._working(a).items() if k != "body"} for a in rows]}

    async def mark_helpful(self, article_id: int, reader: Scope, today: date
                           ) -> dict[str, Any]:
        """Once per article and user (a second mark changes nothing)."""
        async with self.sessions() as s, s.begin():
            a, v = await self._live(s, article_id, reader, today)
            if (await s.execute(sa.select(KbFeedback.id).where(
                    KbFeedback.article_id == a.id, KbFeedback.username == reader.user))
                    ).first() is None:
                s.add(KbFeedback(article_id=a.id, username=reader.user, version=v.version))
                await self._count(s, a, "helpful")
            return {"id": a.id, "helpful": a.helpful, "helped": True}

    # -- search --------------------------------------------------------------------------------

    async def search(self, text: str, reader: Scope, today: date, *, matter: str = "",
                     limit: int = 10) -> list[dict[str, Any]]:
        """The best published articles in force for the reader's question (and the 事项 on
        the case form), best first. ``text`` is used here and forgotten."""
        if reader.role not in READERS:
            return []
        await self.words.ready()
        # A whole case text takes jieba a few ms: not on the event loop.
        segmented = (self.words.words(text) if len(text) < LONG_TEXT
                     else await asyncio.to_thread(self.words.words, text))
        words = question_words(expanded(segmented))
        if not words and not matter:
            return []
        ask = ranking.Ask(words, reader.city, matter, today)
        everyone = self._all(reader)
        where = index.visible(reader.city, today, all_cities=everyone)
        async with self.sessions() as s:
            docs, total_length = await self._figures(s)
            seen = await self._visible(s, (reader.city, everyone, today), where)
            if not docs or not seen:
                return []
            df = await index.docs_of(s, words)
            coll = ranking.Collection(docs, total_length / docs, df)
            raw = await index.holding(s, read_plan(df))
            matches = {w: [i for i in ids if i in seen] for w, ids in raw.items()}
            family = await self._matter_family(s, matter, where) if matter else []
            ids = ranking.shortlist(matches, coll, family)
            if not ids:
                return []
            candidates = await self._docs(s, ids, where)
            best = ranking.rank(ask, candidates, coll, limit)
            return await self._results(s, best, words)

    async def _figures(self, s: AsyncSession) -> tuple[int, int]:
        """The index's size and summed length (kept a few seconds; a change in this process
        forgets it at once)."""
        now = time.monotonic()
        if self._figures_at is not None and now - self._figures_at[0] < STATS_TTL_S:
            return self._figures_at[1], self._figures_at[2]
        docs, total = await index.stats(s)
        self._figures_at = (now, docs, total)
        return docs, total

    async def _visible(self, s: AsyncSession, key: tuple[str | None, bool, date], where: Any
                       ) -> frozenset[int]:
        """The ids an asker (city, province editor, day) may see, kept like the figures."""
        now = time.monotonic()
        hit = self._seen.get(key)
        if hit is not None and now - hit[0] < STATS_TTL_S:
            return hit[1]
        ids = frozenset(await index.visible_ids(s, where))
        if len(self._seen) >= 32:
            self._seen.clear()
        self._seen[key] = (now, ids)
        return ids

    def _forget_figures(self) -> None:
        self._figures_at = None
        self._seen.clear()

    async def _matter_family(self, s: AsyncSession, matter: str, where: Any) -> list[int]:
        """The visible articles of the matter and of its siblings (suggestions follow the
        事项 even before anything is typed)."""
        family = ranking.parent(matter) or matter
        q = sa.select(KbIndex.article_id).where(where, sa.or_(
            KbIndex.matter == matter, KbIndex.matter == family,
            KbIndex.matter.startswith(family + ".", autoescape=True))) \
            .order_by(KbIndex.article_id).limit(ranking.SHORTLIST)
        return list((await s.execute(q)).scalars())

    async def _docs(self, s: AsyncSession, ids: Sequence[int], where: Any
                    ) -> list[ranking.Doc]:
        """The candidates' words, those still visible (the kept visible set may be a few
        seconds old)."""
        out = []
        for chunk in range(0, len(ids), 500):
            rows = (await s.execute(
                sa.select(KbIndex.article_id, KbIndex.ref, KbWords.title_words,
                          KbWords.body_words, KbIndex.matter, KbIndex.city,
                          KbIndex.valid_from, KbArticle.helpful, KbIndex.length)
                .join(KbWords, KbWords.article_id == KbIndex.article_id)
                .join(KbArticle, KbArticle.id == KbIndex.article_id)
                .where(KbIndex.article_id.in_(ids[chunk:chunk + 500]), where))).all()
            out += [ranking.Doc(*r) for r in rows]
        return out

    async def _results(self, s: AsyncSession, best: list[tuple[float, ranking.Doc]],
                       words: Sequence[str]) -> list[dict[str, Any]]:
        if not best:
            return []
        ids = [d.article_id for _, d in best]
        rows = {a.id: (a, v) for a, v in (await s.execute(
            sa.select(KbArticle, KbVersion)
            .join(KbIndex, KbIndex.article_id == KbArticle.id)
            .join(KbVersion, sa.and_(KbVersion.article_id == KbArticle.id,
                                     KbVersion.version == KbIndex.version))
            .where(KbArticle.id.in_(ids)))).all()}
        out = []
        for score, d in best:
            a, v = rows[d.article_id]
            out.append({"id": a.id, "ref": a.ref, "version": v.version, "title": v.title,
                        "snippet": snippet(v.body, words), "matter": v.matter,
                        "matter_name": self.matter_names(v.matter) if v.matter else None,
                        "city": v.city, "valid_from": _iso(v.valid_from),
                        "valid_to": _iso(v.valid_to), "score": round(score, 4),
                        "views": a.views, "helpful": a.helpful})
        return out

    # -- import and export -----------------------------------------------------------------------

    async def export(self, reader: Scope, actor: Actor) -> list[ArticleDoc]:
        """The published version of every article the reader may edit, by ref."""
        q = (sa.select(KbArticle.ref, KbVersion)
             .join(KbVersion, sa.and_(KbVersion.article_id == KbArticle.id,
                                      KbVersion.version == KbArticle.live_version))
             .order_by(KbArticle.ref))
        if reader.city is not None:
            q = q.where(KbArticle.city == reader.city)
        async with self.sessions() as s, s.begin():
            rows = (await s.execute(q)).all()
            Audit.add(s, actor, "knowledge.export", None, {"articles": len(rows)})
        return [ArticleDoc(ref, v.title, v.body, v.matter, v.city, v.valid_from, v.valid_to)
                for ref, v in rows]

    async def export_text(self, scope: Scope, actor: Actor, fmt: str) -> tuple[str, int]:
        """The export as a file's text (formats.py), and how many articles it holds."""
        docs = await self.export(scope, actor)
        return formats.write(docs, fmt), len(docs)

    async def import_text(self, text: str, fmt: str, scope: Scope, actor: Actor, *,
                          submit: bool = False) -> dict[str, int]:
        """A file from the console: drafts, or sent to review (never published at once)."""
        return await self.load(formats.read(text, fmt), editor_of(scope), actor,
                               submit=submit)

    async def load(self, docs: Sequence[ArticleDoc], editor: Editor, actor: Actor, *,
                   publish: bool = False, submit: bool = False, batch: int = 200
                   ) -> dict[str, int]:
        """Articles from a file, by ref: a new ref makes an article, a known one a new working
        copy when its text differs (the same file twice changes nothing). ``submit``: sent to
        review; ``publish``: published at once by ``editor`` (the command line's bulk load,
        no second pair of eyes: the web import cannot do it)."""
        for d in docs:
            self._check_city(d.city)
            if not may_touch(editor, d.city):
                raise DomainError("forbidden", f"{d.ref}: outside your city")
        counts = {"created": 0, "changed": 0, "unchanged": 0, "published": 0}
        for start in range(0, len(docs), batch):
            part = docs[start:start + batch]
            async with self.sessions() as s, s.begin():
                known = {a.ref: a for a in (await s.execute(
                    sa.select(KbArticle).where(KbArticle.ref.in_([d.ref for d in part]))
                    .with_for_update())).scalars()}
                chosen = [a for d in part if (a := self._load_one(
                    s, d, known.get(d.ref), editor, submit or publish, counts)) is not None]
                await s.flush()  # the new articles' ids
                if publish:
                    for a in chosen:
                        self._publish(s, a, editor.user)
                    await s.flush()
                    await self._index(s, chosen)
                    counts["published"] += len(chosen)
                elif submit:
                    for a in chosen:
                        self._touch(a, editor.user, "in_review")
                        a.submitted_by = editor.user
                Audit.add(s, actor, "knowledge.import", None, {
                    "articles": len(part), "publish": publish, "submit": submit,
                    "refs": [d.ref for d in part][:20]})
        if publish and counts["published"] >= ANALYSE_AFTER:
            async with self.sessions() as s, s.begin():
                await index.analyse(s)
        self._forget_figures()
        return counts

    def _load_one(self, s: AsyncSession, d: ArticleDoc, a: KbArticle | None, editor: Editor,
                  onward: bool, counts: dict[str, int]) -> KbArticle | None:
        """The file's article as a working copy; returned when it goes on (to review or
        published): new, changed, or an unchanged one not yet there."""
        if a is None:
            a = KbArticle(ref=d.ref, status="draft", revision=1, authors=[editor.user],
                          created_by=editor.user, updated_by=editor.user, versions=0,
                          views=0, helpful=0, review_note="",
                          **{f: getattr(d, f) for f in FIELDS})
            s.add(a)
            counts["created"] += 1
            return a
        if not may_touch(editor, a.city):
            raise DomainError("forbidden", f"{d.ref}: outside your city")
        changed = [f for f in FIELDS if getattr(a, f) != getattr(d, f)]
        if not changed and (a.status == "published" or not onward):
            counts["unchanged"] += 1
            return None
        if changed:
            for f in changed:
                setattr(a, f, getattr(d, f))
            self._touch(a, editor.user, "draft")
            counts["changed"] += 1
        else:
            counts["unchanged"] += 1
        return a


def snippet(body: str, words: Sequence[str], size: int = SNIPPET) -> str:
    """A piece of the body around the first of the question's longest words it holds."""
    text = " ".join(body.split())
    at = -1
    low = text.lower()
    for w in sorted(set(words), key=lambda w: (-len(w), w)):
        at = low.find(w)
        if at >= 0:
            break
    start = max(0, at - size // 4) if at >= 0 else 0
    piece = text[start:start + size]
    return ("…" if start else "") + piece + ("…" if start + size < len(text) else "")


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())
