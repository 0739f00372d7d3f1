"""The suggested classification, the pure part: texts cleaned of numbers before anything
segments them, the keyword rules, and the naive Bayes over hashed features beating the rules
on held-back cases of the labelled set (tests/data/insight/complaints.jsonl)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent_desk.insight.classifier import (
    KeywordRules,
    NaiveBayes,
    accuracy,
    held_back,
    load_synonyms,
)
from agent_desk.insight.text import Segmenter, clean, features, tokens, topic_words
from cases.loop.taxonomy import Taxonomy
from common.privacy import PersonalData

DATA = Path(__file__).resolve().parents[1] / "data" / "insight" / "complaints.jsonl"
LONG_NUMBER = re.compile(r"[0-9０-９]{5,}")
PERSONAL = PersonalData("insight-unit-key-0123456789abcdef")


@pytest.fixture(scope="module")
def rules() -> KeywordRules:
    return KeywordRules(Taxonomy.load(), load_synonyms())


@pytest.fixture(scope="module")
def segmenter(rules: KeywordRules) -> Segmenter:
    return Segmenter(rules.vocabulary())


def labelled() -> list[dict[str, str]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def test_the_labelled_set_is_large_varied_and_carries_numbers() -> None:
    rows = labelled()
    assert len(rows) >= 300 and len({r["matter"] for r in rows}) >= 10
    taxonomy = Taxonomy.load()
    assert all(not taxonomy.check("complaint", r["matter"]) for r in rows)
    with_numbers = [r for r in rows if re.search(r"[0-9]{7,}|[0-9]{3}[ -][0-9]{4}|一三八",
                                                 r["content"])]
    assert len(with_numbers) >= 50


@pytest.mark.parametrize(("text", "gone"), [
    ("我的电话是13812345678，请回电", "13812345678"),
    ("联系电话：139 1234 5678", "1234"),
    ("手机一三八一二三四五六七八", "一三八"),
    ("身份证号320102198801011234", "3201"),
    ("热线12345打不通，门牌号128号", "12345"),
    ("座机是０２５－８４５６１２３４", "８４５"),
])
def test_clean_leaves_no_number(text: str, gone: str) -> None:
    out = clean(text)
    assert gone not in out and not re.search(r"[0-9０-９]", out)


def test_words_are_dictionary_words_and_never_names(segmenter: Segmenter) -> None:
    words = tokens("张建国反映家里停水了，自来水公司电话打不通，王芳也没水", segmenter)
    assert "停水" in words and "没水" in words
    topics = topic_words(words, segmenter)
    assert {"停水", "自来水"} <= topics
    assert "张建国" not in topics and "王芳" not in topics


def test_keyword_rules_prefer_the_longest_word(rules: KeywordRules) -> None:
    g = rules.predict("工地夜间施工噪音太大")
    assert g is not None and g.matter == "environment.noise.construction_noise"
    g = rules.predict("从昨晚开始停水")
    assert g is not None and g.matter == "utilities.water.outage"
    assert rules.predict("我想表扬一下") is None


def test_the_classifier_beats_the_rules_on_held_back_cases_and_sees_no_number(
        rules: KeywordRules, segmenter: Segmenter) -> None:
    seen: list[str] = []

    def segment(text: str) -> list[str]:
        seen.append(text)
        return segmenter(text)

    rows = labelled()
    texts = [r["subject"] + "\n" + r["content"] for r in rows]
    xs = [features(tokens(t, segment), PERSONAL.term_hash) for t in texts]
    ys = [r["matter"] for r in rows]
    test = [i for i in range(len(rows)) if held_back(f"C{i:06d}", 0.25)]
    train = [i for i in range(len(rows)) if i not in set(test)]
    assert len(test) >= 60
    model = NaiveBayes.fit([xs[i] for i in train], [ys[i] for i in train])
    truth = [ys[i] for i in test]
    model_acc = accuracy([model.predict(xs[i]) for i in test], truth)
    rules_acc = accuracy([rules.predict(clean(texts[i])) for i in test], truth)
    assert model_acc is not None and rules_acc is not None
    assert model_acc > rules_acc and model_acc >= 0.85, (model_acc, rules_acc)
    # Everything the segmenter was given was cleaned: no number in clear.
    assert len(seen) == len(rows)
    assert [s for s in seen if LONG_NUMBER.search(s)] == []
    # The model keeps hashed feature numbers and weights, no word.
    again = NaiveBayes.from_bytes(model.classes, model.to_bytes())
    assert again.predict(xs[test[0]]) == model.predict(xs[test[0]])
    assert "停水".encode() not in model.to_bytes()


def test_held_back_cases_stay_the_same_at_every_training() -> None:
    numbers = [f"2026030{i:05d}" for i in range(1000)]
    first = [n for n in numbers if held_back(n, 0.2)]
    assert first == [n for n in numbers if held_back(n, 0.2)]
    assert 150 < len(first) < 250


def test_a_short_text_is_a_confident_guess_a_strange_one_is_not(
        segmenter: Segmenter) -> None:
    rows = labelled()
    model = NaiveBayes.fit(
        [features(tokens(r["subject"] + r["content"], segmenter), PERSONAL.term_hash)
         for r in rows], [r["matter"] for r in rows])
    sure = model.predict(features(tokens("老板欠了我三个月工资", segmenter),
                                  PERSONAL.term_hash))
    assert sure.matter == "labour.wages.unpaid_wages" and sure.confidence > 0.8
    unsure = model.predict(features(tokens("我想问一下公积金怎么提取", segmenter),
                                    PERSONAL.term_hash))
    assert unsure.confidence < 0.3
