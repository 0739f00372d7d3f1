"""Issue 15: keys that are 32 random bytes (Medium 2), numbers masked however they are said or
written (Medium 5), callbacks that dial only Chinese mobile and landline numbers (Medium 6),
and the rendered dialplan filtering what reaches Dial and AGI (Low)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from typing import Any

import pytest
from cryptography.fernet import Fernet

from agent_desk.callbacks.numbers import callback_number
from agent_desk.web.auth import Sessions
from asr.live import LiveCaptions, StreamInfo
from common.config import (
    CALLBACK_PATTERNS,
    ConfigError,
    load_config,
    parse_config,
    random_key_weakness,
)
from common.errors import DomainError
from common.privacy import PersonalData, scrub
from common.secrets import DATA_LOOKUP, SESSION_SIGN, derive_key
from lab.harness import EXAMPLE_CONFIG, ensure_secrets, lab_config_toml

# -- Medium 2: weak secrets -------------------------------------------------------------------

WEAK_KEYS = ["hotline12345", "hotline12345" * 4, "a" * 64, "0123456789abcdef" * 4,
             # 24 bytes: what the lab used to make (a fixed id: test workers collect alike)
             pytest.param(secrets.token_urlsafe(24), id="random-24-bytes"),
             "correct horse battery staple correct horse battery",
             "HotlineSecretPasswordAdmin12345QwertyLetmein1", "abcdefgh" * 8]
STRONG_KEYS = [pytest.param(secrets.token_urlsafe(32), id="urlsafe-32"),
               pytest.param(secrets.token_hex(32), id="hex-32"),
               pytest.param(base64.b64encode(secrets.token_bytes(32)).decode(), id="base64-32"),
               pytest.param(secrets.token_urlsafe(48), id="urlsafe-48")]


@pytest.mark.parametrize("env,prop,what", [
    ("HOTLINE_DATA_KEY", "data_key", "security.data_key_env"),
    ("HOTLINE_SESSION_SECRET", "session_secret", "web.session_secret_env")])
@pytest.mark.parametrize("weak", WEAK_KEYS)
def test_weak_data_key_and_session_secret_are_refused_naming_the_variable(
        monkeypatch, env, prop, what, weak):
    cfg = load_config(EXAMPLE_CONFIG)
    monkeypatch.setenv(env, weak)
    with pytest.raises(ConfigError) as err:
        getattr(cfg, prop)
    msg = str(err.value)
    assert env in msg and what in msg, msg
    assert "secrets.token_urlsafe(32)" in msg, msg  # says how to make one


@pytest.mark.parametrize("strong", STRONG_KEYS)
def test_32_random_bytes_in_hex_or_base64_are_accepted(monkeypatch, strong):
    assert random_key_weakness(strong) is None
    monkeypatch.setenv("HOTLINE_DATA_KEY", strong)
    monkeypatch.setenv("HOTLINE_SESSION_SECRET", strong)
    cfg = load_config(EXAMPLE_CONFIG)
    assert cfg.data_key == strong and cfg.session_secret == strong


def test_generated_keys_are_never_refused():
    # A generator's output must always pass (a check that sometimes refuses is a flaky start).
    for _ in range(3000):
        for key in (secrets.token_urlsafe(32), secrets.token_hex(32)):
            assert random_key_weakness(key) is None, key


def test_lab_replaces_weak_secrets_with_32_random_bytes(monkeypatch):
    for name in ("HOTLINE_DATA_KEY", "HOTLINE_SESSION_SECRET"):
        monkeypatch.setenv(name, "hotline12345")
    ensure_secrets()
    cfg = load_config(EXAMPLE_CONFIG)
    assert cfg.data_key != "hotline12345" and random_key_weakness(cfg.data_key) is None
    assert random_key_weakness(cfg.session_secret) is None


def _sha256_derivation(key: str) -> tuple[bytes, bytes]:
    """How the data key's keys were derived before: one SHA-256, then HMAC per purpose."""
    root = hashlib.sha256(b"hotline-data-key|" + key.encode()).digest()
    return (hmac.new(root, b"encrypt", hashlib.sha256).digest(),
            hmac.new(root, b"lookup", hashlib.sha256).digest())


def test_keys_come_from_hkdf_and_values_under_the_old_derivation_still_decrypt():
    key = secrets.token_urlsafe(32)
    pd = PersonalData(key)
    old_encrypt, old_lookup = _sha256_derivation(key)
    number = "13812345678"
    # The look-up hash is keyed by HKDF(key, lookup label), not the SHA-256 derivation.
    assert pd.lookup_hash(number) == hmac.new(derive_key(key, DATA_LOOKUP), number.encode(),
                                              hashlib.sha256).hexdigest()[:40]
    assert pd.lookup_hash(number) != hmac.new(old_lookup, number.encode(),
                                              hashlib.sha256).hexdigest()[:40]
    assert pd.legacy_lookup_hash(number) == hmac.new(old_lookup, number.encode(),
                                                     hashlib.sha256).hexdigest()[:40]
    # New values can't be read with the old derivation; old values still decrypt.
    old_fernet = Fernet(base64.urlsafe_b64encode(old_encrypt))
    token = pd.encrypt("张先生")
    assert token is not None
    with pytest.raises(Exception):  # noqa: B017 (InvalidToken)
        old_fernet.decrypt(token.encode())
    assert pd.decrypt(old_fernet.encrypt("张先生".encode()).decode()) == "张先生"
    # ... and so do values under a previous key's old derivation (rotation away from a weak key).
    weak = "hotline12345"
    legacy = Fernet(base64.urlsafe_b64encode(_sha256_derivation(weak)[0]))
    rotated = PersonalData(key, previous=[weak])
    assert rotated.decrypt(legacy.encrypt(b"old note").decode()) == "old note"
    token = legacy.encrypt(b"old note").decode()
    with pytest.raises(ValueError, match="wrong data key"):
        PersonalData(key).decrypt(token)
    assert PersonalData(key).decrypt(rotated.reencrypt(token)) == "old note"


def test_session_cookies_are_signed_with_an_hkdf_key():
    secret = secrets.token_urlsafe(32)
    sessions = Sessions(secret, 60)
    body = b"eyJ1aWQiOjF9"
    expected = base64.urlsafe_b64encode(hmac.new(derive_key(secret, SESSION_SIGN), body,
                                                 hashlib.sha256).digest()).decode().rstrip("=")
    assert sessions._sign(body) == expected
    # Not the plain SHA-256 of the secret a word list attacks.
    old_key = hashlib.sha256(b"hotline-session|" + secret.encode()).digest()
    assert sessions._sign(body) != base64.urlsafe_b64encode(
        hmac.new(old_key, body, hashlib.sha256).digest()).decode().rstrip("=")


# -- Medium 5: masking ------------------------------------------------------------------------

MASKED = [
    ("一三八一二三四五六七八", "138****5678"),
    ("幺三八一二三四五六七八", "138****5678"),
    ("138 1234 5678", "138****5678"),
    ("138-1234-5678", "138****5678"),
    ("１３８１２３４５６７８", "138****5678"),
    ("１３８ １２３４ ５６７８", "138****5678"),
    ("幺三八 1234 五六七八", "138****5678"),
    ("一三八－一二三四－五六七八", "138****5678"),
    ("我的电话是一三八一二三四五六七八，谢谢", "我的电话是138****5678，谢谢"),
    ("电话 138 1234 5678 打过来", "电话 138****5678 打过来"),
    ("号码,13812345678", "号码,138****5678"),
    ("caller 13812345678 rang", "caller 138****5678 rang"),
    ("+86 138 1234 5678", "+86*******5678"),
    ("座机 025-8888 6666", "座机 025****6666"),
    ("0755-1234567", "075****4567"),
    ("010 12345678", "010****5678"),
    ("2026-12-06 13812345678", "2026-12-06 138****5678"),
    ("call 13812345678.", "call 138****5678."),
]
KEPT = [
    "请拨打12345", "110", "报警打110，急救120", "12345 110", "编号 12", "2026-12-06",
    "2026/12/6 下午三点", "2026年12月6日", "金额2500000元", "¥ 1234567", "1,234,567",
    "3.1415926", "1234567.89", "12,345,678", "一万二千三百元", "第一二三次", "共 3 人",
    "12:30", "房间 1203",
]


@pytest.mark.parametrize("text,masked", MASKED)
def test_numbers_are_masked_however_they_are_written(text, masked):
    assert scrub(text) == masked


@pytest.mark.parametrize("text", KEPT)
def test_short_numbers_dates_and_amounts_stay(text):
    assert scrub(text) == text


def test_a_number_still_being_said_is_hidden_until_it_is_whole():
    partials = ["我的号码是一三八", "我的号码是一三八一二三四", "我的号码是一三八一二三四五六七八"]
    shown = [scrub(p, partial=True) for p in partials]
    assert shown == ["我的号码是***", "我的号码是*******", "我的号码是***********"]
    assert scrub(partials[-1]) == "我的号码是138****5678"
    assert scrub("第一", partial=True) == "第一"  # one or two numerals are just words


def test_live_captions_are_scrubbed_before_they_are_published():
    published: list[dict[str, Any]] = []

    async def publish(msg: dict[str, Any]) -> None:
        published.append(msg)

    async def run() -> None:
        live = LiveCaptions(None, 8000, publish, threads=1)
        info = StreamInfo("node1:1.1", "20261206000001", "caller")
        for text, final in (("我的电话是一三八一二三", False),
                            ("我的电话是一三八一二三四五六七八", True),
                            ("号码 138 1234 5678 请回电", True)):
            await live._emit(info, {"text": text, "final": final, "start": 0.0, "end": 1.0})
        await live.stop()
    asyncio.run(run())
    texts = [m["text"] for m in published]
    assert texts == ["我的电话是******", "我的电话是138****5678", "号码 138****5678 请回电"]


# -- Medium 6: callback numbers ---------------------------------------------------------------

ALLOWED = [("13812345678", "13812345678"), ("+86 138-1234-5678", "13812345678"),
           ("008613812345678", "13812345678"), ("02588886666", "02588886666"),
           ("010-12345678", "01012345678"), ("07551234567", "07551234567"),
           ("88886666", "88886666")]
REFUSED = ["110", "120", "119", "12345", "12110", "95588", "10086", "106900001234",
           "17909 13812345678", "001 202 555 0143", "+12025550143", "+44 20 7946 0958",
           "13812345678,t", "13812345678&PJSIP/1002", "sip:13812345678@evil.example",
           "13812345678@evil", "1381234567", "138123456789", "", "anonymous",
           "１３８１２３４５６７８"]


@pytest.mark.parametrize("raw,dialled", ALLOWED)
def test_chinese_mobile_and_landline_numbers_may_be_called_back(raw, dialled):
    assert callback_number(raw, CALLBACK_PATTERNS) == dialled


@pytest.mark.parametrize("raw", REFUSED)
def test_short_emergency_premium_international_and_odd_numbers_are_refused(raw):
    with pytest.raises(DomainError) as err:
        callback_number(raw, CALLBACK_PATTERNS)
    assert err.value.code == "number_not_allowed"
    assert "13812345678" not in err.value.message  # the refusal does not echo the number


def test_an_emergency_line_is_refused_whatever_the_patterns():
    with pytest.raises(DomainError):
        callback_number("02584001110", CALLBACK_PATTERNS, refused=["02584001110"])


def test_callback_patterns_are_configurable_and_checked(tmp_path):
    cfg = parse_config(lab_config_toml(tmp_path, overrides={
        "callbacks.allowed_patterns": [r"1[3-9][0-9]{9}"]}), base_dir=tmp_path)
    assert cfg.callbacks.allowed_patterns == [r"1[3-9][0-9]{9}"]
    with pytest.raises(DomainError):
        callback_number("02588886666", cfg.callbacks.allowed_patterns)
    for bad, why in (([r"[0-9]+"], "short code"), ([r"(unclosed"], "regular expression"),
                     ([], "at least one")):
        with pytest.raises(ConfigError, match=why):
            parse_config(lab_config_toml(tmp_path, overrides={
                "callbacks.allowed_patterns": bad}), base_dir=tmp_path)


def test_config_check_names_a_weak_data_key_and_session_secret(tmp_path, monkeypatch, capsys):
    from hotline.cli import main

    path = tmp_path / "hotline.toml"
    path.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    monkeypatch.setenv("HOTLINE_DATA_KEY", "hotline12345")
    monkeypatch.setenv("HOTLINE_SESSION_SECRET", "hotline12345" * 4)
    assert main(["--config", str(path), "config", "check"]) == 2
    out = capsys.readouterr().out
    assert "HOTLINE_DATA_KEY is not usable" in out and "HOTLINE_SESSION_SECRET is not usable" in out
    assert "secrets.token_urlsafe(32)" in out
