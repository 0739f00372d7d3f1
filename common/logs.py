"""Structured logs: one JSON object per line (or key=value text for people), with the call's
id and case number on every line about a call, and callers' numbers never in clear."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from common.privacy import mask_number

# The call the current code is about ({"call_id": ..., "case": ...}). Set with call_scope()
# around the handling of one call's event, request or job; tasks started inside inherit it.
call_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "call_context", default=None)


@contextlib.contextmanager
def call_scope(call_id: str | None, case: str | None = None) -> Iterator[None]:
    """Every log line inside is about this call (nothing when ``call_id`` is empty); the
    previous context comes back after, so nothing leaks to the next event's lines."""
    if not call_id and not case:
        yield
        return
    token = call_context.set({"call_id": call_id or "", "case": case or ""})
    try:
        yield
    finally:
        call_context.reset(token)


def note_case(call_id: str, number: str | None) -> None:
    """The case number of the call in scope became known: the next lines carry it."""
    ctx = call_context.get()
    if ctx is not None and number and ctx.get("call_id") == call_id:
        ctx["case"] = number


def note_call_id(number: str, call_id: str | None) -> None:
    """The call of the case in scope became known (a job that starts from a case number)."""
    ctx = call_context.get()
    if ctx is not None and call_id and ctx.get("case") == number and not ctx.get("call_id"):
        ctx["call_id"] = call_id

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}
_PERSONAL = ("caller", "number", "phone")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ctx = call_context.get()
    if ctx:
        # About a call: both keys, null where not known yet.
        out["call_id"] = ctx.get("call_id") or None
        out["case"] = ctx.get("case") or None
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
