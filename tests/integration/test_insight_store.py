"""Hot topics and suggested classification on real databases (SQLite and PostgreSQL): cases
entered through the case loop and the console's form store, counted and tested by the insight
service as its worker would, alerts acknowledged and merged, the classifier trained on the
cases agents classified."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agent_desk.access import Scope
from agent_desk.cases.store import ConsoleStore
from agent_desk.insight.models import CaseTerm, HotAlert, Suggestion
from agent_desk.insight.services import Insight
from agent_desk.insight.store import InsightStore
from cases.db import sessionmaker
from cases.loop import states as st
from cases.loop.outbox import WebhookDelivery, WebhookOutbox
from cases.loop.store import CaseLoop, DepartmentEntry, Details
from cases.loop.taxonomy import Taxonomy
from common.config import InsightSection
from common.errors import DomainError
from common.privacy import PersonalData

DATA = Path(__file__).resolve().parents[1] / "data" / "insight" / "complaints.jsonl"
AGENT = st.Actor("agent1", "agent")
SUP = st.Actor("sup1", "supervisor")
OUTAGE = "utilities.water.outage"
DISTRICTS = ("xuanwu", "gulou", "qinhuai")
LONG_NUMBER = re.compile(r"[0-9０-９]{5,}")
# Now, to the minute: the cases' arrivals are placed around it (the rechecks of the form store
# look at when rows were written, which is now too).
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def labelled() -> dict[str, list[dict[str, str]]]:
    by: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in DATA.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by[row["matter"]].append(row)
    return by


class World:
    def __init__(self, loop: CaseLoop, forms: ConsoleStore, insight: Insight,
                 seen: list[str]):
        self.loop, self.forms, self.insight, self.seen = loop, forms, insight, seen
        self.texts = labelled()

    async def case(self, matter: str | None, district: str, at: datetime, row: dict[str, str],
                   *, caller: str | None = None) -> str:
        number = await self.loop.create_case(channel="web", city="nanjing", caller=caller,
                                             at=at)
        await self.forms.save_form(number, {"subject": row["subject"],
                                            "content": row["content"]},
                                   by="agent1", scope=Scope.everything())
        if matter is not None:
            await self.loop.act(number, AGENT, st.Command("classify"),
                                Details(appeal_type="complaint", matter=matter,
                                        district=district))
        return number

    async def usual_day(self, day: int) -> list[str]:
        """An ordinary hour: 30 cases across 10 事项 and 3 districts (texts rotated by day)."""
        out = []
        matters = sorted(self.texts)[-10:]  # 停水 among them: once a district a day
        start = NOW - timedelta(weeks=day, minutes=58)
        for i in range(30):
            matter = matters[i % 10]
            pool = self.texts[matter]
            row = pool[(i // 10 + 3 * day) % len(pool)]
            out.append(await self.case(matter, DISTRICTS[i % 3],
                                       start + timedelta(minutes=i * 1.9), row))
        return out

    async def burst(self, n: int = 20, minutes: int = 40) -> list[str]:
        """停水 in one district: n cases in the last ``minutes``."""
        pool = self.texts[OUTAGE]
        return [await self.case(OUTAGE, "xuanwu",
                                NOW - timedelta(minutes=minutes - i * minutes / n),
                                pool[(i + 7) % len(pool)]) for i in range(n)]


@pytest.fixture
async def world(migrated_engine):
    engine = migrated_engine
    sessions = sessionmaker(engine)
    personal = PersonalData("insight-test-key-0123456789abcdef")
    loop = CaseLoop(sessions, personal, Taxonomy.load())
    await loop.upsert_departments([
        DepartmentEntry("nanjing", "南京市人民政府", "city", "nanjing"),
        DepartmentEntry("nj-water", "南京水务集团", "city", "nanjing", "nanjing", "供水公司",
                        webhook_url="https://water.example.cn/hooks/12345"),
        DepartmentEntry("js-ops", "江苏省12345热线运行中心", "province",
                        webhook_url="https://ops.example.cn/hooks/hot"),
    ])
    await loop.set_default(OUTAGE, "nanjing", "nj-water")
    seen: list[str] = []
    insight = Insight(InsightStore(sessions, personal), loop,
                      InsightSection(min_confirmed=100, held_back_share=0.25,
                                     notify_departments=["js-ops"]),
                      notify=WebhookOutbox(sessions).tell)

    def segment(text: str) -> list[str]:
        seen.append(text)
        return insight.segmenter(text)

    insight.segment = segment
    yield World(loop, ConsoleStore(sessions, personal), insight, seen)


async def alerts_of(w: World) -> list[HotAlert]:
    async with w.insight.store.sessions() as s:
        return list((await s.execute(select(HotAlert).order_by(HotAlert.id))).scalars())


async def deliveries(w: World) -> list[WebhookDelivery]:
    async with w.insight.store.sessions() as s:
        return list((await s.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))
                     ).scalars())


@pytest.mark.slow
async def test_a_usual_day_raises_nothing_a_burst_one_alert_and_the_next_pass_no_second(
        world: World) -> None:
    w = world
    for day in (4, 3, 2, 1, 0):
        await w.usual_day(day)
    report = await w.insight.run_once(NOW)
    assert report.counted == 150 and report.opened == [] and report.hot == 0
    assert await alerts_of(w) == []

    burst = await w.burst()
    report = await w.insight.run_once(NOW + timedelta(minutes=1))
    assert len(report.opened) == 1
    [alert] = await alerts_of(w)
    assert (alert.kind, alert.city, alert.district, alert.matter) == (
        "matter", "nanjing", "xuanwu", OUTAGE)
    assert alert.open_key is not None and alert.closed_at is None
    assert alert.observed == 21 and alert.expected == pytest.approx(1.0)
    # The burst's words joined it (the hot word shown in clear), not alerts of their own.
    words = {s["term"] for s in alert.signals if s["kind"] == "keyword"}
    assert "停水" in words
    view = await w.insight.alert(alert.id, city=None, visible=None)
    numbers = {c["number"] for c in view["case_list"]}
    assert set(burst) <= numbers
    assert view["matter_name"] == "公用事业 › 供水 › 停水"

    # The hot-topic desk and the water company are told by webhook (the outbox, written with
    # the alert): the burst's numbers, nothing personal.
    told = await deliveries(w)
    assert sorted(d.department_id for d in told) == ["js-ops", "nj-water"]
    assert {d.event for d in told} == {"hot_topic.opened"}
    payload = told[0].payload
    assert payload["id"] == alert.id and set(burst) <= set(payload["case_numbers"])
    assert payload["matter"] == OUTAGE and payload["district"] == "xuanwu"
    assert "13812345678" not in json.dumps(payload, ensure_ascii=False)

    # The worker's next passes: the same alert, no second one, nobody told twice.
    report = await w.insight.run_once(NOW + timedelta(minutes=2))
    assert report.opened == []
    assert [a.id for a in await alerts_of(w)] == [alert.id]
    assert len(await deliveries(w)) == 2
    # An hour and a half later the burst is out of the window: it subsides, still one alert.
    report = await w.insight.run_once(NOW + timedelta(minutes=95))
    assert report.closed == [alert.id]
    [closed] = await alerts_of(w)
    assert closed.closed_at is not None and closed.open_key is None
    # Counting never saw a number in clear, and kept only hashes.
    assert w.seen and [t for t in w.seen if LONG_NUMBER.search(t)] == []
    async with w.insight.store.sessions() as s:
        terms = list((await s.execute(select(CaseTerm.term).limit(50))).scalars())
    assert terms and all(re.fullmatch(r"[0-9a-f]{16}", t) for t in terms)


@pytest.mark.slow
async def test_acknowledge_and_merge_the_burst_into_its_earliest_case(world: World) -> None:
    w = world
    burst = await w.burst(n=12, minutes=30)
    # One of them already went to the water company: it cannot be merged.
    await w.loop.act(burst[5], AGENT, st.Command("dispatch", lead="nj-water"))
    await w.insight.run_once(NOW)
    [alert] = await alerts_of(w)
    assert alert.cases == 12

    view = await w.insight.acknowledge(alert.id, user="sup1", city=None)
    assert view["acknowledged_by"] == "sup1" and view["acknowledged_at"]
    again = await w.insight.acknowledge(alert.id, user="sup2", city=None)
    assert again["acknowledged_by"] == "sup1"  # the first acknowledgement stays
    with pytest.raises(DomainError) as e:
        await w.insight.acknowledge(alert.id, user="sup1", city="suzhou")
    assert e.value.code == "not_found"  # another city's supervisor does not see it

    out = await w.insight.merge(alert.id, SUP, city="nanjing", visible=None)
    assert out["into"] == burst[0]
    assert sorted(out["merged"]) == sorted(n for n in burst[1:] if n != burst[5])
    assert [s["number"] for s in out["skipped"]] == [burst[5]]
    assert out["skipped"][0]["error"] == "conflict"
    kept = await w.loop.view(burst[0])
    assert kept["state"] == "accepted"
    gone = await w.loop.view(burst[1])
    assert gone["state"] == "merged"
    assert gone["timeline"][-1]["merged_into"] == burst[0]
    [after] = await alerts_of(w)
    assert (after.merged_into, after.merged_by) == (burst[0], "sup1")
    # Merging again changes nothing (the merged ones are no longer open; the dispatched one
    # still cannot be merged).
    again_out = await w.insight.merge(alert.id, SUP, city=None, visible=None)
    assert again_out["into"] == burst[0] and again_out["merged"] == []
    assert [s["number"] for s in again_out["skipped"]] == [burst[5]]


@pytest.mark.slow
async def test_the_classifier_learns_from_confirmed_cases_beats_the_rules_and_sees_no_number(
        world: World) -> None:
    w = world
    at = NOW - timedelta(days=2)
    i = 0
    for matter, rows in w.texts.items():
        for row in rows[:24]:
            i += 1
            await w.case(matter, DISTRICTS[i % 3], at + timedelta(minutes=i), row,
                         caller="13912345678" if i % 7 == 0 else None)
    # Before any training the keyword rules suggest.
    number = await w.loop.create_case(channel="web", city="nanjing", caller=None)
    s = await w.insight.suggest(number, text="家里水龙头拧开一滴水都没有", visible=None,
                                user="agent1")
    assert s["source"] == "rules" and s["matter"] is None  # no word of theirs in it

    report = await w.insight.train(NOW)
    assert report.model_id is not None and report.active
    assert report.cases + report.held_back == 14 * 24 and report.held_back >= 50
    assert report.accuracy is not None and report.rules_accuracy is not None
    assert report.accuracy > report.rules_accuracy, report
    assert [t for t in w.seen if LONG_NUMBER.search(t)] == []

    await w.forms.save_form(number, {"content": "联系电话13812345678，家里水龙头拧开一滴水都没有"},
                            by="agent1", scope=Scope.everything())
    s = await w.insight.suggest(number, visible=None, user="agent1")
    assert (s["matter"], s["source"], s["department"], s["department_name"]) == (
        OUTAGE, "model", "nj-water", "南京水务集团")
    assert s["model_id"] == report.model_id and 0 < s["confidence"] <= 1
    assert s["matter_name"] == "公用事业 › 供水 › 停水"
    # The agent chose otherwise: the next training records that the suggestion was not taken.
    await w.loop.act(number, AGENT, st.Command("classify"),
                     Details(appeal_type="complaint", matter="utilities.water.pipe_burst",
                             district="xuanwu"))
    await w.insight.train(NOW + timedelta(hours=1))
    async with w.insight.store.sessions() as sess:
        row = (await sess.execute(select(Suggestion))).scalar_one()
        models = (await sess.execute(select(func.count()).select_from(
            select(HotAlert.id).subquery()))).scalar()
    assert (row.matter, row.confirmed_matter, row.accepted) == (
        OUTAGE, "utilities.water.pipe_burst", False)
    assert models == 0
    rep = await w.insight.classifier_report()
    assert rep["source"] == "model" and len(rep["models"]) == 2
    assert rep["models"][0]["accuracy"] > rep["models"][0]["rules_accuracy"]
    assert rep["suggestions"]["model"] == {"shown": 1, "confirmed": 1, "accepted": 0,
                                           "acceptance": 0.0}
    assert [t for t in w.seen if LONG_NUMBER.search(t)] == []
    with pytest.raises(DomainError) as e:
        await w.insight.suggest("20990101000001", visible=None, user="agent1")
    assert e.value.code == "not_found"
