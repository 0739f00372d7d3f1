"""The search index on each database: which articles hold a search word, how many do, and
which articles an asker may see.

SQLite: the FTS5 table ``kb_fts`` (one column of space-joined words, unicode61, rowid = the
article id). PostgreSQL: ``kb_words.tsv``, the same words as a tsvector (lexemes as they are,
the way the 'simple' configuration keeps them, but independent of the server's locale) with a
GIN index. Both are made by the migration; the words (text.py) are letters and digits only, so
FTS5's tokenizer and the tsvector hold exactly the same words, and the same question finds
the same articles on both. ``kb_terms`` counts the articles of each word (kept here with every
write), the same on both.

Only membership and counts come from here; the ranking is ranking.py's (in Python).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desk.knowledge.models import KbIndex, KbTerm, KbWords

FTS = sa.table("kb_fts", sa.column("rowid", sa.Integer), sa.column("words", sa.Text))
# kb_words with its PostgreSQL column (not mapped: SQLite has no such column).
PG_WORDS = sa.table("kb_words", sa.column("article_id", sa.Integer),
                    sa.column("title_words", sa.Text), sa.column("body_words", sa.Text),
                    sa.column("tsv"))


def visible(city: str | None, today: date, *, all_cities: bool = False) -> Any:
    """The articles an asker of ``city`` may read on ``today``: in force, and province-wide
    or of that city (``all_cities``: a province user sees every city's)."""
    cond = [KbIndex.valid_from <= today,
            sa.or_(KbIndex.valid_to.is_(None), KbIndex.valid_to >= today)]
    if not all_cities:
        cond.append(KbIndex.city.is_(None) if city is None
                    else sa.or_(KbIndex.city.is_(None), KbIndex.city == city))
    return sa.and_(*cond)


def _pg(s: AsyncSession) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def _checked(word: str) -> str:
    # Words are letters and digits (text.normalise): nothing to quote in either syntax.
    if not word or not word.isalnum():
        raise ValueError(f"not a search word: {word!r}")
    return word


def _holding(s: AsyncSession, word: str, name: str, limit: int | None) -> Any:
    """SELECT of the ids of the articles holding ``word``; with a limit, the first by id
    (the same ones on both databases)."""
    w = _checked(word)
    if _pg(s):
        q = sa.select(PG_WORDS.c.article_id.label("id")).where(
            sa.text(f"kb_words.tsv @@ CAST(:{name} AS tsquery)").bindparams(
                **{name: f"'{w}'"}))
        key = PG_WORDS.c.article_id
    else:
        q = sa.select(FTS.c.rowid.label("id")).where(
            sa.text(f"kb_fts MATCH :{name}").bindparams(**{name: f'"{w}"'}))
        key = FTS.c.rowid
    return q if limit is None else q.order_by(key).limit(limit)


def _joined(s: AsyncSession, ids: Any) -> Any:
    """The ids as one comma-joined text: thousands of ids read as one value, not as rows."""
    if _pg(s):
        return sa.func.string_agg(sa.cast(ids, sa.Text), ",")
    return sa.func.group_concat(ids)


def _words(row: KbWords) -> list[str]:
    return sorted(set(row.title_words.split()) | set(row.body_words.split()))


async def _count(s: AsyncSession, change: Counter[str]) -> None:
    """kb_terms += change (a word's count in one statement: concurrent loads add up)."""
    rows = [{"word": w, "docs": n} for w, n in sorted(change.items()) if n]
    if not rows:
        return
    ins = (postgresql.insert if _pg(s) else sqlite.insert)(KbTerm)
    await s.execute(ins.on_conflict_do_update(
        index_elements=[KbTerm.word], set_={"docs": KbTerm.docs + ins.excluded.docs}), rows)


async def _forget(s: AsyncSession, ids: Sequence[int]) -> Counter[str]:
    """The index rows of these articles removed; the words they held (to count down)."""
    gone: Counter[str] = Counter()
    old = (await s.execute(sa.select(KbWords).where(KbWords.article_id.in_(ids)))
           ).scalars().all()
    for row in old:
        gone.update(_words(row))
    await s.execute(sa.delete(KbIndex).where(KbIndex.article_id.in_(ids)))
    await s.execute(sa.delete(KbWords).where(KbWords.article_id.in_(ids)))
    if not _pg(s):
        await s.execute(sa.delete(FTS).where(FTS.c.rowid.in_(ids)))
    return gone


async def put_many(s: AsyncSession, rows: Sequence[tuple[KbIndex, KbWords]]) -> None:
    """Published articles' live versions into the index (replacing the ones before), in
    bulk: one statement per table."""
    if not rows:
        return
    ids = [i.article_id for i, _ in rows]
    change: Counter[str] = Counter()
    gone = await _forget(s, ids)
    words = [_words(w) for _, w in rows]
    for ws in words:
        change.update(ws)
    change.subtract(gone)
    await s.execute(sa.insert(KbIndex), [
        {c.name: getattr(i, c.name) for c in KbIndex.__table__.c} for i, _ in rows])
    plain = [{"article_id": w.article_id, "title_words": w.title_words,
              "body_words": w.body_words} for _, w in rows]
    if _pg(s):
        await s.execute(sa.insert(PG_WORDS).values(
            article_id=sa.bindparam("article_id"), title_words=sa.bindparam("title_words"),
            body_words=sa.bindparam("body_words"), tsv=sa.func.array_to_tsvector(
                sa.bindparam("words", type_=postgresql.ARRAY(sa.Text)))),
            [{**p, "words": ws} for p, ws in zip(plain, words, strict=True)])
    else:
        await s.execute(sa.insert(KbWords), plain)
        await s.execute(sa.insert(FTS), [{"rowid": i, "words": " ".join(ws)}
                                         for i, ws in zip(ids, words, strict=True)])
    await _count(s, change)


async def analyse(s: AsyncSession) -> None:
    """The planner told the index's new sizes (after a bulk load: before the database's own
    statistics catch up, it would guess a few rows and pick slow plans)."""
    if _pg(s):
        await s.execute(sa.text("ANALYZE kb_index, kb_words, kb_terms"))
    else:
        await s.execute(sa.text("ANALYZE kb_index"))


async def drop(s: AsyncSession, article_id: int) -> None:
    """Out of the index (withdrawn): agents find it no more."""
    gone = await _forget(s, [article_id])
    await _count(s, Counter({w: -n for w, n in gone.items()}))


async def docs_of(s: AsyncSession, words: Iterable[str]) -> dict[str, int]:
    """In how many indexed articles each word is (0: none)."""
    ws = sorted(set(words))
    found: dict[str, int] = {}
    if ws:
        for word, docs in (await s.execute(sa.select(KbTerm.word, KbTerm.docs)
                                           .where(KbTerm.word.in_(ws)))).all():
            found[word] = int(docs)
    return {w: found.get(w, 0) for w in ws}


async def holding(s: AsyncSession, words: Mapping[str, int | None]) -> dict[str, list[int]]:
    """For each word, the articles holding it (visible or not): all of them, or the first
    ``limit`` by id (the words' limits as given). One query."""
    if not words:
        return {}
    order = sorted(words)
    parts = [_holding(s, w, f"kbq{i}", words[w]).subquery() for i, w in enumerate(order)]

    q = sa.union_all(*(sa.select(sa.literal(i).label("w"), _joined(s, p.c.id).label("ids"))
                       .select_from(p) for i, p in enumerate(parts)))
    out: dict[str, list[int]] = {w: [] for w in order}
    for i, ids in (await s.execute(q)).all():
        if ids:
            out[order[i]] = [int(x) for x in str(ids).split(",")]
    return out


async def visible_ids(s: AsyncSession, where: Any) -> list[int]:
    """The ids of the visible articles (from the covering index)."""
    ids = sa.select(KbIndex.article_id.label("id")).where(where).subquery()
    joined = (await s.execute(sa.select(_joined(s, ids.c.id)))).scalar()
    return [int(x) for x in str(joined).split(",")] if joined else []


async def stats(s: AsyncSession) -> tuple[int, int]:
    """How many indexed articles, and their summed weighted length."""
    row = (await s.execute(sa.select(sa.func.count(), sa.func.coalesce(
        sa.func.sum(KbIndex.length), 0)))).one()
    return int(row[0]), int(row[1])
