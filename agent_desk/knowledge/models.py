"""The knowledge base's tables (migration 0019_knowledge): articles (知识库) as the editors
work on them, every published version kept, the search index of what agents may read, and the
agents' "helpful" marks.

- ``kb_articles``: one row per article: its working copy (title, body, 事项, city, validity),
  where that copy is in the review (draft → in_review → published; withdrawn), and which
  published version agents read now (``live_version``; None: agents see nothing of it).
  Editing a published article starts a new draft; agents keep reading the published version
  until the new one is approved.
- ``kb_versions``: each publication, appended, never changed (who wrote it, who approved it).
- ``kb_index``: the live version of every published article, as search words (text.py); on
  SQLite the words are also in the FTS5 table ``kb_fts`` (rowid = article id), on PostgreSQL in
  the ``tsv`` tsvector column with a GIN index (both made by the migration, written by
  index.py, so neither is mapped here).
- ``kb_feedback``: an agent's "helpful" mark, once per article and user (natural key).

Articles hold no personal data: they are the centre's answers, not callers' words.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.db import Base, utcnow

STATUSES = ("draft", "in_review", "published", "withdrawn")


class KbArticle(Base):
    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The natural key (import and export): given in an imported file, else "kb-<id>".
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # 事项分类: a code of the matter taxonomy ("urban.sanitation.street_vending").
    matter: Mapped[str] = mapped_column(String(96), default="", index=True)
    # None: the whole province; else one city id of the configuration.
    city: Mapped[str | None] = mapped_column(String(32), index=True)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    # Raised by every change of the working copy (an editor's stale copy is refused).
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # Who wrote the working copy since it was last published: none of them may approve it.
    authors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    submitted_by: Mapped[str | None] = mapped_column(String(64))
    review_note: Mapped[str] = mapped_column(Text, default="")
    versions: Mapped[int] = mapped_column(Integer, default=0)  # the latest version number
    live_version: Mapped[int | None] = mapped_column(Integer)  # what agents read
    views: Mapped[int] = mapped_column(Integer, default=0)
    helpful: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class KbVersion(Base):
    __tablename__ = "kb_versions"
    __table_args__ = (UniqueConstraint("article_id", "version", name="uq_kb_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"),
                                            index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    matter: Mapped[str] = mapped_column(String(96), default="")
    city: Mapped[str | None] = mapped_column(String(32))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    authors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    approved_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)


class KbIndex(Base):
    """The live version of a published article, as the search filters it (one narrow row
    per article: the visibility checks read many of them)."""

    __tablename__ = "kb_index"
    # Covers the visibility filter and the length: the visible articles and the collection's
    # figures (index.py) are read from the index alone.
    __table_args__ = (Index("ix_kb_index_visible", "valid_from", "valid_to", "city", "length"),)

    article_id: Mapped[int] = mapped_column(
        ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    ref: Mapped[str] = mapped_column(String(64))
    matter: Mapped[str] = mapped_column(String(96), default="", index=True)
    city: Mapped[str | None] = mapped_column(String(32))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    # The weighted length the ranking uses (ranking.length).
    length: Mapped[int] = mapped_column(Integer)


class KbWords(Base):
    """The live version's search words (text.py), space-joined in order: the ranking counts
    them. On PostgreSQL also as the tsvector ``tsv`` (GIN), not mapped."""

    __tablename__ = "kb_words"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True)
    title_words: Mapped[str] = mapped_column(Text)
    body_words: Mapped[str] = mapped_column(Text)


class KbTerm(Base):
    """In how many indexed articles each search word is: the ranking's document frequency,
    the same on both databases, and which words are too common to pick candidates by."""

    __tablename__ = "kb_terms"

    word: Mapped[str] = mapped_column(String(64), primary_key=True)
    docs: Mapped[int] = mapped_column(Integer, default=0)


class KbFeedback(Base):
    __tablename__ = "kb_feedback"
    __table_args__ = (UniqueConstraint("article_id", "username", name="uq_kb_feedback"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
