"""Outbound signed webhooks on real databases (SQLite and PostgreSQL) to a real department
endpoint (an aiohttp server on a free port): the outbox written with the change (and not
without it), signatures the department verifies, retries with backoff while the endpoint is
down, the dead-letter list and an admin's retry, workers stopped or killed mid-way, two
workers on one database, secrets shown once and rotated, addresses refused."""

from __future__ import annotations

import asyncio
import inspect
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from agent_desk.audit import Actor
from agent_desk.models import AuditEntry
from agent_desk.webhooks.services import WebhookAdmin, WebhookKeys
from agent_desk.webhooks.signing import verify
from agent_desk.webhooks.worker import WebhookWorker
from cases.db import sessionmaker
from cases.loop import states as st
from cases.loop.calendar import WorkCalendar
from cases.loop.deadlines import TimeLimits
from cases.loop.outbox import WebhookDelivery, WebhookOutbox
from cases.loop.store import CaseLoop, DepartmentEntry, Details, LoopChange
from cases.loop.sweep import DeadlineSweep
from cases.loop.taxonomy import Taxonomy
from cases.models import Case
from common.config import WebhooksSection
from common.db import utcnow
from common.errors import DomainError
from common.privacy import PersonalData
from tests.support.waiting import eventually
from tests.support.webhooks import DepartmentSystem

MASTER = "wh-master-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
AGENT = st.Actor("agent1", "agent")
CG = st.Actor("cg-user", "department", "nj-chengguan")
ADMIN = Actor("admin", "admin", "127.0.0.1")
CALLER = "13812345678"
ADDRESS = "玄武区珠江路88号"
# Small backoff instead of sleeps: a retry is due within 0.1 s.
FAST = WebhooksSection(backoff_base_s=0.02, backoff_max_s=0.1, interval_s=0.02, timeout_s=2,
                       lease_s=30, allow_networks=["127.0.0.0/8"], max_attempts=50)


async def until(check: Any, timeout: float = 10, interval: float = 0.02, *,
                what: str) -> Any:
    """Wait for ``check`` (plain or async) to hold."""
    async def poll() -> Any:
        v = check()
        return (await v) if inspect.isawaitable(v) else v
    return await eventually(poll, timeout, interval, what=what)


class Rig:
    """The case loop with the webhooks' outbox, the keys, a worker and the admin's side."""

    def __init__(self, engine: Any, settings: WebhooksSection = FAST):
        self.engine = engine
        self.sessions = sessionmaker(engine)
        self.taxonomy = Taxonomy.load()
        self.outbox = WebhookOutbox(self.sessions, matter_name=self.taxonomy.path_names,
                                    committed=self.wake)
        self.loop = CaseLoop(self.sessions, PersonalData("webhook-test-key-0123456789abcdef"),
                             self.taxonomy, outbox=self.outbox)
        self.keys = WebhookKeys(grace_s=settings.rotation_grace_s)
        self.keys.master = MASTER
        self.workers: list[WebhookWorker] = []
        self.worker = self.new_worker(settings)
        self.admin = WebhookAdmin(self.sessions, self.keys, wake=self.worker.wake)
        self.departments: list[DepartmentSystem] = []

    def wake(self) -> None:
        for w in self.workers:
            w.wake()

    def new_worker(self, settings: WebhooksSection = FAST, **kw: Any) -> WebhookWorker:
        w = WebhookWorker(self.sessions, settings, self.keys, **kw)
        self.workers.append(w)
        return w

    async def directory(self, url: str | None) -> None:
        await self.loop.upsert_departments([
            DepartmentEntry("nanjing", "南京市人民政府", "city", "nanjing"),
            DepartmentEntry("nj-chengguan", "南京市城市管理局", "city", "nanjing", "nanjing",
                            "城管局", webhook_url=url),
            DepartmentEntry("nj-renshe", "南京市人力资源和社会保障局", "city", "nanjing",
                            "nanjing", "人社局"),
        ])

    async def department(self, *, start: bool = True, reveal: bool = True) -> DepartmentSystem:
        dept = DepartmentSystem()
        if start:
            await dept.start()
        self.departments.append(dept)
        await self.directory(dept.url)
        if reveal:
            dept.secrets.append((await self.admin.reveal("nj-chengguan", ADMIN))["secret"])
        return dept

    async def dispatched(self) -> str:
        number = await self.loop.create_case(channel="web", city="nanjing", caller=CALLER)
        await self.loop.act(number, AGENT, st.Command("classify"), Details(
            appeal_type="complaint", matter="urban.sanitation.street_vending",
            district="xuanwu", address=ADDRESS))
        await self.loop.act(number, AGENT, st.Command("dispatch", lead="nj-chengguan",
                                                      assist=("nj-renshe",)))
        return number

    async def rows(self, **where: Any) -> list[WebhookDelivery]:
        async with self.sessions() as s:
            q = select(WebhookDelivery).order_by(WebhookDelivery.id)
            for k, v in where.items():
                q = q.where(getattr(WebhookDelivery, k) == v)
            return list((await s.execute(q)).scalars())

    async def row(self, delivery_id: int) -> WebhookDelivery:
        async with self.sessions() as s:
            d = await s.get(WebhookDelivery, delivery_id)
            assert d is not None
            return d

    async def close(self) -> None:
        for w in self.workers:
            await w.stop()
        for d in self.departments:
            await d.stop()


@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


@pytest.fixture
async def rig(engine):
    r = Rig(engine)
    yield r
    await r.close()


async def test_a_change_is_delivered_signed_and_the_department_verifies_it(engine):
    # The worker would look only once a minute: each commit that wrote rows wakes it.
    rig = Rig(engine, FAST.model_copy(update={"interval_s": 60}))
    try:
        await _delivered_signed_and_verified(rig)
    finally:
        await rig.close()


async def _delivered_signed_and_verified(rig: Rig) -> None:
    dept = await rig.department()
    await rig.worker.start()
    number = await rig.dispatched()
    await until(lambda: rig.rows(state="delivered"), 10, 0.02, what="the delivery")
    [row] = await rig.rows()  # classify had no department; nj-renshe has no webhook
    assert row.idempotency_key == f"{number}:v2:nj-chengguan" and row.attempts == 1
    assert row.event == "case.dispatch" and row.case_number == number
    [seen] = dept.requests
    assert seen["verified"] == [True] and seen["key"] == row.idempotency_key
    assert seen["event"] == "case.dispatch"
    doc = json.loads(seen["body"])
    assert doc["id"] == row.idempotency_key and doc["department"] == "nj-chengguan"
    case = doc["data"]["case"]
    assert (case["number"], case["state"], case["round"]) == (number, "dispatched", 1)
    assert case["matter_name"] == "城乡建设 › 市容环卫 › 占道经营" and case["due_at"]
    assert doc["data"]["dispatch"]["role"] == "lead" and doc["data"]["dispatch"]["due_at"]
    # No personal data in clear: neither the caller's number nor the address.
    text = seen["body"].decode()
    assert CALLER not in text and ADDRESS not in text and "珠江路" not in text
    # A tampered body does not verify with the department's secret.
    assert not verify(dept.secrets[0], "0", seen["body"] + b"x", seen["signature"],
                      now=0)

    # The department's own action is told too (its system may have used another channel).
    await rig.loop.act(number, CG, st.Command("sign"))
    await until(lambda: len(dept.answered_ok()) == 2, 10, 0.02, what="the sign")
    assert dept.requests[1]["event"] == "case.sign"
    assert json.loads(dept.requests[1]["body"])["data"]["dispatch"]["state"] == "signed"

    # notify (the deadline sweep's 督办单): one row however often it is told.
    payload = {"case": number, "kind": "sign", "order": 7}
    assert await rig.outbox.notify("nj-chengguan", "supervision.opened", payload,
                                   case_number=number, key=f"{number}:7:sign")
    assert not await rig.outbox.notify("nj-chengguan", "supervision.opened", payload,
                                       case_number=number, key=f"{number}:7:sign")
    assert not await rig.outbox.notify("nj-renshe", "supervision.opened", payload)  # no hook
    with pytest.raises(DomainError):
        await rig.outbox.notify("nj-chengguan", "Supervision Opened!", payload)
    await until(lambda: len(dept.answered_ok()) == 3, 10, 0.02, what="the 督办 notice")
    assert dept.requests[2]["event"] == "supervision.opened"
    assert dept.requests[2]["verified"] == [True]
    assert len(await rig.rows()) == 3


async def test_endpoint_down_then_up_is_delivered_after_retries_with_one_stable_key(rig):
    dept = await rig.department(start=False)  # nothing listens on its port yet
    await rig.worker.start()
    number = await rig.dispatched()

    async def failed_twice() -> bool:
        [d] = await rig.rows()
        return d.attempts >= 2 and d.state == "pending"

    await until(failed_twice, 10, 0.02, what="attempts while down")
    [d] = await rig.rows()
    assert d.last_status is None and "Connect" in (d.last_error or "")
    assert CALLER not in d.last_error and number not in d.last_error
    dept.status = 503  # up, but overloaded
    await dept.start()
    await until(lambda: len(dept.requests) >= 2, 10, 0.02, what="503 answers")
    assert (await rig.row(d.id)).last_status == 503
    dept.status = 200
    await until(lambda: rig.rows(state="delivered"), 10, 0.02, what="the delivery")
    d = await rig.row(d.id)
    assert d.attempts > 3 and d.last_error is None and d.delivered_at is not None
    # Every attempt carried the same key and body; the department took it once.
    assert {r["key"] for r in dept.requests} == {d.idempotency_key}
    assert len({r["body"] for r in dept.requests}) == 1
    assert all(r["verified"] == [True] for r in dept.requests)
    assert len(dept.answered_ok()) == 1


async def test_dead_letter_after_max_attempts_then_an_admin_retry_delivers(engine):
    rig = Rig(engine, FAST.model_copy(update={"max_attempts": 3}))
    try:
        dept = await rig.department()
        dept.status = 500
        await rig.worker.start()
        number = await rig.dispatched()
        [dead] = await until(lambda: rig.rows(state="dead"), 10, 0.02, what="dead")
        assert dead.attempts == 3 and dead.last_status == 500 and dead.last_error == "HTTP 500"
        listed = await rig.admin.deliveries(state="dead")
        assert [x["id"] for x in listed] == [dead.id]
        assert listed[0]["case"] == number and listed[0]["department_name"] == "南京市城市管理局"
        assert listed[0]["next_attempt_at"] is None
        assert (await rig.admin.deliveries(state="pending")) == []
        overview = {x["id"]: x for x in await rig.admin.departments()}
        assert overview["nj-chengguan"]["dead"] == 1 and overview["nj-chengguan"]["revealed"]
        assert len(dept.requests) == 3

        dept.status = 200
        view = await rig.admin.retry(dead.id, ADMIN)
        assert view["state"] == "pending" and view["attempts"] == 0
        await until(lambda: rig.rows(state="delivered"), 10, 0.02, what="the retry")
        assert (await rig.row(dead.id)).attempts == 1
        assert {r["key"] for r in dept.requests} == {dead.idempotency_key}
        with pytest.raises(DomainError) as e:
            await rig.admin.retry(dead.id, ADMIN)
        assert e.value.code == "conflict"
        with pytest.raises(DomainError) as e:
            await rig.admin.retry(999_999, ADMIN)
        assert e.value.code == "not_found"
        async with rig.sessions() as s:
            audited = list((await s.execute(select(AuditEntry).where(
                AuditEntry.action == "webhook.retry"))).scalars())
        assert [(a.username, a.case_number, a.detail["delivery"]) for a in audited] == [
            ("admin", number, dead.id)]
    finally:
        await rig.close()


async def test_a_worker_stopped_or_killed_mid_delivery_loses_nothing(rig):
    dept = await rig.department()
    dept.gate = asyncio.Event()  # the department takes its time answering
    first = rig.worker
    await first.start()
    await rig.dispatched()
    await until(lambda: len(dept.requests) == 1, 10, 0.02, what="a request in flight")
    await first.stop()  # mid-request: the POST is abandoned, the lease given back
    [d] = await rig.rows()
    assert d.state == "pending" and d.claimed_by is None and d.attempts == 0
    dept.gate.set()
    second = rig.new_worker()
    await second.start()
    await until(lambda: rig.rows(state="delivered"), 10, 0.02, what="the delivery")
    assert len(dept.requests) == 2 and {r["key"] for r in dept.requests} == {d.idempotency_key}
    await second.stop()

    # Killed (no stop, no record): the lease runs out and another worker takes the row. The
    # later worker's clock is ten minutes on instead of a wait for the lease.
    await rig.loop.act((await rig.rows())[0].case_number or "", CG, st.Command("sign"))
    killed = rig.new_worker(FAST, name="killed-worker")
    [taken] = await killed.claim()
    assert (await rig.row(taken)).claimed_by == "killed-worker"
    assert await rig.new_worker(FAST).claim() == []  # leased: nobody else takes it
    later = rig.new_worker(FAST, clock=lambda: utcnow() + timedelta(minutes=10))
    assert await later.claim() == [taken]
    await later.release()
    await later.start()
    await until(lambda: rig.rows(id=taken, state="delivered"), what="after the kill")
    # The abandoned POST may have been handled by the department as well: it and the
    # redelivery carry one key, which the department dedupes on.
    assert len(dept.requests) == 3 and len({r["key"] for r in dept.requests}) == 2


async def test_a_rolled_back_change_writes_no_outbox_row(rig):
    await rig.department(start=False, reveal=False)
    number = await rig.loop.create_case(channel="web", city="nanjing", caller=CALLER)
    await rig.loop.act(number, AGENT, st.Command("classify"), Details(
        appeal_type="complaint", matter="urban.sanitation.street_vending"))
    written: list[LoopChange] = []

    async def fails_after_the_outbox(session: Any, change: LoopChange) -> None:
        await rig.outbox(session, change)
        written.append(change)
        raise RuntimeError("the transaction fails after the outbox row")

    rig.loop.outbox = fails_after_the_outbox
    with pytest.raises(RuntimeError):
        await rig.loop.act(number, AGENT, st.Command("dispatch", lead="nj-chengguan"))
    assert len(written) == 1  # the row was written, inside the transaction that rolled back
    assert await rig.rows() == []
    assert (await rig.loop.view(number))["state"] == "accepted"
    # A refused change never reaches the outbox.
    rig.loop.outbox = rig.outbox
    with pytest.raises(DomainError):
        await rig.loop.act(number, CG, st.Command("sign"))
    assert await rig.rows() == []
    # The same change notified twice is one row.
    await rig.loop.act(number, AGENT, st.Command("dispatch", lead="nj-chengguan"))
    [row] = await rig.rows()
    async with rig.sessions() as s, s.begin():
        case_id = (await s.execute(select(Case.id).where(Case.number == number))).scalar_one()
        change = LoopChange(case_id, number, "dispatch", "dispatched", utcnow(), "agent1",
                            ("nj-chengguan",), 1)
        await rig.outbox(s, change)
        await rig.outbox(s, change)
    assert [r.id for r in await rig.rows()] == [row.id]


async def test_two_workers_share_the_outbox_and_deliver_each_row_once(rig):
    dept = await rig.department()
    numbers = [await rig.dispatched() for _ in range(8)]
    others = [rig.new_worker(FAST.model_copy(update={"batch": 3, "concurrency": 2}))
              for _ in range(2)]
    await asyncio.gather(*(w.start() for w in others))

    async def all_delivered() -> bool:
        async with rig.sessions() as s:
            return (await s.execute(select(func.count()).where(
                WebhookDelivery.state == "delivered"))).scalar_one() == len(numbers)

    await until(all_delivered, 20, 0.05, what="every delivery")
    keys = [r["key"] for r in dept.requests]
    assert len(keys) == len(set(keys)) == len(numbers)  # nobody delivered a row twice
    assert sum(w.delivered for w in others) == len(numbers)


async def test_secret_shown_once_rotated_and_both_sign_during_the_grace(rig):
    dept = await rig.department(reveal=False)
    first = await rig.admin.reveal("nj-chengguan", ADMIN)
    assert first["generation"] == 1 and first["secret"].startswith("whsec_")
    with pytest.raises(DomainError) as e:
        await rig.admin.reveal("nj-chengguan", ADMIN)
    assert e.value.code == "already_revealed"
    with pytest.raises(DomainError) as e:
        await rig.admin.reveal("nowhere", ADMIN)
    assert e.value.code == "not_found"
    second = await rig.admin.rotate("nj-chengguan", ADMIN)
    assert second["generation"] == 2 and second["secret"] != first["secret"]
    dept.secrets = [first["secret"], second["secret"]]
    await rig.worker.start()
    await rig.dispatched()
    await until(lambda: dept.answered_ok(), 10, 0.02, what="the delivery")
    assert dept.requests[0]["verified"] == [True, True]  # old and new both verify
    assert dept.requests[0]["signature"].count("sha256=") == 2
    # After the grace only the new secret signs.
    rig.keys.grace = timedelta(0)
    await rig.loop.act((await rig.rows())[0].case_number or "", CG, st.Command("sign"))
    await until(lambda: len(dept.answered_ok()) == 2, 10, 0.02, what="the sign")
    assert dept.requests[1]["verified"] == [False, True]
    async with rig.sessions() as s:
        audited = [(a.action, a.detail) for a in (await s.execute(select(AuditEntry).where(
            AuditEntry.action.like("webhook.%")).order_by(AuditEntry.id))).scalars()]
    assert audited == [
        ("webhook.secret", {"department": "nj-chengguan", "generation": 1}),
        ("webhook.rotate", {"department": "nj-chengguan", "generation": 2})]
    # Without the master secret nothing is shown.
    rig.keys.master = None
    with pytest.raises(DomainError) as e:
        await rig.admin.rotate("nj-chengguan", ADMIN)
    assert e.value.code == "not_available"


@pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)
async def test_loopback_and_bad_urls_are_refused_unless_allowed(engine):
    strict = FAST.model_copy(update={"allow_networks": [], "max_attempts": 3})
    rig = Rig(engine, strict)
    try:
        dept = await rig.department()
        await rig.worker.start()
        await rig.dispatched()
        [d] = await until(lambda: rig.rows(state="dead"), 10, 0.02, what="refused")
        assert d.attempts == 1 and "not allowed" in (d.last_error or "")
        # A name that resolves to the loopback is refused when connecting (and retried:
        # the name may point elsewhere later).
        await rig.directory(f"http://localhost:{dept.port}/hook")
        await rig.dispatched()
        [_, d2] = await until(lambda: _two_dead(rig), 10, 0.02, what="refused by name")
        assert "refused" in (d2.last_error or "") and d2.attempts == 3
        await rig.directory("ftp://dept.example/hook")
        await rig.dispatched()
        [_, _, d3] = await until(lambda: _dead(rig, 3), 10, 0.02, what="ftp refused")
        assert "only http" in (d3.last_error or "") and d3.attempts == 1
        assert dept.requests == []  # nothing reached the loopback
    finally:
        await rig.close()


async def _two_dead(rig: Rig) -> list[WebhookDelivery] | None:
    return await _dead(rig, 2)


async def _dead(rig: Rig, n: int) -> list[WebhookDelivery] | None:
    rows = await rig.rows(state="dead")
    return rows if len(rows) == n else None


async def test_the_deadline_sweeps_supervision_orders_reach_the_department(rig):
    dept = await rig.department()
    await rig.worker.start()
    number = await rig.dispatched()
    later = utcnow() + timedelta(days=30)  # every limit overdue
    sweep = DeadlineSweep(rig.sessions, WorkCalendar(), TimeLimits(), now=lambda: later,
                          notify=rig.outbox.tell)
    report = await sweep.run()
    assert report.orders == 4  # sign and handle, for the lead and the assisting department

    async def told() -> list[dict[str, Any]]:
        return [r for r in dept.answered_ok() if r["event"] == "supervision.opened"]

    seen = await until(lambda: len(dept.answered_ok()) == 3 and told(), what="督办 told")
    assert {json.loads(r["body"])["data"]["kind"] for r in seen} == {"sign", "handle"}
    assert all(r["verified"] == [True] for r in seen)
    assert all(json.loads(r["body"])["data"]["case"] == number for r in seen)
    # nj-renshe (assisting, no webhook) is not told; a second sweep tells no one again.
    assert (await sweep.run()).orders == 0
    rows = await rig.rows(event="supervision.opened")
    assert len(rows) == 2 and {r.case_number for r in rows} == {number}
