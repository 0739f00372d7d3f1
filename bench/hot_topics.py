"""Hot-topic detection at a province's volume: 30,000 cases a day.

Seeds a real database (PostgreSQL by default) with ``--days`` of history at ``--per-day``
cases a day — 13 cities, 7 districts each, the default taxonomy's 事项 with a skewed
popularity, a working-day profile over the hours, each case with the keyed hashes of about a
dozen words as the counting pass leaves them (matter words and common words) — written with
COPY, not through the service (what is measured is detection, not seeding). Then measures
what the worker does, with the service's own code (agent_desk/insight/services.py Insight):

- ``detect``: one hot-topic pass at the peak hour (every series in the window tested
  against its four same-weekday baselines, the plan, the alerts written), median and worst;
- ``idle_count``: a counting pass with nothing new (the last day re-checked for grown
  forms and transcripts): the per-minute overhead;
- ``false_alerts``: one pass per hour through the last day of pure noise (counts drawn at
  random around the same rates every week): alerts opened with the default thresholds;
- ``burst``: 40 cases of one 事项 in one district in the last 30 minutes: alerts opened;
- ``segmentation``: cases a second through the counting pass with real texts (the forms of
  tests/data/insight/complaints.jsonl, encrypted, entered through the case loop and the form
  store): decrypt, clean, segment, hash, write.

Prints JSON lines and writes the summary to ``--out``.

    .venv/bin/python bench/hot_topics.py [--per-day 30000] [--days 29] [--db postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import PG_ADMIN, RESULTS, emit, loadavg
from sqlalchemy import delete, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_desk.access import Scope
from agent_desk.cases.store import ConsoleStore
from agent_desk.insight.models import CaseTerm, HotAlert, Indexed
from agent_desk.insight.services import Insight
from agent_desk.insight.store import InsightStore
from cases.db import make_engine, migrate, sessionmaker
from cases.loop import states as st
from cases.loop.models import CaseWork
from cases.loop.store import CaseLoop, Details
from cases.loop.taxonomy import Taxonomy
from cases.models import Case
from common.config import InsightSection
from common.logs import setup_logging
from common.privacy import PersonalData

TZ = ZoneInfo("Asia/Shanghai")
CITIES = [f"city{i:02d}" for i in range(13)]
DISTRICTS = 7
# Cases per local hour of a working day (relative): quiet nights, peaks mid-morning and
# mid-afternoon.
PROFILE = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.2, 0.5, 1.5, 4, 6.5, 7, 6.5, 5, 5, 6.5, 6.5,
                    6, 5, 4, 3.5, 3, 2.5, 1.5, 0.8])
MATTER_WORDS, MATTER_WORDS_PER_CASE = 30, 5
COMMON_WORDS, COMMON_WORDS_PER_CASE = 2000, 7
DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "insight" / "complaints.jsonl"


def term(i: int) -> str:
    return f"{i:016x}"


class Seeder:
    """Random cases with the rates of a province; each hour's counts drawn afresh."""

    def __init__(self, per_day: int, matters: list[str], seed: int = 12345):
        self.rng = np.random.default_rng(seed)
        self.per_day = per_day
        self.matters = matters
        pop = 1.0 / np.arange(1, len(matters) + 1) ** 0.9
        self.matter_p = pop / pop.sum()
        city = 1.0 / np.arange(1, len(CITIES) + 1) ** 0.5
        self.city_p = city / city.sum()
        common = 1.0 / np.arange(1, COMMON_WORDS + 1)
        self.common_p = common / common.sum()
        self.hour_p = PROFILE / PROFILE.sum()
        self.next_id = 1

    def hour(self, start: datetime, n: int, *, seconds_in: float = 3600,
             only: tuple[int, int, int] | None = None) -> list[tuple[Any, ...]]:
        """``n`` cases arriving in ``seconds_in`` from ``start`` (all of one city, district
        and 事项 with ``only``): (id, number, city, district, matter, at, terms)."""
        rng = self.rng
        if only is None:
            cities = rng.choice(len(CITIES), n, p=self.city_p)
            districts = rng.integers(0, DISTRICTS, n)
            matters = rng.choice(len(self.matters), n, p=self.matter_p)
        else:
            cities, districts, matters = (np.full(n, v) for v in only)
        seconds = np.sort(rng.uniform(0, seconds_in, n))
        out = []
        for c, d, m, s in zip(cities, districts, matters, seconds, strict=True):
            words = {term(1_000_000 + int(m) * MATTER_WORDS + int(w))
                     for w in rng.integers(0, MATTER_WORDS, MATTER_WORDS_PER_CASE)}
            words |= {term(int(w)) for w in rng.choice(COMMON_WORDS, COMMON_WORDS_PER_CASE,
                                                        p=self.common_p)}
            i = self.next_id
            self.next_id += 1
            out.append((i, f"B{i:012d}", CITIES[c], f"d{int(d)}", self.matters[m],
                        start + timedelta(seconds=float(s)), sorted(words)))
        return out

    def day(self, day_start: datetime) -> list[list[tuple[Any, ...]]]:
        counts = self.rng.poisson(self.per_day * self.hour_p)
        return [self.hour(day_start + timedelta(hours=h), int(n)) for h, n in enumerate(counts)]


async def write(engine: AsyncEngine, rows: list[tuple[Any, ...]]) -> int:
    """Cases as the loop and the counting pass leave them: the case, its work row (事项,
    district), its words' hashes and its counted mark."""
    if not rows:
        return 0
    cases = [(i, num, city, "web", 0, "[]", "ended", at, at, at)
             for i, num, city, _d, _m, at, _t in rows]
    work = [(i, "accepted", "web", city, d, "complaint", m, 0, 0, 0, "none", False, at, 0, at)
            for i, _n, city, d, m, at, _t in rows]
    terms = [(i, t, city, at) for i, _n, city, _d, _m, at, ts in rows for t in ts]
    marks = [(i, 1, False, at) for i, *_rest, at, _t in rows]
    case_cols = ("id", "number", "city", "source", "priority", "flags", "call_state",
                 "arrived_at", "created_at", "updated_at")
    work_cols = ("case_id", "state", "channel", "city", "district", "appeal_type", "matter",
                 "round", "reopen_count", "return_count", "light", "supervised",
                 "accepted_at", "version", "updated_at")
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            pg: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
            await pg.copy_records_to_table("cases", records=cases, columns=case_cols)
            await pg.copy_records_to_table("case_work", records=work, columns=work_cols)
            await pg.copy_records_to_table("insight_case_terms", records=terms,
                                           columns=("case_id", "term", "city", "at"))
            await pg.copy_records_to_table("insight_indexed", records=marks, columns=(
                "case_id", "form_version", "transcript", "indexed_at"))
            await conn.commit()
    else:
        async with engine.begin() as conn:
            await conn.execute(insert(Case), [
                dict(zip(case_cols, r, strict=True)) | {"flags": []} for r in cases])
            await conn.execute(insert(CaseWork), [
                dict(zip(work_cols, r, strict=True)) for r in work])
            await conn.execute(insert(CaseTerm), [
                dict(zip(("case_id", "term", "city", "at"), r, strict=True)) for r in terms])
            await conn.execute(insert(Indexed), [
                dict(zip(("case_id", "form_version", "transcript", "indexed_at"), r,
                         strict=True)) for r in marks])
    return len(terms)


async def timed(job: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = await job()
    return (time.perf_counter() - t0) * 1000, out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    drop = None
    if args.db == "postgresql":
        name = f"hotline_bench_{int(time.time())}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        host_part = PG_ADMIN.split("@", 1)[1].rsplit("/", 1)[0]
        user = PG_ADMIN.split("://", 1)[1].split("@", 1)[0]
        url = f"postgresql+asyncpg://{user}@{host_part}/{name}"

        async def drop_db() -> None:
            c = await asyncpg.connect(PG_ADMIN)
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await c.close()

        drop = drop_db
    else:
        url = f"sqlite+aiosqlite:///{args.sqlite}"
    engine = make_engine(url)
    try:
        return await measure(engine, args)
    finally:
        await engine.dispose()
        if drop is not None:
            await drop()


async def measure(engine: AsyncEngine, args: argparse.Namespace) -> dict[str, Any]:
    await migrate(engine)
    sessions = sessionmaker(engine)
    personal = PersonalData("bench-hot-topics-key-0123456789ab")
    taxonomy = Taxonomy.load()
    loop = CaseLoop(sessions, personal, taxonomy)
    section = InsightSection()
    insight = Insight(InsightStore(sessions, personal), loop, section)
    # The end of the seeded history: today at the local 11:00 peak, in the past.
    local_now = datetime.now(TZ)
    end = local_now.replace(hour=11, minute=0, second=0, microsecond=0)
    if end > local_now:
        end -= timedelta(days=1)
    end = end.astimezone(UTC)
    first_day = (end.astimezone(TZ) - timedelta(days=args.days)).replace(hour=0, minute=0)

    seeder = Seeder(args.per_day, taxonomy.leaves())
    t0 = time.perf_counter()
    cases = terms = 0
    day = first_day
    while day < end.astimezone(TZ):
        for rows in seeder.day(day.astimezone(UTC)):
            rows = [r for r in rows if r[5] < end]
            terms += await write(engine, rows)
            cases += len(rows)
        day += timedelta(days=1)
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("SELECT setval('cases_id_seq', (SELECT max(id) FROM cases))"))
            await conn.execute(text("ANALYZE"))
    seeded_s = time.perf_counter() - t0
    emit(bench="hot_topics", phase="seeded", cases=cases, term_rows=terms,
         seconds=round(seeded_s, 1))

    # The per-minute overhead of the counting pass when nothing is new.
    idle = [(await timed(lambda: insight.count_new(end)))[0] for _ in range(5)]

    # A day of noise, one pass an hour, chronologically: false alerts.
    false_opened = 0
    hourly: list[float] = []
    for h in range(23, -1, -1):
        t0 = time.perf_counter()
        rep = await insight.detect(end - timedelta(hours=h))
        hourly.append((time.perf_counter() - t0) * 1000)
        false_opened += len(rep.opened)
    async with sessions() as s, s.begin():
        await s.execute(delete(HotAlert))

    # Detection at the peak hour, repeated.
    runs = []
    signals = 0
    for _ in range(args.repeat):
        ms, rep = await timed(lambda: insight.detect(end))
        runs.append(ms)
        signals = rep.signals

    # A burst: 40 cases of the most common 事项 in one district, the last 30 minutes.
    burst = seeder.hour(end - timedelta(minutes=30), 40, seconds_in=1799, only=(0, 3, 0))
    await write(engine, burst)
    ms_burst, rep = await timed(lambda: insight.detect(end))
    burst_opened = rep.opened
    ms_again, rep_again = await timed(lambda: insight.detect(end + timedelta(minutes=1)))

    # The counting pass on real texts, entered as the console does.
    forms = ConsoleStore(sessions, personal)
    texts = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    n_real = min(args.real, len(texts))
    at = end - timedelta(minutes=5)
    for row in texts[:n_real]:
        number = await loop.create_case(channel="web", city="city01", caller=None, at=at)
        await forms.save_form(number, {"subject": row["subject"], "content": row["content"]},
                              by="bench", scope=Scope.everything())
        await loop.act(number, st.Actor("bench", "agent"), st.Command("classify"),
                       Details(appeal_type="complaint", matter=row["matter"], district="d1"))
    await insight.count_new(end)  # the segmenter's dictionary loads on first use
    more = []
    for row in texts[:n_real]:
        number = await loop.create_case(channel="web", city="city01", caller=None, at=at)
        await forms.save_form(number, {"subject": row["subject"], "content": row["content"]},
                              by="bench", scope=Scope.everything())
        more.append(number)
    ms_count, counted = await timed(lambda: insight.count_new(end))
    per_s = counted / (ms_count / 1000) if ms_count else None

    det = statistics.median(runs)
    passes_per_day = 86400 / section.interval_s
    summary = {
        "bench": "hot_topics", "summary": True, "db": engine.dialect.name,
        "per_day": args.per_day, "days": args.days, "cases": cases, "term_rows": terms,
        "seed_s": round(seeded_s, 1),
        "window_minutes": section.window_minutes, "baseline_weeks": section.baseline_weeks,
        "p_alert": section.p_alert, "min_count": section.min_count,
        "detect_ms": {"median": round(det, 1), "max": round(max(runs), 1),
                      "runs": len(runs), "series_tested": signals},
        "detect_hourly_ms": {"median": round(statistics.median(hourly), 1),
                             "max": round(max(hourly), 1)},
        "idle_count_ms": {"median": round(statistics.median(idle), 1),
                          "max": round(max(idle), 1)},
        "false_alerts_in_24_hourly_passes": false_opened,
        "burst": {"cases": len(burst), "alerts_opened": len(burst_opened),
                  "pass_ms": round(ms_burst, 1), "next_pass_opened": len(rep_again.opened),
                  "next_pass_ms": round(ms_again, 1)},
        "segmentation": {"cases": counted, "ms": round(ms_count, 1),
                         "cases_per_s": round(per_s, 1) if per_s else None},
        # The worker's day: a pass every interval, and every case's text counted once.
        "worker_cpu_s_per_day": round(
            passes_per_day * (det + statistics.median(idle)) / 1000
            + (args.per_day / per_s if per_s else 0), 1),
        "loadavg": loadavg(),
    }
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-day", type=int, default=30_000)
    ap.add_argument("--days", type=int, default=29,
                    help="history seeded (the baseline needs four weeks and a day)")
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--sqlite", default="/tmp/hotline-bench-hot-topics.db")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--real", type=int, default=400, help="cases with real texts counted")
    ap.add_argument("--out", default=str(RESULTS / "hot_topics.json"))
    args = ap.parse_args()
    setup_logging("warning", "text")
    if args.db == "sqlite":
        Path(args.sqlite).unlink(missing_ok=True)
    summary = asyncio.run(run(args))
    emit(**summary)
    Path(args.out).write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n",
                              encoding="utf-8")


if __name__ == "__main__":
    main()
