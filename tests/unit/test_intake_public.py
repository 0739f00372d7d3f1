"""The intake's pure rules (agent_desk/intake/public.py, schemas.py): the public state of a
case, which reply the public may read, query codes, whom a per-address limit counts, the
request hash of the idempotency check, and the form's refusals in the citizen's words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from agent_desk.intake.public import (
    CODE_ALPHABET,
    CODE_LENGTH,
    PUBLIC_STATE,
    LeadReply,
    client_bucket,
    code_hash,
    new_query_code,
    normalize_code,
    public_state,
    request_hash,
    reviewed_reply,
    same_hash,
)
from agent_desk.intake.schemas import WebCaseBody, wait_words
from cases.loop.states import STATES

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_every_loop_state_has_a_public_state_and_internal_ones_are_hidden():
    assert set(PUBLIC_STATE) == set(STATES)
    assert public_state(None) == "accepted"  # a call's case before the loop
    # A department's 退单 and a reply under review are the hotline's business.
    assert public_state("returned") == public_state("replied") == "processing"
    assert public_state("follow_up") == "answered" and public_state("closed") == "closed"


def test_a_reply_is_public_only_once_reviewed():
    r1 = LeadReply(1, "replied", "enc-1", AT)
    # Waiting for the hotline's review: nothing shown.
    assert reviewed_reply("replied", 1, [r1]) is None
    # Reviewed: 回访 and after.
    assert reviewed_reply("follow_up", 1, [r1]) == r1
    assert reviewed_reply("closed", 1, [r1]) == r1
    # 重办: round 2 is being handled; round 1's reviewed reply stays the one shown.
    r2 = LeadReply(2, "signed", None, None)
    assert reviewed_reply("handling", 2, [r1, r2]) == r1
    r2 = LeadReply(2, "replied", "enc-2", AT)
    assert reviewed_reply("replied", 2, [r1, r2]) == r1
    assert reviewed_reply("follow_up", 2, [r1, r2]) == r2
    # A reply sent back by the review (dispatch signed again) is not shown.
    assert reviewed_reply("handling", 1, [LeadReply(1, "signed", "enc", None)]) is None
    # Closed directly on the phone: no dispatch, no reply.
    assert reviewed_reply("closed", 0, []) is None


def test_query_codes_are_unambiguous_and_typed_loosely():
    codes = {new_query_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set("01OIL") & set(CODE_ALPHABET)
    code = "AB23-CD45"
    assert normalize_code(" ab23 cd45 ") == "AB23CD45"
    assert code_hash("20260302000001", code) == code_hash("20260302000001", "ab23cd45")
    assert code_hash("20260302000001", code) != code_hash("20260302000002", code)


def test_same_hash_fails_on_any_missing_side():
    h = code_hash("1", "X")
    assert same_hash(h, h)
    assert not same_hash(h, code_hash("1", "Y"))
    assert not same_hash(None, h) and not same_hash(h, None) and not same_hash(None, None)
    assert not same_hash("", "")


def test_a_limit_counts_an_ipv6_client_by_its_64_and_keeps_no_address():
    a = client_bucket("2001:db8:1:2:aaaa::1")
    assert a == client_bucket("2001:db8:1:2:bbbb::9")
    assert a != client_bucket("2001:db8:1:3::1")
    assert client_bucket("::ffff:192.0.2.7") == client_bucket("192.0.2.7")
    assert client_bucket("192.0.2.7") != client_bucket("192.0.2.8")
    assert "192" not in client_bucket("192.0.2.7") and len(a) == 24


def test_the_request_hash_ignores_key_order():
    assert request_hash({"a": 1, "b": "诉求"}) == request_hash({"b": "诉求", "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})


FORM = {"phone": "13812345678", "city": "nanjing", "subject": "噪音扰民",
        "content": "夜间施工", "consent": True}


def test_the_forms_refusals_name_the_field_in_chinese():
    with pytest.raises(ValidationError) as e:
        WebCaseBody.model_validate({**FORM, "subject": "x" * 129})
    msg = WebCaseBody.problems(e.value)
    assert msg.startswith("标题（subject）：不能超过 128 个字")
    with pytest.raises(ValidationError) as e:
        WebCaseBody.model_validate({**FORM, "consent": False})
    assert "同意声明（consent）：请阅读并同意" in WebCaseBody.problems(e.value)
    with pytest.raises(ValidationError) as e:
        WebCaseBody.model_validate({k: v for k, v in FORM.items() if k != "phone"})
    assert "联系电话（phone）：必须填写" in WebCaseBody.problems(e.value)
    with pytest.raises(ValidationError) as e:
        WebCaseBody.model_validate({**FORM, "content": "   "})
    assert "诉求内容（content）：不能为空" in WebCaseBody.problems(e.value)
    ok = WebCaseBody.model_validate({**FORM, "subject": "  噪音扰民 "})
    assert ok.subject == "噪音扰民" and ok.website == "" and ok.name == ""


def test_waits_are_said_in_minutes_or_seconds():
    assert wait_words(30) == "30 秒" and wait_words(0) == "1 秒"
    assert wait_words(3600) == "60 分钟" and wait_words(91) == "2 分钟"
