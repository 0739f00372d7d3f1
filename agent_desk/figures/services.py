"""Agent figures per agent, team or city for today or a day, week or month, and the
staffing forecast per city and half-hour with the agents signed in: what the wallboard, the
reports page and the exports show (docs/agent-figures.md)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Font

from agent_desk.figures.compute import Figures
from agent_desk.figures.store import FiguresStore, grouped
from agent_desk.web.routes import spreadsheet_cell
from cases.loop.reports import Period, PeriodKind, period_of
from common.config import Config
from queueing.surge.forecast import Interval, interval_bounds, interval_of

By = Literal["agent", "team", "city"]
NO_TEAM = "-"


class StaffingSource(Protocol):
    """The staffing forecast (queueing/surge/staffing.py Staffing)."""

    async def day(self, city: str, day: date, signed_in: dict[int, int] | None = None
                  ) -> tuple[float, list[Interval]]: ...


@dataclass(frozen=True)
class Column:
    field: str
    zh: str
    en: str


COLUMNS = (
    Column("name", "名称", "Name"), Column("handled", "接听量", "Calls handled"),
    Column("avg_talk_s", "平均通话时长（秒）", "Average talk (s)"),
    Column("avg_wrap_s", "平均话后处理时长（秒）", "Average wrap-up (s)"),
    Column("signed_in_s", "签入时长（秒）", "Signed in (s)"),
    Column("paused", "示忙时长（秒，按原因）", "Paused (s, by reason)"),
    Column("occupancy", "占用率", "Occupancy"), Column("missed", "未接振铃", "Missed rings"),
    Column("transfers", "转接", "Transfers"),
    Column("emergency_transfers", "转紧急线路", "To emergency lines"),
    Column("satisfaction_rate", "满意率", "Satisfaction rate"),
    Column("qa_avg", "质检平均分", "Quality score"), Column("qa_count", "质检量", "Scored"),
)
FORECAST_COLUMNS = (
    Column("start", "时段", "Interval"), Column("expected_calls", "预测话务量", "Calls expected"),
    Column("agents_needed", "所需坐席（Erlang C）", "Agents needed (Erlang C)"),
    Column("signed_in", "签入坐席", "Agents signed in"),
    Column("forecast_sl", "预测服务水平", "Forecast service level"),
)


class AgentFiguresDesk:
    def __init__(self, cfg: Config, store: FiguresStore, staffing: StaffingSource):
        self.cfg = cfg
        self.store = store
        self.staffing = staffing
        self.tz = ZoneInfo(cfg.service.timezone)

    def period(self, kind: PeriodKind | Literal["today"], day: date | None = None) -> Period:
        today = datetime.now(self.tz).date()
        return period_of("day" if kind == "today" else kind, day or today, self.tz)

    def group_of(self, by: By) -> Any:
        agents = {a.id: a for a in self.cfg.agents}

        def of(agent: str) -> str:
            a = agents.get(agent)
            if a is None:
                return "?"
            return a.city if by == "city" else f"{a.city}/{a.team or NO_TEAM}"
        return of

    def name(self, by: By, key: str, lang: str = "zh-CN") -> str:
        cities = {c.id: c.name for c in self.cfg.cities}
        if by == "agent":
            try:
                return self.cfg.agent(key).name
            except KeyError:
                return key
        if by == "city":
            return cities.get(key, key)
        city, _, team = key.partition("/")
        none = "未分班组" if lang == "zh-CN" else "no team"
        return f"{cities.get(city, city)} · {none if team == NO_TEAM else team}"

    def city_of(self, by: By, key: str) -> str | None:
        if by == "agent":
            try:
                return self.cfg.agent(key).city
            except KeyError:
                return None
        return key.partition("/")[0]

    async def report(self, period: Period, by: By, *, city: str | None,
                     lang: str = "zh-CN", until: datetime | None = None) -> dict[str, Any]:
        """Rows per agent, team or city; ``until``: the end of "today" (now)."""
        end = min(period.end, until) if until is not None else period.end
        per_agent = await self.store.per_agent(period.start, end)
        if city is not None:
            per_agent = {a: f for a, f in per_agent.items()
                         if self.city_of("agent", a) == city}
        groups = grouped(per_agent, by, self.group_of(by))
        total = Figures()
        for f in groups.values():
            total.add(f)
        rows = [{"key": k, "name": self.name(by, k, lang), **f.as_dict()}
                for k, f in sorted(groups.items())]
        return {"period": {"kind": period.kind, "key": period.key,
                           "label": period.label(lang), "start": period.start.isoformat(),
                           "end": end.isoformat()},
                "by": by, "city": city, "rows": rows,
                "total": {"key": "", "name": "合计" if lang == "zh-CN" else "Total",
                          **total.as_dict()}}

    async def forecast(self, city: str, day: date) -> dict[str, Any]:
        """The city's half-hours on ``day``: calls expected, agents needed, agents signed in
        (from the presence facts, for the half-hours begun by now)."""
        now = datetime.now(self.tz)
        agents = [a.id for a in self.cfg.agents if a.city == city]
        bounds = [interval_bounds(day, i, self.tz) for i in range(48)]
        begun = [b for b in bounds if b[0] <= now]
        counts = await self.store.signed_in_per_interval(agents, begun)
        signed = dict(enumerate(counts))
        aht, intervals = await self.staffing.day(city, day, signed)
        s = self.cfg.surge
        current = interval_of(now, self.tz) if now.date() == day else None
        return {"city": city, "day": day.isoformat(), "aht_s": round(aht, 1),
                "target": {"service_level": s.target_sl, "seconds": s.target_s},
                "weeks": s.forecast_weeks, "current": current,
                "intervals": [i.__dict__ for i in intervals]}


def _cell(field: str, row: dict[str, Any]) -> Any:
    if field == "paused":
        return "; ".join(f"{k} {v:g}" for k, v in row.get("paused_s", {}).items())
    v = row.get(field)
    return spreadsheet_cell(v) if isinstance(v, str) else v


def figures_table(report: dict[str, Any], lang: str = "zh-CN") -> list[list[Any]]:
    head = [c.zh if lang == "zh-CN" else c.en for c in COLUMNS]
    rows = [[_cell(c.field, r) for c in COLUMNS] for r in [*report["rows"], report["total"]]]
    return [head, *rows]


def forecast_table(doc: dict[str, Any], lang: str = "zh-CN") -> list[list[Any]]:
    head = [c.zh if lang == "zh-CN" else c.en for c in FORECAST_COLUMNS]
    return [head, *[[i.get(c.field) for c in FORECAST_COLUMNS] for i in doc["intervals"]]]


def to_csv(table: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    for row in table:
        w.writerow(["" if v is None else v for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # the BOM: Excel reads it as UTF-8


def to_xlsx(table: list[list[Any]], title: str) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title[:31]
    for row in table:
        ws.append(row)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
