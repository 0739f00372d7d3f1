"""回访 calls (issue 17, item 6): the service calls the caller of a case waiting for 回访 over
the city's trunk, the caller answers two questions by key, and the case loop moves: 1,1 →
办结; 2,3 → 重办 (a new round dispatched to the same department). A busy caller is called
again after the retry spacing, every attempt on the case's timeline; a refused number is never
dialled; the worker restarted mid-call neither loses nor duplicates a task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from agent_desk.models import FollowUpTask
from cases.loop.states import Actor, Command
from cases.loop.store import Details
from tests.support.dialplan import wait_reading
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

AGENT = Actor("agent1", "agent")
SUP = Actor("sup1", "supervisor")
CG = Actor("cg-user", "department", "nj-chengguan")


async def start(services: Any, db: str, **follow_up: Any) -> Any:
    """The service with [follow_up] set for a test: any hour, quick looks and retries."""
    base = services.lab.cfg
    cfg = services.config(await services.database(db), follow_up=base.follow_up.model_copy(
        update={"hours": ["00:00-23:59"], "poll_s": 0.5, "retry_after_s": 5, "ring_s": 20,
                "key_timeout_s": 5.0, "concurrent": 1, **follow_up}))
    service = services.lab.build_service(cfg, cel_from_now=True, cel_interval_s=2.0,
                                         ami_options={"ping_interval": 1.0,
                                                      "ping_timeout": 1.0,
                                                      "backoff": (0.1, 0.2, 0.5)})
    await service.start()
    await service.wait_connected(20)
    services.services.append(service)
    return service


async def waiting_for_follow_up(svc: Any, caller: str) -> str:
    """A case taken on the web, dispatched, answered by its department and accepted: 待回访."""
    loop = svc.case_loop
    number: str = await loop.create_case(channel="web", city="nanjing", caller=caller)
    await loop.act(number, AGENT, Command("classify"), Details(
        appeal_type="complaint", matter="urban.sanitation.street_vending", district="xuanwu"))
    await loop.act(number, AGENT, Command("dispatch", lead="nj-chengguan"))
    await loop.act(number, CG, Command("sign"))
    await loop.act(number, CG, Command("reply", reason="已清理占道摊点"), Details(contacted=True))
    view = await loop.act(number, SUP, Command("review", accept=True))
    assert view["state"] == "follow_up"
    return number


async def tasks(svc: Any) -> list[FollowUpTask]:
    async with svc.store.sessions() as s:
        return list((await s.execute(select(FollowUpTask).order_by(FollowUpTask.id))
                     ).scalars())


async def answer_questions(lab: Any, phone: Any, call: Any, resolved: str,
                           satisfaction: str) -> None:
    """Answer the 回访 call: press each key once its question is asked."""
    await phone.answer(call)
    await asyncio.wait_for(call.answered.wait(), 15)
    await wait_reading(lab, "followup_resolved", context="hotline-followup", timeout=40)
    await phone.dtmf(call, resolved)
    await wait_reading(lab, "rating", context="hotline-followup")
    await phone.dtmf(call, satisfaction)
    await asyncio.wait_for(call.disconnected.wait(), 30)


async def state_of(svc: Any, number: str, state: str) -> dict[str, Any] | None:
    view: dict[str, Any] = await svc.case_loop.view(number)
    return view if view["state"] == state else None


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_answers_close_or_reopen_and_a_restart_neither_loses_nor_duplicates(
        lab, services, phones, sounds, db):
    # The callers' line: every 回访 call of this test rings here (one party, its port).
    line = await lab.caller("13900000000", play=sounds["caller_speech"])
    dial = f"PJSIP/trunk-{{trunk}}/sip:{{number}}@127.0.0.1:{line.port}"
    svc = await start(services, db, dial=dial)
    first = await waiting_for_follow_up(svc, "13900000001")
    second = await waiting_for_follow_up(svc, "13900000002")

    # The first call rings; the service stops mid-call (the attempt is claimed, the call is
    # Asterisk's now) and another one takes over the same database.
    ringing = await asyncio.wait_for(line.incoming.get(), 30)

    async def both_made() -> bool:
        made = await tasks(svc)
        return [(t.state, t.attempts) for t in made] == [("calling", 1), ("pending", 0)]

    await eventually(both_made, 15, what="the second case's task, waiting its turn")
    await services.stop(svc)
    assert await both_made()
    svc = await start(services, db, dial=dial)

    # 1,1: resolved and satisfied → 办结.
    await answer_questions(lab, line, ringing, "1", "1")
    closed = await eventually(lambda: state_of(svc, first, "closed"), 30,
                              what="the first case closed by its 回访")
    assert closed["closed_how"] == "follow_up"
    assert closed["followup"] == {"resolved": True, "satisfaction": "satisfied",
                                  "at": closed["followup"]["at"]}

    # The second caller is busy: called again after the spacing, then answers 2,3 → 重办.
    busy = await asyncio.wait_for(line.incoming.get(), 30)
    await line.answer(busy, code=486)
    await asyncio.wait_for(busy.disconnected.wait(), 15)
    again = await asyncio.wait_for(line.incoming.get(), 40)
    await answer_questions(lab, line, again, "2", "3")
    reopened = await eventually(lambda: state_of(svc, second, "dispatched"), 30,
                                what="the second case dispatched again (重办)")
    assert reopened["round"] == 2 and reopened["reopen_count"] == 1
    assert reopened["lead_department"] == "nj-chengguan"
    assert [d["round"] for d in reopened["dispatches"]] == [1, 2]
    assert reopened["followup"]["resolved"] is False
    assert reopened["followup"]["satisfaction"] == "unsatisfied"

    # One task per case, each call made once: the restart lost and repeated nothing.
    await svc.followups.drain()
    done = await eventually(lambda: _all_done(svc), 20, what="both tasks done")
    assert [(t.outcome, t.attempts, t.origin) for t in done] == [
        ("closed", 1, "loop"), ("reopened", 2, "loop")]
    assert line.incoming.empty()
    assert svc.followups.dialled == 2  # the new service: the busy attempt and its retry

    # Every attempt is on the case's timeline.
    case = await svc.store.get(second)
    kinds = [e.kind for e in sorted(case.events, key=lambda e: (e.at, e.id))
             if e.kind.startswith("followup.")]
    assert kinds == ["followup.dialing", "followup.busy", "followup.dialing",
                     "followup.answered", "followup.answers", "followup.reopened"], kinds
    case = await svc.store.get(first)
    kinds = [e.kind for e in case.events if e.kind.startswith("followup.")]
    assert sorted(kinds) == sorted(["followup.dialing", "followup.answered",
                                    "followup.answers", "followup.closed"]), kinds
    await line.close()


async def _all_done(svc: Any) -> list[FollowUpTask] | None:
    made = await tasks(svc)
    return made if made and all(t.state == "done" for t in made) else None


async def test_a_refused_number_is_never_dialled(lab, services, phones):
    line = await lab.caller("13900000000")
    svc = await start(services, "sqlite",
                      dial=f"PJSIP/trunk-{{trunk}}/sip:{{number}}@127.0.0.1:{line.port}")
    # A caller ID that is no Chinese mobile or landline (an international premium number).
    number = await waiting_for_follow_up(svc, "00882161234567")
    refused = await eventually(lambda: _all_refused(svc), 20, what="the task refused")
    [task] = refused
    assert task.attempts == 0 and task.outcome == "refused"
    assert "may dial only" in task.reason and "00882161234567" not in task.reason
    assert svc.followups.dialled == 0 and line.incoming.empty()
    case = await svc.store.get(number)
    kinds = [e.kind for e in case.events if e.kind.startswith("followup.")]
    assert kinds == ["followup.refused"], kinds
    assert (await svc.case_loop.view(number))["state"] == "follow_up"  # for a person to call
    await line.close()


async def _all_refused(svc: Any) -> list[FollowUpTask] | None:
    made = await tasks(svc)
    return made if made and all(t.state == "refused" for t in made) else None
