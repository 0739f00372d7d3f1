"""``hotline knowledge import|export FILE``: the knowledge base in bulk, from a shell where the
service runs (the database of the configuration).

    hotline knowledge import FILE [--publish | --submit]   JSON, or Markdown (.md) files
    hotline knowledge export FILE [--city CITY]            the published articles

An import by ref: new articles are made, known ones get a new working copy when the text
differs, the same file twice changes nothing. They stay drafts unless ``--submit`` (to review
in the console) or ``--publish``: published at once, the operator standing in for the review
(the first load of a knowledge base; audited as the system's). Markdown or JSON by the file's
name (.md, .markdown: Markdown).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent_desk.access import Scope
from agent_desk.audit import Actor, Audit
from agent_desk.knowledge import formats
from agent_desk.knowledge.store import KnowledgeBase, counts_text
from agent_desk.knowledge.workflow import Editor
from common.config import Config
from common.errors import DomainError

OPERATOR = "system"


def add_parser(sub: Any, fn: Any) -> None:
    k = sub.add_parser("knowledge", help="the knowledge base (知识库): import or export "
                                         "articles (JSON, or Markdown with front matter)")
    k.add_argument("action", choices=["import", "export"])
    k.add_argument("file", type=Path, help="JSON file, or .md / .markdown for Markdown")
    how = k.add_mutually_exclusive_group()
    how.add_argument("--publish", action="store_true",
                     help="import: publish at once (the operator stands in for the review)")
    how.add_argument("--submit", action="store_true", help="import: send to review")
    k.add_argument("--city", help="export: one city's articles only")
    k.set_defaults(fn=fn)


async def run(cfg: Config, args: argparse.Namespace) -> int:
    from cases.db import make_engine, migrate, sessionmaker

    fmt = formats.format_of(args.file.name)
    if args.city is not None and args.city not in {c.id for c in cfg.cities}:
        print(f"--city: not a city of the configuration: {args.city!r}", file=sys.stderr)
        return 2
    engine = make_engine(cfg.database_url)
    try:
        await migrate(engine)
        sm = sessionmaker(engine)
        kb = KnowledgeBase(sm, cities=[c.id for c in cfg.cities])
        actor = Actor(OPERATOR, OPERATOR)
        try:
            if args.action == "import":
                docs = formats.read(args.file.read_text(encoding="utf-8"), fmt)
                counts = await kb.load(docs, Editor(OPERATOR, "admin", None), actor,
                                       publish=args.publish, submit=args.submit)
                print(f"{len(docs)} articles read from {args.file}: {counts_text(counts)}")
            else:
                text, n = await kb.export_text(Scope(OPERATOR, "admin", args.city), actor, fmt)
                args.file.write_text(text, encoding="utf-8")
                print(f"{n} published articles written to {args.file}")
        except (DomainError, OSError, UnicodeDecodeError) as exc:
            print(f"knowledge {args.action}: {exc}", file=sys.stderr)
            return 1
        await Audit(sm).seal()
    finally:
        await engine.dispose()
    return 0
