"""The review of an article, as one pure decision: which status an action leads to, or why it
is refused. Four eyes: whoever wrote the working copy since its last publication (or sent it
to review) cannot approve it. An editor tied to a city works on that city's articles only; the
province's editors on every article (province-wide ones too).

    draft ──submit──▶ in_review ──approve──▶ published
      ▲                  │ reject               │ edit (agents keep reading the
      └──────────────────┘◀─────────────────────┘  published version meanwhile)
    any ──withdraw──▶ withdrawn (agents see nothing of it) ──edit──▶ draft
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.errors import DomainError

EDITORS = ("supervisor", "admin")
ACTIONS = ("create", "edit", "submit", "approve", "reject", "withdraw")


@dataclass(frozen=True)
class Editor:
    user: str
    role: str
    city: str | None  # None: the province (every city)


def may_touch(editor: Editor, *cities: str | None) -> bool:
    """The editor's city covers the article's (before and after a change)."""
    if editor.role not in EDITORS:
        return False
    return editor.city is None or all(c == editor.city for c in cities)


def decide(action: str, status: str | None, editor: Editor, *, authors: Sequence[str] = (),
           cities: Sequence[str | None] = ()) -> str:
    """The status after ``action`` by ``editor`` on an article now in ``status`` (None: not
    created yet), whose working copy ``authors`` wrote; ``cities``: the article's city before
    and after. Raises DomainError (forbidden: not this editor's; wrong_status: not now)."""
    if action not in ACTIONS:
        raise DomainError("invalid", f"unknown action {action!r}")
    if not may_touch(editor, *cities):
        raise DomainError("forbidden", "this article is outside your city" if
                          editor.role in EDITORS else "only supervisors and admins edit "
                          "the knowledge base")
    if action == "create":
        return "draft"
    if status is None:
        raise DomainError("not_found", "no such article")
    if action == "edit":
        return "draft"
    if action == "submit":
        if status != "draft":
            raise DomainError("wrong_status", f"only a draft goes to review (it is {status})")
        return "in_review"
    if action in ("approve", "reject"):
        if status != "in_review":
            raise DomainError("wrong_status", f"the article is not in review (it is {status})")
        if editor.user in authors:
            raise DomainError("forbidden", "you wrote this version: another editor reviews it")
        return "published" if action == "approve" else "draft"
    # withdraw
    if status == "withdrawn":
        raise DomainError("wrong_status", "the article is already withdrawn")
    return "withdrawn"
