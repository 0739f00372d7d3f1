"""The 承办单位 directory from configuration and CSV (id,name,level,city,parent,unit,
webhook_url; a header row; UTF-8 with or without BOM)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cases.loop.store import DepartmentEntry
from common.config import CaseLoopSection

COLUMNS = ("id", "name", "level", "city", "parent", "unit", "webhook_url")


class DirectoryError(ValueError):
    """A directory file that cannot be used; the message names the row and column."""


def parse_csv(text: str, where: str = "departments") -> list[DepartmentEntry]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in ("id", "name", "level") if c not in (reader.fieldnames or [])]
    if missing:
        raise DirectoryError(f"{where}: columns {', '.join(missing)} are needed")
    out, problems = [], []
    for n, row in enumerate(reader, start=2):
        e = DepartmentEntry(
            id=(row.get("id") or "").strip(), name=(row.get("name") or "").strip(),
            level=(row.get("level") or "").strip(), city=(row.get("city") or "").strip() or None,
            parent_id=(row.get("parent") or "").strip() or None,
            unit=(row.get("unit") or "").strip(),
            webhook_url=(row.get("webhook_url") or "").strip() or None)
        problems += [f"{where} row {n}: {p}" for p in e.problems()]
        out.append(e)
    if problems:
        raise DirectoryError("; ".join(problems))
    return out


def to_csv(entries: list[DepartmentEntry]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for e in entries:
        w.writerow([e.id, e.name, e.level, e.city or "", e.parent_id or "", e.unit,
                    e.webhook_url or ""])
    return buf.getvalue()


def configured(section: CaseLoopSection, base_dir: Path) -> list[DepartmentEntry]:
    """The configuration's departments: the file's (if any), then the list's."""
    out: list[DepartmentEntry] = []
    if section.departments_file is not None:
        p = section.departments_file
        p = p if p.is_absolute() else base_dir / p
        try:
            out += parse_csv(p.read_text(encoding="utf-8"), str(p))
        except OSError as exc:
            raise DirectoryError(f"case_loop.departments_file: {exc}") from None
    out += [DepartmentEntry(d.id, d.name, d.level, d.city, d.parent, d.unit, d.webhook_url)
            for d in section.departments]
    return out
