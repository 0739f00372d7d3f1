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


def _match(s: AsyncSession, word: str) -> Any:
    w = _checked(word)
    if _dialect(s) == "postgresql":
        return sa.text("kb_index.tsv @@ CAST(:kbq AS tsquery)").bindparams(kbq=f"'{w}'")
    return KbIndex.article_id.in_(sa.select(FTS.c.rowid).where(
        sa.text("kb_fts MATCH :kbq").bindparams(kbq=f'"{w}"')))


async def put(s: AsyncSession, row: KbIndex) -> None:
    """The article's live version into the index (replacing the one before)."""
    await s.merge(row)
    await s.flush()
    words = sorted(set(row.title_words.split()) | set(row.body_words.split()))
    if _dialect(s) == "postgresql":
        await s.execute(sa.text(
            "UPDATE kb_index SET tsv = array_to_tsvector(:words) WHERE article_id = :id"
        ).bindparams(sa.bindparam("words", type_=postgresql.ARRAY(sa.Text))),
            {"words": words, "id": row.article_id})
    else:
        await s.execute(sa.delete(FTS).where(FTS.c.rowid == row.article_id))
        await s.execute(sa.insert(FTS).values(rowid=row.article_id, words=" ".join(words)))


async def drop(s: AsyncSession, article_id: int) -> None:
    """Out of the index (withdrawn): agents find it no more."""
    await s.execute(sa.delete(KbIndex).where(KbIndex.article_id == article_id))
    if _dialect(s) != "postgresql":
        await s.execute(sa.delete(FTS).where(FTS.c.rowid == article_id))


async def holding(s: AsyncSession, word: str, where: Any, cap: int) -> list[int]:
    """The visible articles holding ``word``, at most ``cap`` + 1 of them (in no order: more
    than ``cap`` means a word too common to pick candidates by)."""
    q = sa.select(KbIndex.article_id).where(_match(s, word), where).limit(cap + 1)
    return list((await s.execute(q)).scalars())


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
