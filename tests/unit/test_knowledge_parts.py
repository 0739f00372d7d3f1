"""The knowledge base's pure parts: the review decision (four eyes, cities), the files'
formats (JSON and Markdown with front matter, round trips), the search words (the same for
both databases: letters and digits only) and the ranking (relevance, city, matter,
freshness, ties)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_desk.knowledge import formats, ranking
from agent_desk.knowledge.formats import ArticleDoc
from agent_desk.knowledge.store import question_words, read_plan, snippet
from agent_desk.knowledge.text import Segmenter, expanded, normalise
from agent_desk.knowledge.workflow import Editor, decide
from common.errors import DomainError

ALICE = Editor("alice", "supervisor", None)
BOB = Editor("bob", "admin", None)
NANJING = Editor("nj", "supervisor", "nanjing")


def refused(code: str, fn, *args, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as exc:
        fn(*args, **kw)
    assert exc.value.code == code, exc.value.message
    return exc.value.message


def test_the_review_goes_draft_review_published_with_another_editor_approving() -> None:
    assert decide("create", None, ALICE, cities=[None]) == "draft"
    assert decide("submit", "draft", ALICE, authors=["alice"]) == "in_review"
    refused("forbidden", decide, "approve", "in_review", ALICE, authors=["alice"])
    refused("forbidden", decide, "reject", "in_review", ALICE, authors=["alice"])
    assert decide("approve", "in_review", BOB, authors=["alice"]) == "published"
    assert decide("reject", "in_review", BOB, authors=["alice"]) == "draft"
    # Edited by two: neither approves.
    refused("forbidden", decide, "approve", "in_review", BOB, authors=["alice", "bob"])
    refused("wrong_status", decide, "approve", "draft", BOB, authors=["alice"])
    refused("wrong_status", decide, "submit", "published", ALICE)
    assert decide("edit", "published", ALICE) == "draft"
    assert decide("withdraw", "published", ALICE) == "withdrawn"
    refused("wrong_status", decide, "withdraw", "withdrawn", ALICE)
    assert decide("edit", "withdrawn", ALICE) == "draft"


def test_a_city_editor_works_on_that_citys_articles_only() -> None:
    assert decide("create", None, NANJING, cities=["nanjing"]) == "draft"
    refused("forbidden", decide, "create", None, NANJING, cities=[None])
    refused("forbidden", decide, "edit", "draft", NANJING, cities=["nanjing", "suzhou"])
    refused("forbidden", decide, "approve", "in_review", NANJING, cities=["suzhou"])
    refused("forbidden", decide, "create", None, Editor("a", "agent", "nanjing"),
            cities=["nanjing"])


def doc(ref: str = "kb-1", **kw: object) -> ArticleDoc:
    fields: dict[str, object] = {"title": "社保卡遗失补办", "body": "先挂失，再补办。",
                                 "matter": "social_security.card", "city": None,
                                 "valid_from": date(2024, 1, 1), "valid_to": None}
    fields.update(kw)
    return ArticleDoc(ref, **fields)  # type: ignore[arg-type]


def test_json_and_markdown_round_trip() -> None:
    docs = [doc(), doc("kb-2", title="居住证: 南京", city="nanjing",
                       body="第一段\n\n---\n\n第二段：费用 0 元\n", valid_to=date(2030, 1, 1))]
    assert formats.read_json(formats.write_json(docs)) == [doc(), doc(
        "kb-2", title="居住证: 南京", city="nanjing", body="第一段\n\n---\n\n第二段：费用 0 元",
        valid_to=date(2030, 1, 1))]
    md = formats.write_markdown(docs)
    assert md.startswith("---\nref: kb-1\ntitle: 社保卡遗失补办\n")
    assert formats.read_markdown(md) == formats.read_json(formats.write_json(docs))
    # A body's rule right before a "ref:" line is written so it stays body.
    tricky = [doc(body="上文\n---\nref: 不是新文章")]
    assert formats.read_markdown(formats.write_markdown(tricky))[0].body == \
        "上文\n- - -\nref: 不是新文章"


def test_files_are_checked_field_by_field() -> None:
    assert "ref" in refused("invalid", formats.read_json, '[{"ref": "a b", "title": "t"}]')
    assert "valid_to" in refused("invalid", formats.read_json, '[{"ref": "a", "title": "t", '
                                 '"body": "b", "valid_from": "2024-05-01", '
                                 '"valid_to": "2024-01-01"}]')
    assert "twice" in refused("invalid", formats.read_json, formats.write_json([doc(), doc()]))
    assert "unknown" in refused("invalid", formats.read_json, '[{"ref": "a", "x": 1}]')
    refused("invalid", formats.read_markdown, "正文没有前言")
    refused("invalid", formats.read_markdown, "---\nref: a\ntitle: t\n")
    refused("invalid", formats.read_json, '{"format": "other", "articles": []}')
    assert formats.read_json('{"articles": []}') == []


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_search_words_are_letters_and_digits_only(text: str) -> None:
    for w in normalise(text):
        assert w and w.isalnum() and w == w.lower()


def test_segmentation_keeps_the_hotlines_words_and_drops_question_words() -> None:
    words = Segmenter.shared().words("我的社保卡丢了，请问怎么补办？ＡＢＣ１２３")
    assert "社保卡" in words and "补办" in words and "abc123" in words
    assert not {"的", "请问", "怎么", "，"} & set(words)
    assert "遗失" in expanded(["丢"])
    long_text = [f"词{i}" for i in range(100)] + ["住房公积金"] * 3
    kept = question_words(long_text, limit=10)
    assert "住房公积金" in kept and len(set(kept)) == 10


COLL = ranking.Collection(docs=100, avg_length=40.0, df={"社保卡": 3, "补办": 10, "南京": 30})


def rdoc(ref: str, title: str = "", body: str = "", city: str | None = None,
         matter: str = "", valid_from: date = date(2020, 1, 1), helpful: int = 0
         ) -> ranking.Doc:
    return ranking.Doc(int(ref[1:]) if ref[1:].isdigit() else 0, ref, title, body, matter,
                       city, valid_from, helpful)


def test_ranking_relevance_city_matter_freshness_and_ties() -> None:
    today = date(2026, 12, 1)
    ask = ranking.Ask(["社保卡", "补办"], "nanjing", "", today)
    title_hit = rdoc("d1", "社保卡 补办", "挂失")
    body_hit = rdoc("d2", "其他", "社保卡 补办 挂失")
    assert ranking.score(ask, title_hit, COLL) > ranking.score(ask, body_hit, COLL)
    # The asker's city's version before the province's.
    prov, city = rdoc("d3", "社保卡 补办"), rdoc("d4", "社保卡 补办", city="nanjing")
    assert ranking.rank(ask, [prov, city], COLL, 5)[0][1] is city
    # A newer rule a little ahead; equal scores by ref.
    old, new = rdoc("d6", "社保卡", valid_from=date(2010, 1, 1)), rdoc("d5", "社保卡",
                                                                      valid_from=today)
    assert [d.ref for _, d in ranking.rank(ask, [old, new], COLL, 5)] == ["d5", "d6"]
    twins = [rdoc("b", "社保卡"), rdoc("a", "社保卡")]
    assert [d.ref for _, d in ranking.rank(ask, twins, COLL, 5)] == ["a", "b"]
    # Helpful marks count, a little.
    liked = rdoc("d7", "社保卡", helpful=20)
    assert ranking.score(ask, liked, COLL) > ranking.score(ask, rdoc("d8", "社保卡"), COLL)
    # Words counted whole, repeated ones each time; the stored length is used when given.
    twice = rdoc("d10", "", "社保卡 社保卡 社保 卡")
    once = rdoc("d11", "", "社保卡 社保 卡 卡")
    assert ranking.score(ask, twice, COLL) > ranking.score(ask, once, COLL)
    assert twice.weighted_length == 4
    # Nothing in common: not a result.
    assert ranking.rank(ask, [rdoc("d9", "公积金")], COLL, 5) == []


def test_the_matter_on_the_form_suggests_its_articles_and_their_siblings() -> None:
    ask = ranking.Ask([], None, "urban.sanitation.street_vending", date(2026, 1, 1))
    same = rdoc("m1", "x", matter="urban.sanitation.street_vending")
    sibling = rdoc("m2", "x", matter="urban.sanitation.garbage")
    other = rdoc("m3", "x", matter="housing_fund.withdrawal")
    assert [d.ref for _, d in ranking.rank(ask, [other, sibling, same], COLL, 5)] == \
        ["m1", "m2"]
    assert ranking.shortlist({"社保卡": [5, 1], "补办": [1, 9]}, COLL, also=[7], limit=2) == \
        [1, 5, 7]


def test_snippet_is_around_the_longest_word_found() -> None:
    body = "前言" * 100 + "住房公积金提取需要身份证。" + "后记" * 100
    s = snippet(body, ["公积金", "提取"])
    assert "公积金" in s and s.startswith("…") and s.endswith("…")
    assert snippet("短文", ["无"]) == "短文"


def test_the_rarest_words_articles_are_read_first_within_the_budget() -> None:
    df = {"社保卡": 300, "补办": 900, "办理": 5000, "无": 0}
    assert read_plan(df, budget=2000) == {"社保卡": None, "补办": None}
    assert read_plan(df, budget=6500) == {"社保卡": None, "补办": None, "办理": None}
    # The rarest is read even when it alone is over the budget: its first by id.
    assert read_plan({"办理": 5000, "市民": 8000}, budget=1000) == {"办理": 1000}
    assert read_plan({"无": 0}) == {}
