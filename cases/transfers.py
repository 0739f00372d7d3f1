"""Transfers and hand-overs on the case record.

Applies the facts of ``telephony.transfers.services`` to the case: one ``transfer_legs`` row per leg
(keyed by the leg id, which is the destination channel's uniqueid), the leg in ``call_legs``
(role ``transfer``), and the case's flags. The store calls this once per fact key, and columns
are only filled, never overwritten, so the same leg reported live and again after a reconnect
stays one row with the first values learnt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cases.legs import LegIndex
from cases.models import TransferRecord
from cases.rows import Row
from common.facts import CallFact


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _fill(obj: Any, **values: Any) -> None:
    for k, v in values.items():
        if v is not None and v != "" and getattr(obj, k) in (None, ""):
            setattr(obj, k, v)


def _flag(case: Row, *flags: str) -> None:
    case.flags = sorted(set(case.flags or []) | set(flags))


async def apply_transfer_fact(session: AsyncSession, case: Row, fact: CallFact,
                              legs: LegIndex) -> None:
    d = fact.data
    at = _ts(fact.at)
    kind = fact.kind
    if kind == "handover":
        _fill(case, referred_by=d.get("referring_line") or d.get("trunk"))
        priority = int(d.get("priority") or 0)
        if priority > (case.priority or 0):
            case.priority = priority
        _flag(case, "handover")
        return
    if kind == "requeued":
        _flag(case, "requeued")
        return
    leg_id = str(d.get("leg") or "")
    if not leg_id:
        return
    rec = (await session.execute(
        select(TransferRecord).where(TransferRecord.case_id == case.id,
                                     TransferRecord.leg_id == leg_id)
    )).scalar_one_or_none()
    if rec is None:
        rec = TransferRecord(case_id=case.id, leg_id=leg_id,
                             destination=str(d.get("destination") or "unknown")[:32],
                             handed_off=False)
        session.add(rec)
    if rec.destination == "unknown" and d.get("destination"):
        rec.destination = str(d["destination"])[:32]  # a later fact came first
    leg = legs.get_or_add(case, leg_id, role="transfer")
    if kind == "transfer_dialing":
        _fill(rec, kind=d.get("kind"), number=d.get("number"), name=d.get("name"),
              category=d.get("category"), mode=d.get("mode"), initiator=d.get("initiator"),
              dialed_at=at)
        _fill(leg, party=d.get("number"), started_at=at)
        _flag(case, "transferred", *(["emergency"] if d.get("kind") == "emergency_line" else []))
    elif kind == "transfer_ringing":
        _fill(rec, channel=d.get("channel"))
        _fill(leg, channel=d.get("channel"))
    elif kind == "transfer_answered":
        _fill(rec, channel=d.get("channel"), answered_at=at, outcome="answered")
        _fill(leg, channel=d.get("channel"), answered_at=at, outcome="answered")
    elif kind == "transfer_taken":
        # A skill queue's leg: the agent its queue connected (on this node or another's).
        _fill(leg, party=d.get("agent"))
        _fill(rec, number=d.get("agent"))
    elif kind == "transfer_three_way":
        _fill(rec, three_way_at=at)
    elif kind == "transfer_agent_left":
        _fill(rec, agent_left_at=at, agent_left_how=d.get("how"))
        if d.get("handed_off"):
            rec.handed_off = True
            _flag(case, "handed_off")
        if d.get("how") == "lost":
            _flag(case, "agent_lost")
    elif kind == "transfer_failed":
        _fill(rec, outcome=d.get("outcome"), reason=d.get("reason"), ended_at=at,
              hangup_cause=d.get("cause"))
        _fill(leg, outcome=d.get("outcome"), ended_at=at, hangup_cause=d.get("cause"))
    elif kind == "transfer_ended":
        _fill(rec, ended_at=at, ended_by=d.get("ended_by"), reason=d.get("reason"),
              hangup_cause=d.get("cause"), outcome=d.get("outcome"))
        _fill(leg, ended_at=at, hangup_cause=d.get("cause"))

