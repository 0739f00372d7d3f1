"""Human-readable case summaries (the CLI and the demo print these)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from cases.models import Case


def _t(case_time: datetime | None, tz: ZoneInfo) -> str:
    return case_time.astimezone(tz).strftime("%H:%M:%S") if case_time else "-"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def format_case(case: Case, timezone: str = "Asia/Shanghai", *, timeline: bool = True) -> str:
    tz = ZoneInfo(timezone)
    head = (f"工单 {case.number}  caller {case.caller_masked or '-'}  dialed "
            f"{case.dialed_number or '-'}  city {case.city or '-'}  queue {case.queue or '-'}  "
            f"agent {case.agent_id or '-'}  wait {_s(case.wait_seconds)}  "
            f"talk {_s(case.talk_seconds)}  outcome {case.outcome or case.call_state}"
            f"  hung up by {case.hangup_by or '-'}  [{case.source}]")
    lines = [head]
    if case.route_reasons:
        lines.append(f"    {case.route_reasons}" + (f"  flags={','.join(case.flags)}"
                                                     if case.flags else ""))
    for t in case.__dict__.get("transfers") or []:  # loaded with the case
        notes = ", ".join(n for n, on in (("handed off", t.handed_off),
                                          (f"agent {t.agent_left_how}", t.agent_left_how),
                                          (f"ended by {t.ended_by}", t.ended_by)) if on)
        lines.append(f"    transfer {t.number} {t.name or t.destination} [{t.mode}] by "
                     f"{t.initiator or '-'}: {t.outcome or 'in progress'}"
                     + (f" ({t.reason})" if t.reason and t.outcome != "answered" else "")
                     + (f"; {notes}" if notes else "")
                     + f"  {_t(t.dialed_at, tz)}-{_t(t.ended_at, tz)}")
    if case.referred_by:
        lines.append(f"    handed over by {case.referred_by}")
    if timeline:
        for e in case.events:
            detail = {k: v for k, v in e.detail.items()
                      if k in ("queue", "agent", "key", "hold_time", "talk_time", "reason",
                               "hangup_by", "dialed", "trunk", "destination", "outcome",
                               "how", "ended_by", "referring_line")}
            extra = " ".join(f"{k}={v}" for k, v in detail.items())
            lines.append(f"    {_t(e.at, tz)} {e.kind:<13} {extra}"
                         + (f"  ({e.source})" if e.source not in ("live", "router") else ""))
    return "\n".join(lines)
