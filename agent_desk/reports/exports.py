"""A loop report as a table, a CSV file and an XLSX workbook (the console's export and the
scheduled files). Chinese headers unless English is asked for.

Text cells go through ``spreadsheet_cell``: a department name an admin typed as ``=HYPERLINK(…)``
stays text in the spreadsheet, not a formula. The same report gives the same bytes (the
workbook's dates and its ZIP entries' times are fixed), so a file written again for the same
period is the same file.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from agent_desk.web.routes import spreadsheet_cell
from cases.loop.reports import Figures, Report


@dataclass(frozen=True)
class Column:
    field: str
    zh: str
    en: str
    kind: str  # text | count | rate | hours


COLUMNS: tuple[Column, ...] = (
    Column("name", "名称", "Name", "text"),
    Column("key", "编码", "Code", "text"),
    Column("accepted", "受理量", "Accepted", "count"),
    Column("sign_due", "应签收", "Due to be signed", "count"),
    Column("signed_on_time", "按时签收", "Signed on time", "count"),
    Column("sign_rate", "按时签收率", "Signed on time (rate)", "rate"),
    Column("handle_due", "应办结", "Due to be replied", "count"),
    Column("handled_on_time", "按时办结", "Replied on time", "count"),
    Column("handle_rate", "按时办结率", "Replied on time (rate)", "rate"),
    Column("followups", "回访接通", "Follow-ups reached", "count"),
    Column("satisfied", "满意及基本满意", "Satisfied or fairly satisfied", "count"),
    Column("satisfaction_rate", "满意率", "Satisfaction rate", "rate"),
    Column("resolved", "已解决", "Resolved", "count"),
    Column("resolution_rate", "解决率", "Resolution rate", "rate"),
    Column("reopen_base", "办结或回访", "Closed or followed up", "count"),
    Column("reopened", "重办", "Reopened", "count"),
    Column("reopen_rate", "重办率", "Reopen rate", "rate"),
    Column("repeats", "重复诉求", "Repeat requests", "count"),
    Column("repeat_rate", "重复诉求率", "Repeat request rate", "rate"),
    Column("replied", "答复数", "Replies", "count"),
    Column("avg_handle_hours", "平均办理时长（小时）", "Average handling time (hours)", "hours"),
)
WORDS = {
    "zh-CN": {"total": "合计", "department": "承办单位", "city": "城市",
              "no_department": "未派单", "no_city": "未知城市", "title": "12345热线办件报表",
              "by": "统计维度", "period": "统计周期", "trend": "趋势", "day_part": "时段",
              "accepted": "受理量", "closed": "办结量", "figures": "报表",
              "percent": "（%）"},
    "en": {"total": "Total", "department": "Department", "city": "City",
           "no_department": "(not dispatched)", "no_city": "(no city)",
           "title": "12345 hotline case report", "by": "By", "period": "Period",
           "trend": "Trend", "day_part": "Part", "accepted": "Accepted", "closed": "Closed",
           "figures": "Report", "percent": " (%)"},
}


def _words(lang: str) -> dict[str, str]:
    return WORDS.get(lang, WORDS["zh-CN"])


def headers(lang: str = "zh-CN") -> list[str]:
    return [c.zh if lang == "zh-CN" else c.en for c in COLUMNS]


def table(report: Report, lang: str = "zh-CN") -> list[list[Any]]:
    """The report's rows and its total as values: counts as integers, rates as fractions
    (None when nothing was due), hours as floats."""
    w = _words(lang)
    missing = w["no_department"] if report.by == "department" else w["no_city"]

    def line(name: str, key: str, fig: Figures) -> list[Any]:
        values = fig.as_dict()
        return [name, key, *(values[c.field] for c in COLUMNS[2:])]

    out = [line(r.name or (r.key or missing), r.key or "", r.figures) for r in report.rows]
    out.append(line(w["total"], "", report.total))
    return out


def _csv_cell(kind: str, v: Any) -> Any:
    if v is None:
        return ""
    if kind == "rate":
        return f"{v * 100:.2f}"
    if kind == "hours":
        return f"{v:.2f}"
    return spreadsheet_cell(v) if kind == "text" else v


def to_csv(report: Report, lang: str = "zh-CN") -> bytes:
    """UTF-8 with a byte order mark (spreadsheets then read the Chinese right); rates in per
    cent with two decimals, hours with two."""
    w = _words(lang)
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow([h + w["percent"] if c.kind == "rate" else h
                  for c, h in zip(COLUMNS, headers(lang), strict=True)])
    for row in table(report, lang):
        out.writerow([_csv_cell(c.kind, v) for c, v in zip(COLUMNS, row, strict=True)])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


# The workbook's own dates (a fixed value: the same report, the same bytes).
FIXED = datetime(2000, 1, 1)
HEADER_ROW = 4  # the figures sheet: title, period, grouping, then the header


def to_xlsx(report: Report, lang: str = "zh-CN") -> bytes:
    """Sheet 1: the figures (title, period and grouping above the header; rates as
    percentages, hours to two decimals). Sheet 2: accepted and closed per part of the period."""
    w = _words(lang)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = w["figures"]
    ws.append([w["title"]])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([w["period"], report.period.label(lang)])
    ws.append([w["by"], w[report.by]])
    ws.append(headers(lang))
    for cell in ws[HEADER_ROW]:
        cell.font = Font(bold=True)
    for row in table(report, lang):
        ws.append([spreadsheet_cell(v) if c.kind == "text" else v
                   for c, v in zip(COLUMNS, row, strict=True)])
        for c, cell in zip(COLUMNS, ws[ws.max_row], strict=True):
            if c.kind == "rate":
                cell.number_format = "0.00%"
            elif c.kind == "hours":
                cell.number_format = "0.00"
    ws.column_dimensions["A"].width = 30
    trend = wb.create_sheet(w["trend"])
    trend.append([w["day_part"], w["accepted"], w["closed"]])
    for p in report.series:
        trend.append([p.label, p.accepted, p.closed])
    wb.properties.creator = "hotline"
    wb.properties.created = wb.properties.modified = FIXED
    raw = io.BytesIO()
    wb.save(raw)
    return _fixed_zip(raw.getvalue())


MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


def _fixed_zip(data: bytes) -> bytes:
    """The same archive with every entry dated 1980-01-01 (ZIP's own epoch), and the
    workbook's "modified" (which openpyxl sets to the time of saving) fixed."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = MODIFIED.sub(rb"\g<1>" + FIXED.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
                                       + rb"\g<2>", content)
            dst.writestr(entry, content)
    return out.getvalue()
