"""How search results are ordered: pure functions, the same for SQLite and PostgreSQL.

The database only finds which visible articles hold which search words (index.py: FTS5 or the
tsvector's GIN index); everything that orders them is computed here from the stored words and
whole numbers, so both databases give the same results in the same order.

- relevance: Okapi BM25 over the article's words, the title's words counted ``TITLE_WEIGHT``
  times (BM25F-style), the collection being what the asker may see now;
- the 事项 chosen on the case form: the same matter adds ``MATTER_SAME``, a sibling under the
  same parent ``MATTER_FAMILY`` (so a matter alone suggests articles);
- the asker's city: an article written for it beats the province-wide one (``CITY_BOOST``);
- freshness: rules that took effect recently a little ahead (up to ``FRESH_BOOST``, fading over
  ``FRESH_DAYS``), and articles agents found helpful (``HELPFUL_BOOST`` × log);
- ties by the article's ref.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

K1 = 1.2
B = 0.75
TITLE_WEIGHT = 3
MATTER_SAME = 3.0
MATTER_FAMILY = 1.5
CITY_BOOST = 1.25
FRESH_BOOST = 0.1
FRESH_DAYS = 3 * 365
HELPFUL_BOOST = 0.05
# Candidates scored in full (by their matched words' weight first): enough that the top few
# are exact, few enough to read quickly.
SHORTLIST = 200


@dataclass(frozen=True)
class Doc:
    """A candidate as the index holds it: its words space-joined (text.joined), and its
    weighted length (``length``)."""

    article_id: int
    ref: str
    title_words: str
    body_words: str
    matter: str
    city: str | None
    valid_from: date
    helpful: int = 0
    length: int = -1  # -1: computed from the words

    @property
    def weighted_length(self) -> int:
        if self.length >= 0:
            return self.length
        return TITLE_WEIGHT * len(self.title_words.split()) + len(self.body_words.split())


@dataclass(frozen=True)
class Collection:
    """What the asker may see: how many articles, their average weighted length, and in how
    many of them each query word occurs."""

    docs: int
    avg_length: float
    df: Mapping[str, int]


@dataclass(frozen=True)
class Ask:
    words: Sequence[str]  # the question's search words (text.Segmenter.words)
    city: str | None = None  # the asker's city (None: the province)
    matter: str = ""
    today: date = date(1970, 1, 1)


def length(title_words: Sequence[str], body_words: Sequence[str]) -> int:
    return TITLE_WEIGHT * len(title_words) + len(body_words)


def idf(df: int, docs: int) -> float:
    return math.log(1.0 + (docs - df + 0.5) / (df + 0.5))


def parent(matter: str) -> str:
    return matter.rpartition(".")[0]


def matter_bonus(asked: str, matter: str) -> float:
    if not asked or not matter:
        return 0.0
    if matter == asked:
        return MATTER_SAME
    family = parent(asked)
    if family and (matter == family or parent(matter) == family):
        return MATTER_FAMILY
    return 0.0


def _padded(words: str) -> str:
    # Each word between its own spaces: " a  b " counts " a " without overlaps.
    return " " + words.replace(" ", "  ") + " "


def relevance(words: Iterable[str], doc: Doc, coll: Collection) -> float:
    title, body = _padded(doc.title_words), _padded(doc.body_words)
    dl = doc.weighted_length
    norm = K1 * (1 - B + B * dl / coll.avg_length) if coll.avg_length > 0 else K1
    score = 0.0
    for w in sorted(set(words)):
        f = TITLE_WEIGHT * title.count(f" {w} ") + body.count(f" {w} ")
        if f:
            score += idf(coll.df.get(w, 0), coll.docs) * f * (K1 + 1) / (f + norm)
    return score


def score(ask: Ask, doc: Doc, coll: Collection) -> float:
    base = relevance(ask.words, doc, coll) + matter_bonus(ask.matter, doc.matter)
    if base <= 0:
        return 0.0
    if ask.city is not None and doc.city == ask.city:
        base *= CITY_BOOST
    age = (ask.today - doc.valid_from).days
    base *= 1 + FRESH_BOOST * max(0.0, 1 - max(age, 0) / FRESH_DAYS)
    base *= 1 + HELPFUL_BOOST * math.log1p(max(doc.helpful, 0))
    return base


def rank(ask: Ask, docs: Iterable[Doc], coll: Collection, limit: int
         ) -> list[tuple[float, Doc]]:
    """The best ``limit`` documents with a positive score, best first."""
    scored = [(s, d) for d in docs if (s := score(ask, d, coll)) > 0]
    scored.sort(key=lambda sd: (-sd[0], sd[1].ref))
    return scored[:limit]


def shortlist(matches: Mapping[str, Iterable[int]], coll: Collection,
              also: Iterable[int] = (), limit: int = SHORTLIST) -> list[int]:
    """The candidates worth reading in full: by the summed weight of the query words they
    hold (BM25 without the counts), ties by id; ``also`` (the matter's articles) always."""
    weight: dict[int, float] = {}
    for word, ids in sorted(matches.items()):
        w = idf(coll.df.get(word, 0), coll.docs)
        for i in ids:
            weight[i] = weight.get(i, 0.0) + w
    best = sorted(weight, key=lambda i: (-weight[i], i))[:limit]
    extra = [i for i in sorted(set(also)) if i not in weight]
    return best + extra[:limit]
