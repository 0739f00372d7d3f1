"""The search index on each database: which visible articles hold a search word.

SQLite: the FTS5 table ``kb_fts`` (one column of space-joined words, unicode61, rowid = the
article id). PostgreSQL: ``kb_index.tsv``, the same words as a tsvector (lexemes as they are,
the way the 'simple' configuration keeps them, but independent of the server's locale) with a
GIN index. Both are made by the migration; the words (text.py) are letters and digits only, so
FTS5's tokenizer and the tsvector hold exactly the same words, and the same question finds
the same articles on both.

Only membership comes from here; the ranking is ranking.py's (in Python, the same for both).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desk.knowledge.models import KbIndex

FTS = sa.table("kb_fts", sa.column("rowid", sa.Integer), sa.column("words", sa.Text))


def visible(city: str | None, today: date, *, all_cities: bool = False) -> Any:
    """The articles an asker of ``city`` may read on ``today``: in force, and province-wide
    or of that city (``all_cities``: a province user sees every city's)."""
    cond = [KbIndex.valid_from <= today,
            sa.or_(KbIndex.valid_to.is_(None), KbIndex.valid_to >= today)]
    if not all_cities:
        cond.append(KbIndex.city.is_(None) if city is None
                    else sa.or_(KbIndex.city.is_(None), KbIndex.city == city))
    return sa.and_(*cond)


def _dialect(s: AsyncSession) -> str:
    return s.get_bind().dialect.name


def _checked(word: str) -> str:
    # Words are letters and digits (text.normalise): nothing to quote in either syntax.
    if not word or not word.isalnum():
        raise ValueError(f"not a search word: {word!r}")
    return word


def _match(s: AsyncSession, word: str, name: str = "kbq") -> Any:
    w = _checked(word)
    if _dialect(s) == "postgresql":
        return sa.text(f"kb_index.tsv @@ CAST(:{name} AS tsquery)").bindparams(
            **{name: f"'{w}'"})
    return KbIndex.article_id.in_(sa.select(FTS.c.rowid).where(
        sa.text(f"kb_fts MATCH :{name}").bindparams(**{name: f'"{w}"'})))


# kb_index with its PostgreSQL column (not mapped: SQLite has no such column).
PG_INDEX = sa.table("kb_index", *(sa.column(c.name, c.type) for c in KbIndex.__table__.c),
                    sa.column("tsv"))


async def put_many(s: AsyncSession, rows: Sequence[KbIndex]) -> None:
    """Published articles' live versions into the index (replacing the ones before), in
    bulk: one statement per table."""
    if not rows:
        return
    ids = [r.article_id for r in rows]
    await s.execute(sa.delete(KbIndex).where(KbIndex.article_id.in_(ids)))
    values = [{c.name: getattr(r, c.name) for c in KbIndex.__table__.c} for r in rows]
    words = [sorted(set(r.title_words.split()) | set(r.body_words.split())) for r in rows]
    if _dialect(s) == "postgresql":
        stmt = sa.insert(PG_INDEX).values(
            {**{c.name: sa.bindparam(c.name) for c in KbIndex.__table__.c},
             "tsv": sa.func.array_to_tsvector(sa.bindparam("words", type_=postgresql.ARRAY(
                 sa.Text)))})
        await s.execute(stmt, [{**v, "words": w} for v, w in zip(values, words, strict=True)])
    else:
        await s.execute(sa.insert(KbIndex), values)
        await s.execute(sa.delete(FTS).where(FTS.c.rowid.in_(ids)))
        await s.execute(sa.insert(FTS), [{"rowid": i, "words": " ".join(w)}
                                         for i, w in zip(ids, words, strict=True)])


async def drop(s: AsyncSession, article_id: int) -> None:
    """Out of the index (withdrawn): agents find it no more."""
    await s.execute(sa.delete(KbIndex).where(KbIndex.article_id == article_id))
    if _dialect(s) != "postgresql":
        await s.execute(sa.delete(FTS).where(FTS.c.rowid == article_id))


async def holding(s: AsyncSession, words: Sequence[str], where: Any, cap: int
                  ) -> dict[str, list[int]]:
    """For each word, the visible articles holding it: at most ``cap`` + 1 of them (in no
    order: more than ``cap`` means a word too common to pick candidates by). One query."""
    if not words:
        return {}
    parts = [sa.select(sa.literal(i).label("w"), KbIndex.article_id)
             .where(_match(s, w, f"kbq{i}"), where).limit(cap + 1).subquery()
             for i, w in enumerate(words)]
    q = sa.union_all(*(sa.select(p.c.w, p.c.article_id) for p in parts))
    out: dict[str, list[int]] = {w: [] for w in words}
    for i, article_id in (await s.execute(q)).all():
        out[words[i]].append(article_id)
    return out


async def first_holding(s: AsyncSession, word: str, where: Any, limit: int) -> list[int]:
    """The first ``limit`` visible articles by id holding ``word`` (when every word of the
    question is common)."""
    q = sa.select(KbIndex.article_id).where(_match(s, word), where) \
        .order_by(KbIndex.article_id).limit(limit)
    return list((await s.execute(q)).scalars())


async def stats(s: AsyncSession, where: Any) -> tuple[int, int]:
    """How many visible articles, and their summed weighted length."""
    row = (await s.execute(sa.select(sa.func.count(), sa.func.coalesce(
        sa.func.sum(KbIndex.length), 0)).where(where))).one()
    return int(row[0]), int(row[1])
