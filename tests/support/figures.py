"""Seeding call facts and presence changes for the agent-figures tests: a call's facts as
the tracker would apply them (arrived, routed, queued, rings, answer, transfer, end, rating)."""

from __future__ import annotations

from cases.store import CaseStore
from common.facts import CallFact


async def call(store: CaseStore, cid: str, start: float, rings: list[tuple[str, float, bool]],
               talk_s: float, rating: str | None, *, transfer: str | None = None) -> None:
    """A call to nanjing's queue: rings (agent, offset, answered), then talk, end, rating."""
    def fact(kind: str, t: float, **data):  # type: ignore[no-untyped-def]
        return CallFact(kind, cid, "n1", t, data)

    facts = [fact("arrived", start, caller="13900001111", dialed="12345",
                  uniqueid=f"{cid}.1", channel="PJSIP/trunk-nanjing-1"),
             fact("routed", start, queue="nanjing-general", city="nanjing"),
             fact("queued", start, queue="nanjing-general")]
    end = start
    for i, (agent, offset, answered) in enumerate(rings):
        uid = f"{cid}.{i + 2}"
        facts.append(fact("ringing", start + offset, uniqueid=uid, agent=agent,
                          channel=f"PJSIP/{agent}-{i}"))
        if not answered:
            facts.append(fact("ring_noanswer", start + offset + 15, uniqueid=uid))
            continue
        t0 = start + offset + 3
        facts.append(fact("answered", t0, uniqueid=uid, agent=agent, queue="nanjing-general",
                          hold_time=offset + 3, channel=f"PJSIP/{agent}-{i}"))
        if transfer:
            facts.append(CallFact("transfer_dialing", cid, "n1", t0 + 40, {
                "leg": f"{cid}.x", "kind": transfer, "number": "110", "name": "110",
                "mode": "emergency", "initiator": agent}))
        end = t0 + talk_s
        facts.append(fact("leg_ended", end, uniqueid=uid, cause=16))
        facts.append(fact("completed", end, talk_time=talk_s, reason="caller"))
    facts.append(fact("ended", end, hangup_by="caller"))
    if rating:
        facts.append(fact("rated", end + 5, rating=rating))
    for f in facts:
        await store.apply(f)
