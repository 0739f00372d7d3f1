"""Knowledge-base search latency at scale (a benchmark, not a test).

    .venv/bin/python bench/knowledge_search.py [--articles 100000] [--queries 300]
                                               [--db sqlite,postgresql] [--save-as NAME]

Seeds N published articles made from the labelled set (tests/data/knowledge/articles.json)
through the real bulk load (``KnowledgeBase.load``: segmentation, versions, the search index):
article i is labelled article i mod 121 under another ref, its title numbered, its body's
sentences reordered and a sentence of two other articles added, for one of Jiangsu's 13
cities or the whole province (half each), in force from a day between 2019 and 2026, a tenth
of them expired and a twentieth not yet in force. Then the labelled callers' questions,
cycled, asked by agents of random cities: each ``KnowledgeBase.search`` call timed (the
question's segmentation, the index look-ups, the ranking, the snippets), one at a time.

Prints one JSON line per database: seeding time and rate, search latency p50/p95/p99/max in
ms, and how often the top five hold a copy of the article labelled for the question
(recall@5 by base article). ``--save-as``: also bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import PG_ADMIN, RESULTS, emit, loadavg  # noqa: E402

from agent_desk.access import Scope  # noqa: E402
from agent_desk.audit import SYSTEM  # noqa: E402
from agent_desk.knowledge import formats  # noqa: E402
from agent_desk.knowledge.formats import ArticleDoc  # noqa: E402
from agent_desk.knowledge.store import KnowledgeBase  # noqa: E402
from agent_desk.knowledge.workflow import Editor  # noqa: E402
from cases.db import make_engine, migrate, sessionmaker  # noqa: E402

DATA = REPO / "tests" / "data" / "knowledge"
TODAY = date(2026, 12, 1)
CITIES = ("nanjing", "suzhou", "wuxi", "changzhou", "nantong", "yangzhou", "zhenjiang",
          "taizhou", "xuzhou", "huaian", "yancheng", "lianyungang", "suqian")


def sentences(body: str) -> list[str]:
    parts = [p + "。" for p in body.replace("\n", "").split("。") if p.strip()]
    return parts or [body]


def synthetic(labelled: list[ArticleDoc], n: int, seed: int) -> list[ArticleDoc]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        base = labelled[i % len(labelled)]
        body = sentences(base.body)
        rnd.shuffle(body)
        for other in rnd.sample(labelled, 2):
            body.append(rnd.choice(sentences(other.body)))
        start = date(2019, 1, 1) + timedelta(days=rnd.randrange(8 * 365))
        roll = rnd.random()
        if roll < 0.10:  # expired
            start, end = start - timedelta(days=1500), start - timedelta(days=400)
        elif roll < 0.15:  # not yet in force
            start, end = TODAY + timedelta(days=rnd.randrange(1, 365)), None
        else:
            end = None
        out.append(ArticleDoc(f"{base.ref}~{i}", f"{base.title}（{i // len(labelled) + 1}）",
                              "".join(body), base.matter,
                              None if rnd.random() < 0.5 else rnd.choice(CITIES),
                              start, end))
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def run_db(db: str, docs: list[ArticleDoc], questions: list[dict[str, Any]],
                 n_queries: int, seed: int, workdir: Path) -> dict[str, Any]:
    drop = None
    if db == "postgresql":
        sys.path.insert(0, str(REPO))
        from tests.support.servers import make_pg_database

        url, drop = await make_pg_database(PG_ADMIN)
    else:
        path = workdir / "knowledge-bench.db"
        path.unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url)
    try:
        await migrate(engine)
        kb = KnowledgeBase(sessionmaker(engine), cities=CITIES)
        await kb.words.ready()
        t0 = time.perf_counter()
        await kb.load(docs, Editor("bench", "admin", None), SYSTEM, publish=True, batch=500)
        seeded_s = time.perf_counter() - t0
        rnd = random.Random(seed)
        latencies: list[float] = []
        found = 0
        for k in range(n_queries):
            q = questions[k % len(questions)]
            city = q["city"] if q["city"] and rnd.random() < 0.5 else rnd.choice(CITIES)
            t = time.perf_counter()
            results = await kb.search(q["question"], Scope("bench", "agent", city, "1"),
                                      TODAY, limit=5)
            latencies.append((time.perf_counter() - t) * 1000)
            found += any(r["ref"].split("~")[0] == q["expect"] for r in results)
        size = None
        if db == "sqlite":
            size = round((workdir / "knowledge-bench.db").stat().st_size / 1e6, 1)
        return {"bench": "knowledge_search", "db": db, "articles": len(docs),
                "seed_s": round(seeded_s, 1), "seed_per_s": round(len(docs) / seeded_s),
                "queries": n_queries, "p50_ms": round(pct(latencies, 50), 2),
                "p95_ms": round(pct(latencies, 95), 2), "p99_ms": round(pct(latencies, 99), 2),
                "max_ms": round(max(latencies), 2),
                "mean_ms": round(statistics.fmean(latencies), 2),
                "base_recall5": round(found / n_queries, 3), "db_mb": size,
                "loadavg": loadavg()}
    finally:
        await engine.dispose()
        if drop is not None:
            await drop()


async def main(args: argparse.Namespace) -> int:
    labelled = formats.read_json((DATA / "articles.json").read_text(encoding="utf-8"))
    questions = json.loads((DATA / "questions.json").read_text(encoding="utf-8"))["questions"]
    docs = synthetic(labelled, args.articles, args.seed)
    workdir = Path(args.workdir)
    out = []
    for db in args.db.split(","):
        doc = await run_db(db, docs, questions, args.queries, args.seed, workdir)
        emit(**doc)
        out.append(doc)
    if args.save_as:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.save_as}.json").write_text(json.dumps(out, indent=1) + "\n",
                                                      encoding="utf-8")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--articles", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--db", default="sqlite,postgresql",
                   help="comma-separated: sqlite, postgresql")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--workdir", default=str(REPO / "var" / "bench"),
                   help="where the SQLite file goes")
    p.add_argument("--save-as", help="also write bench/results/NAME.json")
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    Path(arguments.workdir).mkdir(parents=True, exist_ok=True)
    sys.exit(asyncio.run(main(arguments)))
