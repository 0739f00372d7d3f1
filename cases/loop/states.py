"""The case loop's states and what may change them: one pure function, ``decide()``.

    受理 accepted ─┬─ 直接办结 finish_direct ──────────────────────────────► 办结 closed
                  └─ 派单 dispatch ─► 待签收 dispatched ─┬─ 签收 sign ─► 办理中 handling
                                                        └─ 退单 return ─► 待改派 returned
    returned ── 改派 dispatch ─► dispatched
    handling ── 答复 reply ─► 待审核 replied ─┬─ 审核通过 review(accept) ─► 待回访 follow_up
                                              └─ 退回 review(reject) ─► handling
    follow_up ── 回访 follow_up(resolved, satisfied) ─► closed
              └─ 回访 (unresolved or unsatisfied) ─► 重办: a new round, dispatched again
    closed / follow_up ── 重办 reopen (supervisor) ─► dispatched (new round)
    accepted ── 并单 merge ─► merged (the case lives on in the one it was merged into)

A case may have several departments in a round: one 主办 (lead) and any 协办 (assist). The lead's
dispatch drives the case's state; an assisting department signs, notes and replies on its own
dispatch. The store (cases/loop/store.py) loads the view, asks ``decide`` and applies the
decision with the command's details, writing one timeline fact per change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.errors import DomainError

# Case states (case_work.state).
ACCEPTED, DISPATCHED, RETURNED, HANDLING = "accepted", "dispatched", "returned", "handling"
REPLIED, FOLLOW_UP, CLOSED, MERGED = "replied", "follow_up", "closed", "merged"
STATES = (ACCEPTED, DISPATCHED, RETURNED, HANDLING, REPLIED, FOLLOW_UP, CLOSED, MERGED)
OPEN_STATES = (ACCEPTED, DISPATCHED, RETURNED, HANDLING, REPLIED, FOLLOW_UP)
# The states in which a department holds the case (its time limit runs).
AT_DEPARTMENT = (DISPATCHED, HANDLING)

# Dispatch states (case_dispatches.state).
PENDING, SIGNED, RETURNED_D, REPLIED_D, CANCELLED = (
    "pending", "signed", "returned", "replied", "cancelled")

LEAD, ASSIST = "lead", "assist"
HOTLINE = ("agent", "supervisor", "admin")
SUPERVISORS = ("supervisor", "admin")
DEPARTMENT = "department"
SYSTEM = "system"  # the service itself: the follow-up call, the deadline sweep

Satisfaction = Literal["satisfied", "basic", "unsatisfied"]
SATISFACTION = ("satisfied", "basic", "unsatisfied")

ACTIONS = ("classify", "finish_direct", "dispatch", "sign", "return", "note",
           "request_extension", "decide_extension", "reply", "review", "follow_up", "close",
           "reopen", "merge")


@dataclass(frozen=True)
class DispatchView:
    department: str
    role: str  # lead | assist
    state: str
    extension_state: str | None = None  # requested | approved | refused


@dataclass(frozen=True)
class WorkView:
    """What ``decide`` needs to know of a case: its state and this round's dispatches."""

    state: str
    classified: bool
    round: int = 0
    dispatches: tuple[DispatchView, ...] = ()

    def dispatch_of(self, department: str | None) -> DispatchView | None:
        return next((d for d in self.dispatches
                     if d.department == department and d.state != CANCELLED), None)

    @property
    def lead(self) -> DispatchView | None:
        return next((d for d in self.dispatches if d.role == LEAD and d.state != CANCELLED),
                    None)


@dataclass(frozen=True)
class Actor:
    user: str
    role: str
    department: str | None = None  # for role "department"


@dataclass(frozen=True)
class Command:
    action: str
    # dispatch: the lead and assisting departments; department actions: taken from the actor.
    lead: str | None = None
    assist: tuple[str, ...] = ()
    accept: bool | None = None  # review, decide_extension
    resolved: bool | None = None  # follow_up
    satisfaction: str | None = None  # follow_up
    reached: bool = True  # follow_up: the caller was reached
    reason: str = ""
    days: int = 0  # request_extension


@dataclass(frozen=True)
class Decision:
    """What changes: the case's new state, per-department dispatch states, and whether a new
    round of dispatches starts (dispatch, 重办)."""

    state: str
    fact: str  # the timeline fact's kind: "loop.<action>"
    dispatch_states: dict[str, str] = field(default_factory=dict)
    new_round: bool = False
    reopened: bool = False
    closed_how: str | None = None  # direct | follow_up | supervisor


def refuse(code: str, message: str) -> DomainError:
    return DomainError(code, message)


def _need(ok: bool, code: str, message: str) -> None:
    if not ok:
        raise refuse(code, message)


def decide(work: WorkView, actor: Actor, cmd: Command) -> Decision:
    """The decision for ``cmd`` by ``actor`` on a case in ``work``, or a DomainError whose
    code says why not (``forbidden``: not this role's to do; ``conflict``: not in this
    state; ``invalid``: the command lacks something)."""
    a, s = cmd.action, work.state
    fact = f"loop.{a}"
    _need(a in ACTIONS, "invalid", f"unknown action {a!r}")
    hotline, supervisor = actor.role in HOTLINE, actor.role in SUPERVISORS
    system = actor.role == SYSTEM
    if s == MERGED or (s == CLOSED and a not in ("reopen", "note")):
        raise refuse("conflict", f"the case is {s}")

    if a == "classify":
        _need(hotline, "forbidden", "only the hotline classifies a case")
        _need(s in (ACCEPTED, RETURNED), "conflict", f"a case in state {s} keeps its class")
        return Decision(s, fact)
    if a == "finish_direct":
        _need(hotline, "forbidden", "only the hotline finishes a case on the phone")
        _need(s == ACCEPTED, "conflict", f"a case in state {s} cannot be finished directly")
        _need(work.classified, "invalid", "classify the case (诉求类型 and 事项) first")
        return Decision(CLOSED, fact, closed_how="direct")
    if a == "dispatch":
        _need(hotline, "forbidden", "only the hotline dispatches a case")
        _need(s in (ACCEPTED, RETURNED), "conflict", f"a case in state {s} cannot be dispatched")
        _need(work.classified, "invalid", "classify the case (诉求类型 and 事项) first")
        _need(bool(cmd.lead), "invalid", "lead: the 主办 department is needed")
        _need(cmd.lead not in cmd.assist, "invalid", "assist: the lead cannot also assist")
        return Decision(DISPATCHED, fact, new_round=True)
    if a in ("sign", "return", "reply", "request_extension"):
        _need(actor.role == DEPARTMENT and bool(actor.department), "forbidden",
              "only the department the case was dispatched to does this")
        d = work.dispatch_of(actor.department)
        _need(d is not None and s in (DISPATCHED, HANDLING, REPLIED, RETURNED), "forbidden",
              "the case is not dispatched to this department")
        assert d is not None
        lead = d.role == LEAD
        if a == "sign":
            _need(d.state == PENDING, "conflict", f"the dispatch is {d.state}, not pending")
            return Decision(HANDLING if lead else s, fact, {d.department: SIGNED})
        if a == "return":
            _need(d.state in (PENDING, SIGNED), "conflict", f"the dispatch is {d.state}")
            _need(bool(cmd.reason.strip()), "invalid", "reason: say why the case is returned")
            if lead:
                # The assisting departments go back with it: 改派 starts a new round.
                others = {x.department: CANCELLED for x in work.dispatches
                          if x.department != d.department and x.state in (PENDING, SIGNED)}
                return Decision(RETURNED, fact, {d.department: RETURNED_D, **others})
            return Decision(s, fact, {d.department: RETURNED_D})
        if a == "request_extension":
            _need(d.state == SIGNED, "conflict", "sign for the case before asking for more time")
            _need(d.extension_state != "requested", "conflict", "an extension is already asked")
            _need(cmd.days > 0, "invalid", "days: how many working days more")
            _need(bool(cmd.reason.strip()), "invalid", "reason: say why more time is needed")
            return Decision(s, fact)
        # reply
        _need(d.state == SIGNED, "conflict", f"the dispatch is {d.state}; sign for it first")
        _need(bool(cmd.reason.strip()), "invalid", "reason: say what was done")
        return Decision(REPLIED if lead else s, fact, {d.department: REPLIED_D})
    if a == "note":
        if actor.role == DEPARTMENT:
            d = work.dispatch_of(actor.department)
            _need(d is not None and d.state in (SIGNED, REPLIED_D) and s != CLOSED,
                  "forbidden", "the department notes a case it holds")
        else:
            _need(hotline, "forbidden", "not allowed")
        _need(bool(cmd.reason.strip()), "invalid", "reason: the note's text is empty")
        return Decision(s, fact)
    if a == "decide_extension":
        _need(supervisor, "forbidden", "a supervisor decides on extensions")
        asked = [x for x in work.dispatches if x.extension_state == "requested"]
        _need(bool(asked), "conflict", "no extension is asked")
        _need(cmd.accept is not None, "invalid", "accept: true or false")
        return Decision(s, fact)
    if a == "review":
        _need(hotline, "forbidden", "the hotline reviews the reply")
        _need(s == REPLIED, "conflict", f"a case in state {s} has no reply to review")
        _need(cmd.accept is not None, "invalid", "accept: true or false")
        if cmd.accept:
            return Decision(FOLLOW_UP, fact)
        _need(bool(cmd.reason.strip()), "invalid", "reason: say why the reply is sent back")
        lead_d = work.lead
        assert lead_d is not None
        return Decision(HANDLING, fact, {lead_d.department: SIGNED})
    if a == "follow_up":
        _need(hotline or system, "forbidden", "the hotline follows up")
        _need(s == FOLLOW_UP, "conflict", f"a case in state {s} is not waiting for 回访")
        if not cmd.reached:
            return Decision(CLOSED, fact, closed_how="follow_up")
        _need(cmd.resolved is not None, "invalid", "resolved: true or false")
        _need(cmd.satisfaction in SATISFACTION, "invalid",
              "satisfaction: satisfied, basic or unsatisfied")
        if cmd.resolved and cmd.satisfaction != "unsatisfied":
            return Decision(CLOSED, fact, closed_how="follow_up")
        _need(work.lead is not None, "conflict", "no department to reopen the case to")
        return Decision(DISPATCHED, fact, new_round=True, reopened=True)
    if a == "close":
        _need(supervisor, "forbidden", "a supervisor closes a case outside 回访")
        _need(s == FOLLOW_UP, "conflict", f"a case in state {s} cannot be closed")
        return Decision(CLOSED, fact, closed_how="supervisor")
    if a == "reopen":
        _need(supervisor, "forbidden", "a supervisor reopens a case")
        _need(s in (CLOSED, FOLLOW_UP), "conflict", f"a case in state {s} cannot be reopened")
        _need(work.lead is not None, "conflict", "the case was never dispatched")
        _need(bool(cmd.reason.strip()), "invalid", "reason: say why the case is reopened")
        return Decision(DISPATCHED, fact, new_round=True, reopened=True)
    # merge
    _need(hotline, "forbidden", "the hotline merges cases")
    _need(s in (ACCEPTED, RETURNED), "conflict", f"a case in state {s} cannot be merged")
    return Decision(MERGED, fact)
