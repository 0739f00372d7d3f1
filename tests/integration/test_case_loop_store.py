"""The case loop on real databases (SQLite and PostgreSQL): every state change through the
store, with its facts, its departments and its refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cases.db import sessionmaker
from cases.loop import states as st
from cases.loop.store import CaseLoop, DepartmentEntry, Details
from cases.loop.taxonomy import Taxonomy
from common.errors import DomainError
from common.privacy import PersonalData

AGENT = st.Actor("agent1", "agent")
SUP = st.Actor("sup1", "supervisor")
CG = st.Actor("cg-user", "department", "nj-chengguan")
RS = st.Actor("rs-user", "department", "nj-renshe")
WATER = st.Actor("water-user", "department", "nj-water")
CALLER = "13812345678"


@pytest.fixture
async def loop(migrated_engine):
    engine = migrated_engine
    clock = {"now": datetime(2026, 3, 2, 1, 0, tzinfo=UTC)}
    lp = CaseLoop(sessionmaker(engine), PersonalData("loop-test-key-0123456789abcdef"),
                  Taxonomy.load(), clock=lambda: clock["now"])
    await lp.upsert_departments([
        DepartmentEntry("nanjing", "南京市人民政府", "city", "nanjing"),
        DepartmentEntry("nj-chengguan", "南京市城市管理局", "city", "nanjing", "nanjing", "城管局"),
        DepartmentEntry("nj-renshe", "南京市人力资源和社会保障局", "city", "nanjing", "nanjing",
                        "人社局"),
        DepartmentEntry("nj-water", "南京水务集团", "city", "nanjing", "nanjing", "供水公司"),
    ])
    lp.test_clock = clock  # type: ignore[attr-defined]
    yield lp


def cmd(action: str, **kw) -> st.Command:
    return st.Command(action, **kw)


async def classified(lp: CaseLoop, matter="urban.sanitation.street_vending",
                     appeal="complaint", address="玄武区珠江路88号", caller=CALLER) -> str:
    number = await lp.create_case(channel="web", city="nanjing", caller=caller)
    await lp.act(number, AGENT, cmd("classify"),
                 Details(appeal_type=appeal, matter=matter, district="xuanwu", address=address))
    return number


async def test_whole_loop_dispatch_sign_reply_review_follow_up_close(loop):
    number = await classified(loop)
    v = await loop.act(number, AGENT, cmd("dispatch", lead="nj-chengguan",
                                          assist=("nj-renshe",)))
    assert v["state"] == "dispatched" and v["round"] == 1 and v["light"] == "green"
    assert {d["department"]: d["role"] for d in v["dispatches"]} == {
        "nj-chengguan": "lead", "nj-renshe": "assist"}
    assert v["matter_name"] == "城乡建设 › 市容环卫 › 占道经营"
    assert v["appeal_type_name"] == "投诉"
    v = await loop.act(number, RS, cmd("sign"))
    assert v["state"] == "dispatched"  # an assisting department does not move the case
    v = await loop.act(number, CG, cmd("sign"))
    assert v["state"] == "handling"
    await loop.act(number, CG, cmd("note", reason="已派执法队员现场查看"))
    v = await loop.act(number, CG, cmd("reply", reason="已清理占道摊点并加强巡查"),
                       Details(contacted=True))
    assert v["state"] == "replied"
    lead = next(d for d in v["dispatches"] if d["role"] == "lead")
    assert lead["reply"] == "已清理占道摊点并加强巡查" and lead["contacted_caller"] is True
    v = await loop.act(number, SUP, cmd("review", accept=False, reason="未说明后续巡查安排"))
    assert v["state"] == "handling"
    await loop.act(number, CG, cmd("reply", reason="已清理并安排每日巡查"), Details(contacted=True))
    v = await loop.act(number, SUP, cmd("review", accept=True))
    assert v["state"] == "follow_up"
    v = await loop.act(number, AGENT, cmd("follow_up", resolved=True, satisfaction="satisfied"))
    assert v["state"] == "closed" and v["closed_how"] == "follow_up"
    kinds = [f["kind"] for f in v["timeline"]]
    assert kinds == ["loop.accepted", "loop.classify", "loop.dispatch", "loop.sign",
                     "loop.sign", "loop.note", "loop.reply", "loop.review", "loop.reply",
                     "loop.review", "loop.follow_up"]
    assert all(f.get("by") for f in v["timeline"][1:])
    with pytest.raises(DomainError) as e:
        await loop.act(number, CG, cmd("note", reason="x"))
    assert e.value.code == "forbidden"


async def test_return_and_reassign_then_unsatisfied_follow_up_reopens(loop):
    number = await classified(loop)
    await loop.act(number, AGENT, cmd("dispatch", lead="nj-renshe"))
    with pytest.raises(DomainError) as e:
        await loop.act(number, RS, cmd("return"))
    assert e.value.code == "invalid"  # a return needs its reason
    v = await loop.act(number, RS, cmd("return", reason="不属于本单位职责，应由城管处理"))
    assert v["state"] == "returned" and v["return_count"] == 1
    with pytest.raises(DomainError) as e:
        await loop.act(number, CG, cmd("sign"))
    assert e.value.code == "forbidden"  # not dispatched to 城管 yet
    v = await loop.act(number, AGENT, cmd("dispatch", lead="nj-chengguan"))
    assert v["state"] == "dispatched" and v["round"] == 2
    await loop.act(number, CG, cmd("sign"))
    await loop.act(number, CG, cmd("reply", reason="已处理"), Details(contacted=False))
    await loop.act(number, SUP, cmd("review", accept=True))
    v = await loop.act(number, AGENT, cmd("follow_up", resolved=False,
                                           satisfaction="unsatisfied"))
    assert v["state"] == "dispatched" and v["reopen_count"] == 1 and v["round"] == 3
    assert [d["state"] for d in v["dispatches"] if d["round"] == 3] == ["pending"]


async def test_extension_asked_and_approved_moves_the_due_date(loop):
    number = await classified(loop, appeal="help", matter="utilities.water.outage")
    v = await loop.act(number, AGENT, cmd("dispatch", lead="nj-water"))
    due = datetime.fromisoformat(v["due_at"])
    await loop.act(number, WATER, cmd("sign"))
    with pytest.raises(DomainError):
        await loop.act(number, WATER, cmd("request_extension", days=0, reason="管网改造"))
    await loop.act(number, WATER, cmd("request_extension", days=5, reason="需更换主管道"))
    with pytest.raises(DomainError) as e:
        await loop.act(number, AGENT, cmd("decide_extension", accept=True))
    assert e.value.code == "forbidden"
    v = await loop.act(number, SUP, cmd("decide_extension", accept=True))
    assert datetime.fromisoformat(v["due_at"]) - due == timedelta(days=5)
    assert v["dispatches"][0]["extension"]["state"] == "approved"


async def test_direct_finish_needs_classification_and_merge_links(loop):
    number = await loop.create_case(channel="wechat", city="nanjing", caller=CALLER)
    with pytest.raises(DomainError) as e:
        await loop.act(number, AGENT, cmd("finish_direct"))
    assert e.value.code == "invalid"
    with pytest.raises(DomainError) as e:
        await loop.act(number, AGENT, cmd("classify"),
                       Details(appeal_type="complaint", matter="urban"))
    assert "group" in e.value.message
    first = await classified(loop, caller="13900000000")
    v = await loop.act(number, AGENT, cmd("merge"), Details(merge_into=first))
    assert v["state"] == "merged"
    with pytest.raises(DomainError):
        await loop.act(number, AGENT, cmd("dispatch", lead="nj-chengguan"))


async def test_repeat_complaints_linked_by_caller_and_by_place(loop):
    first = await classified(loop)
    loop.test_clock["now"] += timedelta(days=3)
    second = await classified(loop)  # same caller
    third = await classified(loop, caller="13700000000", address="玄武区 珠江路 88 号")
    other = await classified(loop, caller="13600000000", address="鼓楼区中山路1号")
    v2 = await loop.view(second)
    facts = {f["kind"]: f for f in v2["timeline"]}
    assert facts["loop.classify"]["repeats"] == [first]
    v3 = await loop.view(third)
    assert set(next(f for f in v3["timeline"] if f["kind"] == "loop.classify")["repeats"]) == {
        first, second}
    v4 = await loop.view(other)
    assert next(f for f in v4["timeline"] if f["kind"] == "loop.classify")["repeats"] == []


async def test_idempotency_key_applies_once_and_departments_are_checked(loop):
    number = await classified(loop)
    await loop.act(number, AGENT, cmd("dispatch", lead="nj-chengguan"))
    v1 = await loop.act(number, CG, cmd("sign"), idempotency_key="k-1")
    v2 = await loop.act(number, CG, cmd("sign"), idempotency_key="k-1")
    assert v1["version"] == v2["version"]
    other = await classified(loop)
    with pytest.raises(DomainError) as e:
        await loop.act(other, AGENT, cmd("dispatch", lead="nowhere"))
    assert e.value.code == "invalid"
    await loop.set_default("urban.sanitation.street_vending", "nanjing", "nj-chengguan")
    assert await loop.suggested_department("urban.sanitation.street_vending",
                                           "nanjing") == "nj-chengguan"
    assert await loop.suggested_department("urban.sanitation.street_vending", "suzhou") is None


async def test_places_are_told_apart_by_their_words_not_only_their_digits(loop):
    first = await classified(loop, caller="13500000001", address="玄武区珠江路88号")
    other = await classified(loop, caller="13500000002", address="秦淮区中山路88号")
    v = await loop.view(other)
    assert next(f for f in v["timeline"] if f["kind"] == "loop.classify")["repeats"] == []
    del first


async def test_loop_text_is_encrypted_rekeyed_and_erased_with_the_case(loop):
    from sqlalchemy import text

    from cases.loop.retention import LoopCaseEraser, rekey_tables
    from common.rekey import rekey

    number = await classified(loop)
    await loop.act(number, AGENT, cmd("dispatch", lead="nj-chengguan"))
    await loop.act(number, CG, cmd("sign"))
    await loop.act(number, CG, cmd("reply", reason="已联系张先生并清理摊点"), Details())
    async with loop.sessions() as s:
        rows = (await s.execute(text(
            "SELECT reply_enc FROM case_dispatches UNION ALL SELECT address_enc FROM case_work"
        ))).all()
        facts = (await s.execute(text("SELECT detail FROM call_events"))).all()
    dump = repr(rows) + repr(facts)
    assert "张先生" not in dump and "珠江路" not in dump
    # A new data key: the texts re-encrypted, the place hash recomputed (still links).
    new = PersonalData("loop-test-key-new-0123456789abc",
                       previous=["loop-test-key-0123456789abcdef"])
    await rekey(loop.sessions, rekey_tables(new))
    loop.personal = new
    v = await loop.view(number)
    assert v["dispatches"][0]["reply"] == "已联系张先生并清理摊点"
    again = await classified(loop, caller="13911112222")
    assert number in next(f for f in (await loop.view(again))["timeline"]
                          if f["kind"] == "loop.classify")["repeats"]
    # Retention: the department's words and the place go; the states stay.
    async with loop.sessions() as s, s.begin():
        case_id = (await s.execute(text("SELECT id FROM cases WHERE number = :n"),
                                   {"n": number})).scalar_one()
        await LoopCaseEraser().forget(s, [case_id], datetime.now(UTC), {})
    v = await loop.view(number)
    assert v["dispatches"][0]["reply"] == "" and v["state"] == "replied"
    assert all("reason" not in f for f in v["timeline"])
