"""The case loop at a province's scale: a million cases on PostgreSQL.

Seeds ONE MILLION cases (``--cases``) with their ``case_work`` and dispatches: a year of a
province with 13 cities and 200 departments, a realistic mix (daytime peaks, 诉求类型,
direct answers, 退单 and 改派, 协办, 延期, late signing and replies, 回访 and 重办, repeat
complaints, a backlog a department never answers), the ones still open at the end lit red or
yellow as the deadline sweep would — in arrival order into a new PostgreSQL database, with
``INSERT … SELECT`` over ``generate_series`` (no row crosses the wire). Then it times:

- the 红黄灯 list (cases/loop/lists.py ``supervision``, the hotline side's 督办 page): open
  cases by light, department and city, the most overdue first, a page of 50 with the count,
  as a province supervisor and as a city's (its need-to-know condition);
- a month's report (cases/loop/reports.py ``LoopReports.report``): by department for the
  province, by city, by department within one city, and a week's.

The schema is this branch's (migration head, dispatches carrying their case's city); the
measurements are made first without the indexes of 0017_loop_reports, then with them.

Each is run ``--repeat`` times (the least and the median kept) and each statement's plan is
printed with ``EXPLAIN (ANALYZE, BUFFERS)``. JSON lines on stdout; the tables and plans go to
bench/results/case_loop_scale.md (``--out``). The database is dropped at the end (``--keep``
keeps it).

    PYTHONPATH=$PWD .venv/bin/python bench/case_loop_scale.py [--cases 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from benchlib import PG_ADMIN, RESULTS, emit, loadavg
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cases.db import make_engine, migrate, sessionmaker
from cases.loop.lists import SupervisionFilter, supervision
from cases.loop.reports import LoopReports, Period, Query, previous_period
from cases.loop.taxonomy import Taxonomy
from cases.models import Case

TZ = "Asia/Shanghai"
# Migration 0017_loop_reports' indexes (index, table, columns, partial index condition):
# dropped for the first measurement, made again for the second.
INDEXES = [("ix_case_work_followup_at", "case_work", "followup_at", None),
           ("ix_case_dispatches_sign_due_at", "case_dispatches", "sign_due_at", None),
           ("ix_case_dispatches_replied_at", "case_dispatches", "replied_at", None),
           ("ix_case_dispatches_extension_requested", "case_dispatches", "updated_at, id",
            "extension_state = 'requested'")]
WITHOUT, WITH = "without 0017's indexes", "with 0017's indexes"
# id, name, share of the cases in per cent (the province's 13 cities).
CITIES = [("nanjing", "南京", 14), ("suzhou", "苏州", 17), ("wuxi", "无锡", 9),
          ("changzhou", "常州", 7), ("xuzhou", "徐州", 9), ("nantong", "南通", 8),
          ("lianyungang", "连云港", 5), ("huaian", "淮安", 5), ("yancheng", "盐城", 7),
          ("yangzhou", "扬州", 5), ("zhenjiang", "镇江", 4), ("taizhou", "泰州", 5),
          ("suqian", "宿迁", 5)]
UNITS = [("cg", "城市管理局"), ("rs", "人力资源和社会保障局"), ("zj", "住房和城乡建设局"),
         ("jt", "交通运输局"), ("hb", "生态环境局"), ("sj", "市场监督管理局"), ("ga", "公安局"),
         ("sw", "水务集团"), ("gd", "供电公司"), ("rq", "燃气集团"), ("wj", "卫生健康委员会"),
         ("jy", "教育局"), ("mz", "民政局"), ("zr", "自然资源和规划局"), ("wl", "文化广电和旅游局")]
PROVINCE = [("js-dl", "江苏省电力公司"), ("js-tx", "江苏省通信管理局"),
            ("js-jr", "江苏省地方金融监督管理局"), ("js-gs", "江苏交通控股"),
            ("js-yc", "江苏省烟草专卖局")]
# 诉求类型 in per cent, and their time limits in days (calendar days here).
APPEALS = [("consultation", 35, 1), ("help", 20, 3), ("complaint", 30, 5), ("report", 5, 5),
           ("suggestion", 7, 10), ("praise", 3, 5)]
CHANNELS = [("phone", 70), ("web", 10), ("wechat", 12), ("miniprogram", 5), ("app", 3)]
MATTERS = ["urban.sanitation.street_vending", "urban.sanitation.garbage",
           "urban.roads.road_damage", "urban.roads.street_lights",
           "urban.housing.property_service", "utilities.water.outage",
           "utilities.power.outage", "utilities.heating_gas.gas",
           "environment.noise.construction_noise", "environment.air.dust",
           "labour.social_security.card", "labour.wages.unpaid_wages",
           "labour.housing_fund.withdrawal", "public_security.household.migration"]
# Local hours of arrival (each listed once per its weight): a day's peaks at 9-11 and 14-16.
HOURS = [7, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 12, 12, 13, 13, 14, 14, 14, 15, 15,
         15, 16, 16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 21, 22, 23, 0, 6, 8, 9, 10, 14, 15,
         16, 11]


# id, name, level, city, parent, unit
DepartmentRow = tuple[str, str, str, str | None, str | None, str]


def weighted(values: list[tuple[Any, int]]) -> list[Any]:
    """A 100-slot array: a uniform pick from it follows the weights."""
    out = [v for v, w in values for _ in range(w)]
    assert len(out) == 100, len(out)
    return out


def sql_array(values: list[Any]) -> str:
    return "ARRAY[" + ",".join(f"'{v}'" if isinstance(v, str) else str(v)
                               for v in values) + "]"


def seed_sql(n: int) -> list[tuple[str, str]]:
    """The seeding statements (name, SQL); ``:now`` is the end of the year of cases."""
    city_ix = sql_array(weighted([(i + 1, w) for i, (_, _, w) in enumerate(CITIES)]))
    appeal_ix = sql_array(weighted([(i + 1, w) for i, (_, w, _) in enumerate(APPEALS)]))
    channel_ix = sql_array(weighted([(i + 1, w) for i, (_, w) in enumerate(CHANNELS)]))
    cities = sql_array([c for c, _, _ in CITIES])
    units = sql_array([u for u, _ in UNITS])
    appeals = sql_array([a for a, _, _ in APPEALS])
    limits = sql_array([d for _, _, d in APPEALS])
    channels = sql_array([c for c, _ in CHANNELS])
    matters = sql_array(MATTERS)
    hours = sql_array(HOURS)
    province = sql_array([d for d, _ in PROVINCE])
    # One row per case with every draw and every instant of its story; what has not happened
    # by :now is cut off when the tables are filled.
    story = f"""
CREATE UNLOGGED TABLE bench_story AS
WITH r AS (
  SELECT i, random() AS r_city, random() AS r_hour, random() AS r_min,
         random() AS r_type, random() AS r_dept, random() AS r_path, random() AS r_sign,
         random() AS r_reply, random() AS r_fu, random() AS r_sat, random() AS r_res,
         random() AS r_link, random() AS r_ch, random() AS r_m, random() AS r_x,
         random() AS r_stuck
  FROM generate_series(1, {n}) AS i),
b AS (
  SELECT r.*, ({city_ix})[1 + floor(r_city * 100)::int] AS c_ix,
         ({appeal_ix})[1 + floor(r_type * 100)::int] AS a_ix,
         ({channel_ix})[1 + floor(r_ch * 100)::int] AS ch_ix,
         1 + floor(15 * r_dept * r_dept)::int AS u_ix,
         -- In arrival order (as a live table is: a month's rows are near each other).
         date_trunc('day', (:now - make_interval(days => floor(({n} - i) * 365.0 / {n})::int))
                    AT TIME ZONE '{TZ}')
           + make_interval(hours => ({hours})[1 + floor(r_hour * {len(HOURS)})::int],
                           mins => floor(r_min * 60)::int) AS t_local
  FROM r),
c AS (
  SELECT b.*, ({cities})[c_ix] AS city, ({appeals})[a_ix] AS appeal,
         ({limits})[a_ix] AS limit_days, ({channels})[ch_ix] AS channel,
         ({matters})[1 + (i % {len(MATTERS)})] AS matter,
         CASE WHEN (t_local AT TIME ZONE '{TZ}') >= :now
              THEN (t_local AT TIME ZONE '{TZ}') - interval '1 day'
              ELSE t_local AT TIME ZONE '{TZ}' END AS t0,
         (a_ix = 1 AND r_path < 0.6) OR (a_ix = 6 AND r_path < 0.8) AS direct,
         r_x < 0.06 AS returned, r_x >= 0.06 AND r_x < 0.16 AS assisted,
         r_x > 0.96 AS extended
  FROM b),
d AS (
  SELECT c.*,
         CASE WHEN r_dept > 0.97 THEN ({province})[1 + (i % {len(PROVINCE)})]
              ELSE city || '-' || ({units})[u_ix] END AS dept,
         city || '-' || ({units})[1 + (u_ix % 15)] AS dept_first,
         city || '-' || ({units})[1 + ((u_ix + 1) % 15)] AS dept_assist,
         t0 + make_interval(mins => 10 + floor(r_m * 50)::int) AS d1_at
  FROM c),
e AS (
  SELECT d.*, d1_at + interval '1 hour' AS r1_returned_at,
         CASE WHEN returned THEN d1_at + interval '90 minutes' ELSE d1_at END AS m_at
  FROM d),
f AS (
  SELECT e.*, m_at + interval '2 hours' AS m_sign_due,
         m_at + CASE WHEN r_sign < 0.85 THEN r_sign / 0.85 * interval '2 hours'
                     ELSE interval '2 hours' + (r_sign - 0.85) / 0.15 * interval '10 hours'
                END AS m_signed,
         m_at + make_interval(days => limit_days + CASE WHEN extended THEN 3 ELSE 0 END)
           AS m_due
  FROM e),
g AS (
  SELECT f.*,
         CASE WHEN r_reply < 0.88
              THEN m_signed + r_reply / 0.88 * 0.95 * greatest(m_due - m_signed, interval '1 hour')
              ELSE greatest(m_due, m_signed) + (r_reply - 0.88) / 0.12 * interval '3 days'
         END AS m_replied
  FROM f),
h AS (
  SELECT g.*, m_replied + interval '1 day' + r_m * interval '4 hours' AS fu1_at,
         r_fu < 0.85 AS reached,
         CASE WHEN r_sat < 0.7 THEN 'satisfied' WHEN r_sat < 0.9 THEN 'basic'
              ELSE 'unsatisfied' END AS sat1,
         r_res < 0.9 AS resolved1
  FROM g)
SELECT h.*, NOT direct AND r_stuck >= 0.02 AND reached
         AND (sat1 = 'unsatisfied' OR NOT resolved1) AS reopened,
       fu1_at + interval '1 hour' AS x_signed, fu1_at + interval '2 days' AS x_replied,
       fu1_at + interval '3 days' AS fu2_at,
       -- The backlog: a department that never signs (0.4 %) or never replies (1.6 %).
       CASE WHEN r_stuck < 0.004 THEN 'infinity'::timestamptz ELSE m_signed END AS s_signed,
       CASE WHEN r_stuck < 0.02 THEN 'infinity'::timestamptz ELSE m_replied END AS s_replied,
       CASE WHEN r_stuck < 0.02 THEN 'infinity'::timestamptz ELSE fu1_at END AS s_fu1
FROM h"""
    # The case as it is at :now: its last stage reached, the later instants not yet there.
    now_view = """
CREATE UNLOGGED TABLE bench_now AS
SELECT s.*,
  CASE WHEN direct THEN 0 WHEN reopened AND s_fu1 <= :now THEN (CASE WHEN returned THEN 3
       ELSE 2 END) WHEN returned AND r1_returned_at <= :now THEN 2 ELSE 1 END AS cur_round,
  CASE WHEN reopened AND s_fu1 <= :now THEN s_fu1 ELSE m_at END AS f_at,
  CASE WHEN reopened AND s_fu1 <= :now THEN x_signed ELSE s_signed END AS f_signed,
  CASE WHEN reopened AND s_fu1 <= :now THEN s_fu1 + interval '2 hours'
       ELSE m_sign_due END AS f_sign_due,
  CASE WHEN reopened AND s_fu1 <= :now THEN s_fu1 + make_interval(days => limit_days)
       ELSE m_due END AS f_due,
  CASE WHEN reopened AND s_fu1 <= :now THEN x_replied ELSE s_replied END AS f_replied,
  CASE WHEN reopened AND s_fu1 <= :now THEN fu2_at ELSE s_fu1 END AS f_fu
FROM bench_story s"""
    state = """
CASE WHEN direct THEN 'closed'
     WHEN f_fu <= :now THEN 'closed'
     WHEN f_replied + interval '1 hour' <= :now THEN 'follow_up'
     WHEN f_replied <= :now THEN 'replied'
     WHEN f_signed <= :now THEN 'handling'
     WHEN f_at <= :now THEN 'dispatched'
     WHEN returned AND r1_returned_at <= :now THEN 'returned'
     WHEN d1_at <= :now THEN 'dispatched'
     ELSE 'accepted' END"""
    fu_now = ("CASE WHEN reopened AND fu2_at <= :now THEN fu2_at WHEN s_fu1 <= :now THEN s_fu1"
              " END")
    cases = """
INSERT INTO cases (id, number, call_id, city, caller_hash, priority, flags, call_state, source,
                   arrived_at, created_at, updated_at, closed_at)
SELECT i, to_char(t0 AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || lpad(i::text, 8, '0'),
       CASE WHEN channel = 'phone' THEN 'node1:' || i END, city,
       substr(md5('caller' || (i % 700000)), 1, 40), 0, '[]'::json, 'ended',
       CASE WHEN channel = 'phone' THEN 'live' ELSE channel END, t0, t0, t0,
       CASE WHEN direct THEN t0 + interval '5 minutes' WHEN f_fu <= :now THEN f_fu END
FROM bench_now"""
    work = f"""
INSERT INTO case_work (case_id, state, channel, city, appeal_type, matter, round,
  lead_department, reopen_count, return_count, sign_due_at, due_at, light, supervised,
  followup_resolved, followup_satisfaction, followup_at, closed_how, accepted_at,
  dispatched_at, replied_at, closed_at, version, updated_at)
SELECT i, st, channel, city, appeal, matter, cur_round,
  CASE WHEN NOT direct THEN dept END,
  CASE WHEN reopened AND fu1_at <= :now THEN 1 ELSE 0 END,
  CASE WHEN returned AND r1_returned_at <= :now THEN 1 ELSE 0 END,
  CASE WHEN NOT direct THEN f_sign_due END, CASE WHEN NOT direct THEN f_due END,
  CASE WHEN st NOT IN ('dispatched', 'handling') THEN 'none'
       WHEN running < :now THEN 'red'
       WHEN :now >= f_at + 0.8 * (running - f_at) THEN 'yellow' ELSE 'green' END,
  st IN ('dispatched', 'handling') AND running < :now,
  CASE WHEN fu_at IS NOT NULL AND reached THEN (CASE WHEN fu_at = fu2_at THEN true
       ELSE resolved1 END) END,
  CASE WHEN fu_at IS NOT NULL AND reached THEN (CASE WHEN fu_at = fu2_at THEN 'satisfied'
       ELSE sat1 END) END,
  fu_at,
  CASE WHEN direct THEN 'direct' WHEN st = 'closed' THEN 'follow_up' END,
  t0, CASE WHEN NOT direct AND f_at <= :now THEN f_at END,
  CASE WHEN NOT direct AND f_replied <= :now THEN f_replied END,
  CASE WHEN direct THEN t0 + interval '5 minutes' WHEN st = 'closed' THEN f_fu END,
  1, t0
FROM (SELECT n.*, {state} AS st, {fu_now} AS fu_at,
             CASE WHEN {state} = 'dispatched' THEN f_sign_due ELSE f_due END AS running
      FROM bench_now n) AS x"""

    def dispatch(where: str, dept: str, rnd: str, at: str, sign_due: str, signed: str,
                 due: str, replied: str, role: str = "'lead'", state: str | None = None,
                 returned: str = "NULL::timestamptz", ext: str = "false") -> str:
        st = state or (f"CASE WHEN {replied} <= :now THEN 'replied' WHEN {signed} <= :now "
                       f"THEN 'signed' ELSE 'pending' END")
        return f"""
INSERT INTO case_dispatches (case_id, department_id, city, round, role, state, dispatched_at,
  dispatched_by, sign_due_at, signed_at, due_at, returned_at, replied_at, extension_state,
  extension_days, extension_granted_days, updated_at)
SELECT i, {dept}, city, {rnd}, {role}, {st}, {at}, 'agent', {sign_due},
  CASE WHEN {signed} <= :now THEN {signed} END, {due}, {returned},
  CASE WHEN {replied} <= :now THEN {replied} END,
  CASE WHEN {ext} THEN 'approved' END, CASE WHEN {ext} THEN 3 ELSE 0 END,
  CASE WHEN {ext} THEN 3 ELSE 0 END, {at}
FROM bench_now WHERE NOT direct AND {at} <= :now AND {where}"""

    main_round = "CASE WHEN returned THEN 2 ELSE 1 END"
    return [
        ("story", story),
        ("now", now_view),
        ("cases", cases),
        ("case_work", work),
        ("dispatches: 退单 first rounds", dispatch(
            "returned", "dept_first", "1", "d1_at", "d1_at + interval '2 hours'",
            "NULL::timestamptz", "d1_at + make_interval(days => limit_days)",
            "NULL::timestamptz", state="'returned'",
            returned="r1_returned_at")),
        ("dispatches: lead", dispatch(
            "true", "dept", main_round, "m_at", "m_sign_due", "s_signed", "m_due",
            "s_replied", ext="extended")),
        ("dispatches: 协办", dispatch(
            "assisted", "dept_assist", main_round, "m_at", "m_sign_due",
            "m_at + r_sign * interval '4 hours'", "m_due", "'infinity'::timestamptz",
            role="'assist'")),
        ("dispatches: 重办 rounds", dispatch(
            "reopened", "dept", main_round + " + 1", "fu1_at",
            "fu1_at + interval '2 hours'", "x_signed",
            "fu1_at + make_interval(days => limit_days)", "x_replied")),
        ("case_links", f"""
INSERT INTO case_links (case_id, linked_case_id, reason, created_at)
SELECT i, i - 1 - floor(r_m * 40)::int,
       CASE WHEN r_link < 0.08 THEN 'repeat_caller' ELSE 'repeat_place' END, t0
FROM bench_story WHERE r_link < 0.12 AND i > 41 AND i <= {n}"""),
        ("sequences", """
SELECT setval('cases_id_seq', (SELECT max(id) FROM cases)),
       setval('case_dispatches_id_seq', (SELECT max(id) FROM case_dispatches)),
       setval('case_links_id_seq', (SELECT max(id) FROM case_links))"""),
        ("drop story", "DROP TABLE bench_story; DROP TABLE bench_now"),
    ]


async def seed(dsn: str, n: int, now: datetime) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    out: dict[str, Any] = {"steps": {}}
    try:
        await conn.execute("SET synchronous_commit = off")
        # The story's long expressions would take PostgreSQL's JIT a minute to compile.
        await conn.execute("SET jit = off")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute("SET work_mem = '64MB'")
        await conn.execute("SELECT setseed(0.12345)")
        rows: list[DepartmentRow] = [(f"{c}-{u}", f"{name}{unit}", "city", c, None, unit)
                                     for c, name, _ in CITIES for u, unit in UNITS]
        rows += [(d, name, "province", None, None, name) for d, name in PROVINCE]
        await conn.executemany(
            "INSERT INTO departments (id, name, level, city, parent_id, unit, active, "
            "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, true, now(), now())", rows)
        out["departments"] = len(rows)
        now_lit = f"'{now.isoformat()}'::timestamptz"
        for name, sql in seed_sql(n):
            started = time.monotonic()
            await conn.execute(sql.replace(":now", now_lit))
            out["steps"][name] = round(time.monotonic() - started, 1)
            emit(bench="case_loop_scale", phase="seed", step=name,
                 seconds=out["steps"][name])
        started = time.monotonic()
        await conn.execute("VACUUM ANALYZE")
        out["steps"]["vacuum analyze"] = round(time.monotonic() - started, 1)
    finally:
        await conn.close()
    return {**out, **await describe(dsn)}


async def describe(dsn: str) -> dict[str, Any]:
    """What the database holds."""
    conn = await asyncpg.connect(dsn)
    out: dict[str, Any] = {}
    try:
        for table in ("cases", "case_work", "case_dispatches", "case_links", "departments"):
            out[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
        out["lights"] = {r["light"]: r["n"] for r in await conn.fetch(
            "SELECT light, count(*) AS n FROM case_work GROUP BY light")}
        out["states"] = {r["state"]: r["n"] for r in await conn.fetch(
            "SELECT state, count(*) AS n FROM case_work GROUP BY state")}
        out["size"] = await conn.fetchval(
            "SELECT pg_size_pretty(pg_database_size(current_database()))")
    finally:
        await conn.close()
    return out


# -- the measurements ---------------------------------------------------------------------------


@dataclass
class Measure:
    name: str
    schema: str
    ms: list[float] = field(default_factory=list)
    plans: list[tuple[str, str]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "schema": self.schema, "min_ms": round(min(self.ms), 1),
                "median_ms": round(statistics.median(self.ms), 1),
                "runs_ms": [round(x, 1) for x in self.ms], **self.detail}


class Captured:
    """The SQL a call sends (the driver's text and parameters), to be explained afterwards."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        if not statement.lstrip().upper().startswith("SET"):
            self.statements.append((statement, parameters))

    async def run(self, call: Callable[[], Awaitable[Any]]) -> Any:
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._seen)
        try:
            return await call()
        finally:
            event.remove(self.engine.sync_engine, "before_cursor_execute", self._seen)

    async def explain(self, *, jit_off: bool) -> list[tuple[str, str]]:
        """Each statement's plan, run as the call ran it (``jit_off``: the report's session
        turns PostgreSQL's JIT off)."""
        out = []
        for i, (sql, params) in enumerate(self.statements, start=1):
            async with self.engine.begin() as conn:
                if jit_off:
                    await conn.exec_driver_sql("SET LOCAL jit = off")
                rows = (await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}",
                                                   tuple(params or ()))).all()
            shown = f"{sql}\n-- parameters: {list(params or ())}"
            out.append((f"statement {i}", shown + "\n\n" + "\n".join(r[0] for r in rows)))
        return out


async def timed(repeat: int, run: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    out: list[float] = []
    result: Any = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await run()
        out.append((time.perf_counter() - started) * 1000)
    return out, result


async def measure(engine: AsyncEngine, schema: str, now: datetime, repeat: int
                  ) -> list[Measure]:
    sessions = sessionmaker(engine)
    tz = ZoneInfo(TZ)
    taxonomy = Taxonomy.load()
    reports = LoopReports(sessions, TZ, {c: n for c, n, _ in CITIES}, clock=lambda: now)
    local_today = now.astimezone(tz).date()
    month: Period = previous_period("month", local_today, tz)
    week: Period = previous_period("week", local_today, tz)
    async with sessions() as s:
        busiest = (await s.execute(text(
            "SELECT lead_department FROM case_work WHERE light = 'red' "
            "GROUP BY lead_department ORDER BY count(*) DESC LIMIT 1"))).scalar_one()
    out: list[Measure] = []
    # The supervisors' list as the console asks for it: a province supervisor (no
    # need-to-know condition) and a city's (its Scope condition on the case's city).
    lists = [("督办 list: red, page 1", SupervisionFilter(light="red"), None),
             ("督办 list: yellow, page 1", SupervisionFilter(light="yellow"), None),
             (f"督办 list: red, department {busiest}",
              SupervisionFilter(light="red", department=busiest), None),
             ("督办 list: red, a Suzhou supervisor", SupervisionFilter(light="red"),
              Case.city.in_(["suzhou"])),
             ("督办 list: red, page 20", SupervisionFilter(light="red", offset=950), None)]
    for name, f, visible in lists:
        m = Measure(name, schema)

        async def page(f: SupervisionFilter = f, visible: Any = visible) -> Any:
            async with sessions() as s:
                return await supervision(s, taxonomy, f, visible=visible,
                                         decrypt=lambda _t: "")
        captured = Captured(engine)
        await captured.run(page)
        m.ms, result = await timed(repeat, page)
        m.detail = {"rows": len(result["cases"]), "total": result["total"]}
        m.plans = await captured.explain(jit_off=False)
        out.append(m)
        emit(bench="case_loop_scale", phase="measure", **m.summary())
    asked = [(f"report: month {month.key} by department", Query(month, "department")),
             (f"report: month {month.key} by city", Query(month, "city")),
             (f"report: month {month.key} by department, suzhou",
              Query(month, "department", city="suzhou")),
             (f"report: week {week.key} by department", Query(week, "department"))]
    for i, (name, q) in enumerate(asked):
        m = Measure(name, schema)

        async def report(q: Query = q) -> Any:
            return await reports.report(q, as_of=now)
        captured = Captured(engine)
        await captured.run(report)
        m.ms, result = await timed(repeat, report)
        m.detail = {"rows": len(result.rows), "accepted": result.total.accepted,
                    "sign_rate": result.total.sign_rate, "handle_rate": result.total.handle_rate,
                    "satisfaction_rate": result.total.satisfaction_rate}
        if i in (0, 2):  # the plans of the province's and one city's department report
            m.plans = await captured.explain(jit_off=True)
        out.append(m)
        emit(bench="case_loop_scale", phase="measure", **m.summary())
    return out


def markdown(args: argparse.Namespace, seeded: dict[str, Any], index_s: float,
             results: list[Measure], load: dict[str, list[float]], now: datetime) -> str:
    lines = [
        "# The case loop on a million cases (bench/case_loop_scale.py)",
        "",
        f"Run {now.strftime('%Y-%m-%d %H:%M')} UTC on the shared 2-core machine (load "
        f"average {load['before']} before, {load['after']} after), PostgreSQL 15, "
        f"`--cases {args.cases} --repeat {args.repeat}`. Database {seeded.get('size')}.",
        "",
        "Seeded: " + ", ".join(f"{k} {seeded[k]:,}" for k in
                               ("cases", "case_work", "case_dispatches", "case_links",
                                "departments")) + ".",
        f"States at the end: {json.dumps(seeded['states'], ensure_ascii=False)}; lights: "
        f"{json.dumps(seeded['lights'])}.",
        (f"Database seeded by an earlier run (`--keep`), measured again: {seeded['reused']}."
         if seeded.get("reused") else
         "Seeding (s): " + ", ".join(f"{k} {v}" for k, v in seeded["steps"].items()) + "."),
        f"Creating 0017's indexes and analysing: {index_s:.1f} s.",
        "",
        "| query | schema | least ms | median ms | runs ms | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in results:
        s = m.summary()
        detail = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in m.detail.items())
        lines.append(f"| {m.name} | {m.schema} | {s['min_ms']} | {s['median_ms']} | "
                     f"{s['runs_ms']} | {detail} |")
    lines += ["", "## Plans (EXPLAIN ANALYZE, BUFFERS)", ""]
    for m in results:
        for part, plan in m.plans:
            lines += [f"### {m.name} — {part} ({m.schema})", "", "```", plan, "```", ""]
    return "\n".join(lines) + "\n"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--database", help="measure a database seeded by an earlier --keep run "
                                      "instead of seeding a new one (kept)")
    p.add_argument("--out", type=Path, default=RESULTS / "case_loop_scale.md")
    args = p.parse_args()
    load = {"before": loadavg()}
    now = datetime.now(UTC).replace(microsecond=0)
    name = args.database or f"hotline_bench_loop_{secrets.token_hex(4)}"
    if not args.database:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    base = PG_ADMIN.rsplit("/", 1)[0]
    dsn = f"{base}/{name}"
    engine = make_engine(dsn.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        await migrate(engine)
        async with engine.begin() as conn:  # measured first without 0017's indexes
            for index, _, _, _ in INDEXES:
                await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
        if args.database:
            seeded = {"steps": {}, **await describe(dsn), "reused": name}
        else:
            started = time.monotonic()
            seeded = await seed(dsn, args.cases, now)
            seeded["seconds"] = round(time.monotonic() - started, 1)
        emit(bench="case_loop_scale", phase="seeded", **seeded)
        results = await measure(engine, WITHOUT, now, args.repeat)
        started = time.monotonic()
        async with engine.begin() as conn:
            for index, table, columns, where in INDEXES:
                await conn.exec_driver_sql(f"CREATE INDEX {index} ON {table} ({columns})"
                                           + (f" WHERE {where}" if where else ""))
            await conn.exec_driver_sql("ANALYZE case_work")
            await conn.exec_driver_sql("ANALYZE case_dispatches")
        index_s = time.monotonic() - started
        emit(bench="case_loop_scale", phase="indexes", seconds=round(index_s, 1))
        results += await measure(engine, WITH, now, args.repeat)
        load["after"] = loadavg()
        slowest = max((m for m in results if m.schema == WITH),
                      key=lambda m: statistics.median(m.ms))
        emit(bench="case_loop_scale", phase="summary", cases=seeded["cases"],
             slowest_after=slowest.summary(), under_a_second=all(
                 statistics.median(m.ms) < 1000 for m in results if m.schema == WITH),
             load=load)
        args.out.write_text(markdown(args, seeded, index_s, results, load, now),
                            encoding="utf-8")
    finally:
        await engine.dispose()
        if not args.keep and not args.database:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
