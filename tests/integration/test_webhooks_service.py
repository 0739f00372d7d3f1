"""Webhooks in the running service (hotline/service.py wiring, the console's admin API): a
case dispatched through the case loop reaches the department's system signed with the secret
the admin was shown once; a delivery that keeps failing is on the dead-letter list, where the
admin's retry sends it again; only admins reach any of it."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestServer

from agent_desk.web.auth import Users
from cases.loop import states as st
from cases.loop.store import DepartmentEntry, Details
from hotline.desk import console_app
from tests.support.console import CONSOLE_PASSWORD, CONSOLE_USERS, ConsoleHarness
from tests.support.waiting import eventually
from tests.support.webhooks import DepartmentSystem

pytestmark = pytest.mark.asterisk

AGENT = st.Actor("agent1001", "agent")


async def test_service_delivers_webhooks_and_admins_manage_them(services):
    dept = await DepartmentSystem().start()
    base = services.lab.cfg
    cfg = services.config(await services.database("sqlite"), webhooks=base.webhooks.model_copy(
        update={"allow_networks": ["127.0.0.0/8"], "backoff_base_s": 0.05,
                "backoff_max_s": 0.2, "interval_s": 0.05, "max_attempts": 2}))
    service = services.lab.build_service(cfg, cel_from_now=True, ami_options={
        "ping_interval": 1.0, "ping_timeout": 1.0, "backoff": (0.1, 0.2, 0.5)})
    await service.start()
    services.services.append(service)
    app, deps = console_app(service)
    server = TestServer(app, host="127.0.0.1")
    await asyncio.wait_for(server.start_server(), 20)
    for name, role, agent in CONSOLE_USERS:
        await Users(service.store.sessions).add(name, CONSOLE_PASSWORD, role, agent_id=agent)
    console = ConsoleHarness(services.lab, service, deps, server)
    try:
        await service.case_loop.upsert_departments([DepartmentEntry(
            "nj-chengguan", "南京市城市管理局", "city", "nanjing", "js-gov", "城管局",
            webhook_url=dept.url)])
        admin, sup = await console.user("admin"), await console.user("sup")
        assert (await sup.get("/api/webhooks/deliveries"))[0] == 403
        assert (await sup.post("/api/webhooks/departments/nj-chengguan/secret"))[0] == 403

        status, shown = await admin.post("/api/webhooks/departments/nj-chengguan/secret")
        assert status == 200 and shown["generation"] == 1, shown
        dept.secrets.append(shown["secret"])
        status, again = await admin.post("/api/webhooks/departments/nj-chengguan/secret")
        assert status == 409 and again["error"] == "already_revealed"
        assert shown["secret"] not in json.dumps(await admin.get("/api/audit"))
        assert (await admin.post("/api/webhooks/departments/nowhere/secret"))[0] == 404

        loop = service.case_loop
        number = await loop.create_case(channel="web", city="nanjing", caller="13812345678")
        await loop.act(number, AGENT, st.Command("classify"), Details(
            appeal_type="complaint", matter="urban.sanitation.street_vending"))
        await loop.act(number, AGENT, st.Command("dispatch", lead="nj-chengguan"))

        async def delivered() -> list:
            _, doc = await admin.get(f"/api/webhooks/deliveries?case={number}")
            return [d for d in doc["deliveries"] if d["state"] == "delivered"]

        [row] = await eventually(delivered, 15, 0.05, what="the dispatch delivered")
        assert row["event"] == "case.dispatch" and row["department_name"] == "南京市城市管理局"
        assert dept.requests[0]["verified"] == [True]

        # The department's system fails: two attempts, then the dead-letter list.
        dept.status = 500
        await loop.act(number, st.Actor("cg", "department", "nj-chengguan"),
                       st.Command("sign"))

        async def dead() -> list:
            _, doc = await admin.get("/api/webhooks/deliveries?state=dead")
            return doc["deliveries"]

        [gone] = await eventually(dead, 15, 0.05, what="the dead letter")
        assert gone["attempts"] == 2 and gone["last_error"] == "HTTP 500"
        status, doc = await admin.get("/api/webhooks/departments")
        assert status == 200
        assert {d["id"]: d["dead"] for d in doc["departments"]}["nj-chengguan"] == 1
        dept.status = 200
        status, doc = await admin.post(f"/api/webhooks/deliveries/{gone['id']}/retry")
        assert status == 200 and doc["delivery"]["state"] == "pending", doc
        await eventually(lambda: delivered_count(admin, number, 2), 15, 0.05,
                         what="the retried delivery")
        assert (await admin.post("/api/webhooks/deliveries/abc/retry"))[0] == 404
        status, rotated = await admin.post("/api/webhooks/departments/nj-chengguan/rotate")
        assert status == 200 and rotated["generation"] == 2
        _, audit = await admin.get("/api/audit")
        actions = [e["action"] for e in audit["entries"]]
        assert {"webhook.secret", "webhook.retry", "webhook.rotate"} <= set(actions)
    finally:
        await console.close()
        await dept.stop()


async def delivered_count(user, number: str, n: int) -> bool:
    _, doc = await user.get(f"/api/webhooks/deliveries?case={number}&state=delivered")
    return len(doc["deliveries"]) == n
