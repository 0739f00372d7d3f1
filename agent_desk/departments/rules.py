"""What the department's side decides without I/O: when the caller's number is shown in
clear to a department, and the 红黄灯 of a dispatch as the department sees it.

The caller's number (docs/case-loop.md, "What a department sees"): masked (138****5678) for a
department, except for the 主办 (lead) department while it works on the case — its dispatch
signed for (签收) and not yet answered — when the 诉求类型 is one the department answers the
caller on (咨询, 求助, 投诉, 举报: the department calls the caller back with the result).
So a department that has not signed for the case (it may return it: not its matter) never
sees the number, an assisting department (协办: the lead answers the caller) never does, a
建议 or 表扬 needs no call back, and once the department has answered, the number is masked
again. Each time the number is shown in clear, the audit entry says so."""

from __future__ import annotations

from datetime import datetime

from cases.loop import states as st

# 诉求类型 the department answers the caller on (the dispatch asks for a call back).
CALLBACK_TYPES = ("consultation", "help", "complaint", "report")


def caller_in_clear(*, role: str, dispatch_state: str, appeal_type: str | None) -> bool:
    return role == st.LEAD and dispatch_state == st.SIGNED and appeal_type in CALLBACK_TYPES


def deadline(state: str, sign_due: datetime | None, due: datetime | None
             ) -> datetime | None:
    """The time limit the dispatch runs against now: signing for it while pending (待签收),
    answering while signed (办理中); none once answered or returned."""
    if state == st.PENDING:
        return sign_due
    if state == st.SIGNED:
        return due
    return None


def light(state: str, dispatched_at: datetime, sign_due: datetime | None,
          due: datetime | None, now: datetime, *, yellow_share: float,
          swept: str = "none") -> str:
    """红 (red) past the time limit (or the sweep says so); 黄 (yellow) once ``yellow_share``
    of it is used (or the deadline sweep, which counts working time, says so); else 绿
    (green); "none" for a dispatch whose clock has stopped. ``swept``: the case's light as
    the sweep keeps it (the lead dispatch's)."""
    limit = deadline(state, sign_due, due)
    if limit is None:
        return "none"
    if now > limit or swept == "red":
        return "red"
    total = (limit - dispatched_at).total_seconds()
    used = (now - dispatched_at).total_seconds()
    if swept == "yellow" or (total > 0 and used / total >= yellow_share):
        return "yellow"
    return "green"
