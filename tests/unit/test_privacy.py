from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from common.logs import JsonFormatter
from common.privacy import PersonalData, mask_number, normalize_number, scrub


def test_mask():
    assert mask_number("13812345678") == "138****5678"
    assert mask_number("02588886666") == "025****6666"
    assert mask_number("110") == "***"
    assert mask_number("") == ""


def test_normalize_and_lookup_hash_ignore_formatting():
    pd = PersonalData("a-data-key-of-some-length")
    assert normalize_number("+86 138-1234-5678") == "13812345678"
    assert pd.lookup_hash("008613812345678") == pd.lookup_hash("13812345678")
    assert pd.lookup_hash("13812345678") != PersonalData("another-key-123").lookup_hash(
        "13812345678")


@given(st.text(min_size=1, max_size=40))
def test_encrypt_round_trip(value):
    pd = PersonalData("a-data-key-of-some-length")
    token = pd.encrypt(value)
    assert (token is not None and value not in token) or len(value) < 3
    assert pd.decrypt(token) == value


def test_logs_mask_caller_fields_and_scrub_text():
    import logging

    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "call from someone", None, None)
    rec.caller = "13812345678"
    out = JsonFormatter().format(rec)
    assert "13812345678" not in out and "138****5678" in out
    assert scrub("caller 13812345678 rang") == "caller 138****5678 rang"
