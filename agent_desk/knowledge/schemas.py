"""The knowledge base's request bodies and answer schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from agent_desk.knowledge.formats import MAX_BODY, MAX_TITLE
from agent_desk.knowledge.models import STATUSES
from agent_desk.web.routes import ARR, DATE, SN, B, Body, I, S, obj, ok_and, ref

MATTER_PATTERN = r"^([a-z0-9_]+(\.[a-z0-9_]+)*)?$"
Matter = Annotated[StrictStr, Field(max_length=96, pattern=MATTER_PATTERN)]
DatePattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# What an agent types into the search box, and the case form's words a suggestion reads (up
# to the form's subject and content): used for the search, never stored or logged.
Question = Annotated[StrictStr, Field(max_length=200)]
CaseText = Annotated[StrictStr, Field(max_length=8500)]
Limit = Annotated[StrictInt, Field(ge=1, le=50)]


class SearchBody(Body):
    q: Question
    matter: Matter = ""
    limit: Limit = 10


class SuggestBody(Body):
    matter: Matter = ""
    text: CaseText = ""
    limit: Limit = 5


class ArticleBody(Body):
    """An article's working copy (the whole of it: a change sends every field)."""

    ref: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")] | None = None
    title: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TITLE,
                                      pattern=r"^[^\n\r]*\S[^\n\r]*$")]
    body: Annotated[StrictStr, Field(min_length=1, max_length=MAX_BODY, pattern=r"\S")]
    matter: Matter = ""
    city: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] | None = None
    valid_from: Annotated[StrictStr, Field(pattern=DatePattern, json_schema_extra={
        "format": "date"})]
    valid_to: Annotated[StrictStr, Field(pattern=DatePattern, json_schema_extra={
        "format": "date"})] | None = None
    # The revision the editor changed (from the last read); omit to overwrite.
    revision: StrictInt | None = None


class ReviewBody(Body):
    """submit, approve: the revision the editor read (a copy changed since is refused)."""

    revision: StrictInt


class RejectBody(Body):
    revision: StrictInt
    note: Annotated[StrictStr, Field(max_length=2000)] = ""


class ImportBody(Body):
    format: Literal["json", "markdown"]
    content: Annotated[StrictStr, Field(min_length=1)]
    # Send the imported articles to review (else they stay drafts).
    submit: StrictBool = False


DAY = DATE
DAY_OR_NULL: dict[str, Any] = {"oneOf": [DATE, {"type": "null"}]}
STATUS = {"enum": list(STATUSES)}
SCHEMAS: dict[str, dict[str, Any]] = {
    "KbResult": obj({"id": I, "ref": S, "version": I, "title": S, "snippet": S, "matter": S,
                     "matter_name": SN, "city": SN, "valid_from": DAY,
                     "valid_to": DAY_OR_NULL, "score": {"type": "number"}, "views": I,
                     "helpful": I}),
    "KbArticle": obj({"id": I, "ref": S, "status": STATUS, "title": S, "matter": S,
                      "matter_name": SN, "city": SN, "valid_from": DAY,
                      "valid_to": DAY_OR_NULL, "revision": I,
                      "authors": {"type": "array", "items": S}, "submitted_by": SN,
                      "review_note": S, "versions": I, "live_version": {"type": ["integer",
                                                                                 "null"]},
                      "views": I, "helpful": I, "created_by": S, "created_at": SN,
                      "updated_by": S, "updated_at": SN}, body=S),
    "KbPublished": obj({"id": I, "ref": S, "version": I, "title": S, "body": S, "matter": S,
                        "matter_name": SN, "city": SN, "valid_from": DAY,
                        "valid_to": DAY_OR_NULL, "published_at": SN, "views": I,
                        "helpful": I, "helped": B}),
}
RESULTS = obj({"results": {"type": "array", "items": ref("KbResult")}})
ARTICLE = ok_and(article=ref("KbArticle"))
READ = obj({"published": {"oneOf": [ref("KbPublished"), {"type": "null"}]}},
           working=ref("KbArticle"))
LIST = obj({"total": I, "articles": {"type": "array", "items": ref("KbArticle")}})
VERSIONS = obj({"versions": {"type": "array", "items": obj({
    "version": I, "title": S, "body": S, "matter": S, "city": SN, "valid_from": DAY,
    "valid_to": DAY_OR_NULL, "authors": ARR, "approved_by": S, "published_at": SN,
    "live": B})}})
HELPFUL = ok_and(id=I, helpful=I, helped=B)
IMPORTED = ok_and(created=I, changed=I, unchanged=I, published=I)
EXPORT_OK = {"description": "the published articles as a file", "content": {
    "application/json": {"schema": obj({"format": S, "version": I, "articles": ARR})},
    "text/markdown": {"schema": {"type": "string"}}}}
QUERY: dict[str, dict[str, Any]] = {
    "status": STATUS, "matter": {"type": "string", "maxLength": 96, "pattern": MATTER_PATTERN},
    "city": {"type": "string", "maxLength": 32},
    "format": {"enum": ["json", "markdown"]},
}
