"""Articles in files, for bulk loading and back-ups: JSON, or Markdown with front matter.

JSON: ``{"format": "hotline-knowledge", "version": 1, "articles": [{ref, title, body, matter,
city, valid_from, valid_to}, ...]}`` (a bare list of articles is read too).

Markdown: one or more articles, each a front matter block, then its body::

    ---
    ref: kb-shebao-card-reissue
    title: 社保卡遗失补办
    matter: social_security.card
    city:
    valid_from: 2024-01-01
    valid_to:
    ---
    社保卡遗失后……

A block starts at a ``---`` line followed by a ``ref:`` line (so a ``---`` rule inside a
body stays body); ``city`` empty means the whole province, ``valid_to`` empty no end. The
writer keeps that unambiguous: a body line ``---`` followed by a ``ref:`` line is written as
``- - -`` (the same rule in Markdown).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from common.errors import DomainError

FORMAT = "hotline-knowledge"
FIELDS = ("ref", "title", "matter", "city", "valid_from", "valid_to")
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
MATTER = re.compile(r"^([a-z0-9_]+(\.[a-z0-9_]+)*)?$")
CITY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_TITLE = 200
MAX_BODY = 20_000


@dataclass(frozen=True)
class ArticleDoc:
    """An article as a file holds it (and as an editor sends it)."""

    ref: str
    title: str
    body: str
    matter: str = ""
    city: str | None = None
    valid_from: date = date(2000, 1, 1)
    valid_to: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "title": self.title, "body": self.body,
                "matter": self.matter, "city": self.city,
                "valid_from": self.valid_from.isoformat(),
                "valid_to": self.valid_to.isoformat() if self.valid_to else None}


def _date(v: Any, what: str, *, optional: bool) -> date | None:
    if v in (None, "") and optional:
        return None
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError:
        raise DomainError("invalid", f"{what}: not a date (YYYY-MM-DD): {str(v)[:20]!r}"
                          ) from None


def checked(raw: dict[str, Any], where: str = "article") -> ArticleDoc:
    """One article's fields checked (the same rules for files and editors)."""
    unknown = set(raw) - {*FIELDS, "body", "version", "status"}
    if unknown:
        raise DomainError("invalid", f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    ref = str(raw.get("ref") or "")
    if not REF.match(ref):
        raise DomainError("invalid", f"{where}: ref must be 1-64 letters, digits, . _ - "
                                     f"({ref[:70]!r})")
    title = str(raw.get("title") or "").strip()
    body = str(raw.get("body") or "").strip("\n")
    if not title or len(title) > MAX_TITLE or "\n" in title:
        raise DomainError("invalid", f"{where} {ref}: title: one line of 1-{MAX_TITLE} "
                                     f"characters")
    if not body.strip() or len(body) > MAX_BODY:
        raise DomainError("invalid", f"{where} {ref}: body: 1-{MAX_BODY} characters")
    matter = str(raw.get("matter") or "")
    if len(matter) > 96 or not MATTER.match(matter):
        raise DomainError("invalid", f"{where} {ref}: matter: a code like "
                                     f"urban.sanitation.street_vending")
    city = raw.get("city") or None
    if city is not None and not CITY.match(str(city)):
        raise DomainError("invalid", f"{where} {ref}: city: a city id, or empty for the "
                                     f"province")
    valid_from = _date(raw.get("valid_from"), f"{where} {ref}: valid_from", optional=False)
    valid_to = _date(raw.get("valid_to"), f"{where} {ref}: valid_to", optional=True)
    assert valid_from is not None
    if valid_to is not None and valid_to < valid_from:
        raise DomainError("invalid", f"{where} {ref}: valid_to is before valid_from")
    return ArticleDoc(ref, title, body, matter, str(city) if city else None, valid_from,
                      valid_to)


def read_json(text: str) -> list[ArticleDoc]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise DomainError("invalid", f"not JSON: {exc}") from None
    if isinstance(doc, dict):
        if doc.get("format") not in (None, FORMAT):
            raise DomainError("invalid", f"not a {FORMAT} file")
        doc = doc.get("articles")
    if not isinstance(doc, list) or not all(isinstance(a, dict) for a in doc):
        raise DomainError("invalid", "expected a list of articles")
    return _unique([checked(a, f"article {i + 1}") for i, a in enumerate(doc)])


def write_json(articles: Iterable[ArticleDoc]) -> str:
    return json.dumps({"format": FORMAT, "version": 1,
                       "articles": [a.as_dict() for a in articles]},
                      ensure_ascii=False, indent=1) + "\n"


def _starts_block(lines: Sequence[str], i: int) -> bool:
    return lines[i].rstrip() == "---" and i + 1 < len(lines) and \
        lines[i + 1].startswith("ref:")


def read_markdown(text: str) -> list[ArticleDoc]:
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines) and not _starts_block(lines, i):
        raise DomainError("invalid", "Markdown: an article starts with a front matter block "
                                     "('---', then 'ref: ...')")
    out: list[ArticleDoc] = []
    while i < len(lines):
        start = i + 1
        meta: dict[str, Any] = {}
        i += 1
        while i < len(lines) and lines[i].rstrip() != "---":
            key, sep, value = lines[i].partition(":")
            if not sep or key.strip() not in FIELDS:
                raise DomainError("invalid", f"Markdown line {i + 1}: expected 'field: value' "
                                             f"with a field of {', '.join(FIELDS)}")
            meta[key.strip()] = value.strip()
            i += 1
        if i >= len(lines):
            raise DomainError("invalid", f"Markdown line {start}: front matter not closed "
                                         f"with '---'")
        i += 1
        body_start = i
        while i < len(lines) and not _starts_block(lines, i):
            i += 1
        meta["body"] = "\n".join(lines[body_start:i]).strip("\n")
        out.append(checked(meta, f"Markdown line {start}"))
    return _unique(out)


def write_markdown(articles: Iterable[ArticleDoc]) -> str:
    parts = []
    for a in articles:
        body = a.body.split("\n")
        body = ["- - -" if ln.rstrip() == "---" and k + 1 < len(body)
                and body[k + 1].startswith("ref:") else ln for k, ln in enumerate(body)]
        parts.append("\n".join([
            "---", f"ref: {a.ref}", f"title: {a.title}", f"matter: {a.matter}",
            f"city: {a.city or ''}", f"valid_from: {a.valid_from.isoformat()}",
            f"valid_to: {a.valid_to.isoformat() if a.valid_to else ''}", "---", *body, ""]))
    return "\n".join(parts)


def read(text: str, fmt: str) -> list[ArticleDoc]:
    if fmt == "json":
        return read_json(text)
    if fmt == "markdown":
        return read_markdown(text)
    raise DomainError("invalid", f"format: json or markdown, not {fmt!r}")


def write(articles: Iterable[ArticleDoc], fmt: str) -> str:
    return write_json(articles) if fmt == "json" else write_markdown(articles)


def format_of(filename: str) -> str:
    return "markdown" if filename.lower().endswith((".md", ".markdown")) else "json"


def _unique(docs: list[ArticleDoc]) -> list[ArticleDoc]:
    seen: set[str] = set()
    for d in docs:
        if d.ref in seen:
            raise DomainError("invalid", f"ref {d.ref} appears twice")
        seen.add(d.ref)
    return docs
