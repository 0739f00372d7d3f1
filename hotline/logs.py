"""Structured logs: one JSON object per line (or key=value text for people), with the call's
id and case number on every line about a call, and callers' numbers never in clear."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

from hotline.privacy import mask_number

call_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "call_context", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}
_PERSONAL = ("caller", "number", "phone")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ctx = call_context.get()
    if ctx:
        out.update(ctx)
    for k, v in record.__dict__.items():
        if k in _STANDARD or k.startswith("_"):
            continue
        if any(p in k for p in _PERSONAL) and isinstance(v, str) and k != "caller_masked":
            v = mask_number(v)
        out[k] = v
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = (f"{time.strftime('%H:%M:%S', time.localtime(record.created))}"
                f".{int(record.msecs):03d} {record.levelname[:4]} {record.name}: "
                f"{record.getMessage()}" + (f"  {extras}" if extras else ""))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiosqlite", "asyncio", "panoramisk", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
