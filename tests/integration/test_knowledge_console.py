"""The knowledge base through the real console over HTTP (the service on SQLite or
PostgreSQL): an admin imports articles to review, a supervisor approves them (the admin who
imported them cannot), agents search, get suggestions for the case form, read and mark
articles helpful; editors write, change and withdraw; each role is held to its routes; what an
agent types (a caller's number, an address) is neither stored nor logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from agent_desk.knowledge import formats
from agent_desk.models import AuditEntry

pytestmark = pytest.mark.asterisk

DATA = Path(__file__).parent.parent / "data" / "knowledge"
ARTICLES = formats.read_json((DATA / "articles.json").read_text(encoding="utf-8"))
# A part of the labelled set (a request body is at most [web] max_body_bytes), in force
# whatever day the test runs.
CURRENT = [a for a in ARTICLES if a.valid_to is None and a.valid_from.year < 2026
           and a.matter.startswith(("labour.social_security.card", "urban.sanitation",
                                    "labour.housing_fund"))]
PRIVATE = "13912345678"


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_knowledge_base_over_http(console, caplog):
    admin, sup = await console.user("admin"), await console.user("sup")
    agent, other = await console.user("agent1001"), await console.user("agent1002")

    # The admin loads a file; it waits for review (the console never publishes at once).
    status, doc = await admin.post("/api/knowledge/import", {
        "format": "json", "content": formats.write_json(CURRENT), "submit": True})
    assert status == 200 and doc["created"] == len(CURRENT) and doc["published"] == 0, doc
    status, doc = await agent.post("/api/knowledge/search", {"q": "社保卡丢了怎么补办"})
    assert status == 200 and doc["results"] == []
    status, listing = await sup.get("/api/knowledge/articles?status=in_review&limit=200")
    assert status == 200 and listing["total"] == len(CURRENT)
    first = listing["articles"][0]
    status, doc = await admin.post(f"/api/knowledge/articles/{first['id']}/approve",
                                   {"revision": first["revision"]})
    assert status == 403 and doc["error"] == "forbidden", doc
    for a in listing["articles"]:
        status, doc = await sup.post(f"/api/knowledge/articles/{a['id']}/approve",
                                     {"revision": a["revision"]})
        assert status == 200 and doc["article"]["live_version"] == 1, doc

    # An agent searches, reads (a view), marks helpful (once).
    status, doc = await agent.post("/api/knowledge/search", {"q": "社保卡丢了怎么补办"})
    assert status == 200 and doc["results"][0]["ref"] == "kb-sscard-reissue", doc
    hit = doc["results"][0]
    assert hit["snippet"] and hit["city"] is None and hit["version"] == 1
    assert hit["matter_name"] == "社保卡"  # the case loop's taxonomy names the 事项
    status, read = await agent.get(f"/api/knowledge/articles/{hit['id']}")
    assert status == 200 and read["published"]["body"].startswith("社保卡（社会保障卡）")
    assert "working" not in read and read["published"]["views"] == 1
    for _ in range(2):
        status, doc = await agent.post(f"/api/knowledge/articles/{hit['id']}/helpful")
        assert status == 200 and doc["helpful"] == 1 and doc["helped"] is True
    status, doc = await other.post(f"/api/knowledge/articles/{hit['id']}/helpful")
    assert doc["helpful"] == 2

    # Suggestions follow the case form: its 事项 and its words, a caller's details among them.
    caplog.set_level(logging.DEBUG)
    status, doc = await agent.post("/api/knowledge/suggest", {
        "matter": "urban.sanitation.street_vending",
        "text": f"来电人{PRIVATE}反映幸福路18号楼下烧烤摊占道经营，油烟很大", "limit": 5})
    assert status == 200, doc
    # The agent's city's own article on the matter among them (agent 1001: Nanjing).
    assert {r["ref"] for r in doc["results"][:3]} == {
        "kb-street-vending-bbq", "kb-street-vending", "kb-street-vending-nj"}
    status, doc = await agent.post("/api/knowledge/suggest", {
        "matter": "labour.housing_fund.withdrawal", "text": ""})
    assert status == 200 and doc["results"]
    assert all(r["matter"].startswith("labour.housing_fund") for r in doc["results"])
    status, doc = await agent.post("/api/knowledge/search", {"q": f"{PRIVATE} 幸福路18号"})
    assert status == 200
    assert PRIVATE not in caplog.text and "幸福路" not in caplog.text

    # Roles: agents read only; supervisors edit; admins import and export.
    fields = {"title": "南京夜市占道经营疏导点", "body": "各区设有夜市疏导点，摊贩可到疏导点经营。",
              "matter": "urban.sanitation.street_vending", "city": "nanjing",
              "valid_from": "2024-01-01"}
    for path, body in (("/api/knowledge/articles", fields),
                       (f"/api/knowledge/articles/{hit['id']}/withdraw", None),
                       ("/api/knowledge/import", {"format": "json", "content": "[]"})):
        status, doc = await agent.post(path, body)
        assert status == 403 and doc["error"] == "forbidden", (path, doc)
    for who in (agent, sup):
        status, doc = await who.get("/api/knowledge/export?format=json")
        assert status == 403, doc
    assert (await agent.get("/api/knowledge/articles"))[0] == 403
    assert (await agent.get(f"/api/knowledge/articles/{hit['id']}/versions"))[0] == 403

    status, doc = await sup.post("/api/knowledge/articles", fields)
    assert status == 200 and doc["article"]["status"] == "draft", doc
    new = doc["article"]
    status, doc = await sup.call("PUT", f"/api/knowledge/articles/{new['id']}", {
        **fields, "body": fields["body"] + "营业时间为18时至23时。", "revision": new["revision"]})
    assert status == 200 and doc["article"]["revision"] == new["revision"] + 1, doc
    status, doc = await sup.call("PUT", f"/api/knowledge/articles/{new['id']}", {
        **fields, "revision": new["revision"]})
    assert status == 409 and doc["error"] == "stale"
    status, read = await sup.get(f"/api/knowledge/articles/{new['id']}")
    assert status == 200 and read["published"] is None
    new = read["working"]
    status, doc = await sup.post(f"/api/knowledge/articles/{new['id']}/submit",
                                 {"revision": new["revision"]})
    assert status == 200 and doc["article"]["status"] == "in_review"
    revision = doc["article"]["revision"]
    status, doc = await sup.post(f"/api/knowledge/articles/{new['id']}/approve",
                                 {"revision": revision})
    assert status == 403 and "another editor" in doc["message"]
    status, doc = await admin.post(f"/api/knowledge/articles/{new['id']}/approve",
                                   {"revision": revision})
    assert status == 200 and doc["article"]["status"] == "published", doc
    status, doc = await other.post("/api/knowledge/search", {"q": "夜市疏导点"})
    assert doc["results"][0]["id"] == new["id"]
    status, doc = await sup.post(f"/api/knowledge/articles/{new['id']}/withdraw")
    assert status == 200 and doc["article"]["status"] == "withdrawn"
    status, doc = await other.post("/api/knowledge/search", {"q": "夜市疏导点"})
    assert new["id"] not in [r["id"] for r in doc["results"]]
    assert (await other.get(f"/api/knowledge/articles/{new['id']}"))[0] == 404
    status, doc = await sup.get(f"/api/knowledge/articles/{new['id']}/versions")
    assert status == 200 and [v["version"] for v in doc["versions"]] == [1]

    # Export: the published articles, as Markdown with front matter.
    resp = await admin.client.get("/api/knowledge/export?format=markdown")
    text = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/markdown")
    assert int(resp.headers["X-Articles"]) == len(CURRENT)
    assert {d.ref for d in formats.read_markdown(text)} == {a.ref for a in CURRENT}

    # Invalid input is refused, nothing half-done.
    for body in ({**fields, "valid_to": "2020-01-01"}, {**fields, "city": "beijing"},
                 {**fields, "title": ""}, {**fields, "valid_from": "2024-02-30"}):
        status, doc = await sup.post("/api/knowledge/articles", body)
        assert status == 422, (body, doc)
    for bad_id in ("abc", "0", "99999999999999999999", "１"):
        assert (await agent.get(f"/api/knowledge/articles/{bad_id}"))[0] == 404
    assert (await agent.post("/api/knowledge/search", {"q": "x" * 201}))[0] == 422

    # The audit log has every edit, with refs, never an agent's words.
    async with console.service.store.sessions() as s:
        rows = (await s.execute(sa.select(AuditEntry).where(
            AuditEntry.action.like("knowledge.%")))).scalars().all()
    actions = [r.action for r in rows]
    assert actions.count("knowledge.approve") == len(CURRENT) + 1
    assert {"knowledge.import", "knowledge.create", "knowledge.edit", "knowledge.submit",
            "knowledge.withdraw", "knowledge.export"} <= set(actions)
    dumped = json.dumps([r.detail for r in rows], ensure_ascii=False)
    assert PRIVATE not in dumped and "幸福路" not in dumped
