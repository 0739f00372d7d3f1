"""Loop reports: the query's parameters and the answer's schema."""

from __future__ import annotations

from typing import Any

from agent_desk.web.routes import DATE, SN, I, N, S, obj, ref
from cases.loop.reports import GROUPS, PERIODS, RATES, Figures

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("csv", "xlsx")
LANGS = ("zh-CN", "en")
REPORT_PARAMS = ("period", "date", "by", "city", "department")
REPORT_QUERY: dict[str, dict[str, Any]] = {
    "period": {"enum": list(PERIODS)},
    # Any day of the period (default: today); 2000-01-01 to 2099-12-31.
    "date": DATE,
    "by": {"enum": list(GROUPS)},
    "city": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,31}$"},
    "department": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,32}$"},
    "format": {"enum": list(FORMATS)},
    "lang": {"enum": list(LANGS)},
}

NUMBER: dict[str, Any] = {"type": "number"}
FIGURES = obj({**{name: NUMBER if name == "handle_hours" else I
                  for name in Figures.__dataclass_fields__},
               **{name: N for name in RATES}})
SCHEMAS: dict[str, dict[str, Any]] = {"LoopFigures": FIGURES}
LOOP_REPORT = obj({
    "period": obj({"kind": {"enum": list(PERIODS)}, "key": S, "first": S, "last": S,
                   "label": S, "start": S, "end": S}),
    "by": {"enum": list(GROUPS)}, "city": SN, "department": SN,
    "rows": {"type": "array", "items": {"allOf": [ref("LoopFigures"),
                                                  obj({"key": SN, "name": S})]}},
    "total": ref("LoopFigures"),
    "series": {"type": "array", "items": obj({"label": S, "accepted": I, "closed": I})},
    "cities": {"type": "array", "items": obj({"id": S, "name": S})},
})
EXPORT_OK = {"description": "the report as a file", "content": {
    "text/csv": {"schema": {"type": "string"}},
    XLSX: {"schema": {"type": "string", "format": "binary"}}}}
