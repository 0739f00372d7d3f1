"""Webhooks' pure parts: signatures a receiver can check, the retry decision (backoff with
jitter, dead after the attempts or the age), where a webhook may go, and the config."""

from __future__ import annotations

import time
import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from agent_desk.webhooks.policy import (
    Attempt,
    address_allowed,
    backoff_s,
    decide,
    networks,
    url_problem,
)
from agent_desk.webhooks.signing import sign, signature_header, verify
from common.config import ConfigError, WebhooksSection, parse_config
from common.secrets import webhook_secret
from lab.harness import EXAMPLE_CONFIG, REPO, to_toml

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
SETTINGS = WebhooksSection(max_attempts=4, max_age_s=3600, backoff_base_s=10,
                           backoff_max_s=100)


def test_signature_verifies_and_refuses_tampering_replay_and_other_secrets():
    secret, body, ts = "whsec_abc", b'{"id":"x"}', "1767225600"
    header = signature_header([secret], ts, body)
    assert header == f"sha256={sign(secret, ts, body)}"
    assert verify(secret, ts, body, header, now=1767225600 + 10)
    assert not verify(secret, ts, body + b" ", header, now=1767225600)
    assert not verify("whsec_other", ts, body, header, now=1767225600)
    assert not verify(secret, "1767225601", body, header, now=1767225600)  # timestamp signed
    assert not verify(secret, ts, body, header, now=1767225600 + 301)  # too old: a replay
    assert not verify(secret, "soon", body, header, now=1767225600)
    assert not verify(secret, ts, body, "md5=" + sign(secret, ts, body), now=1767225600)
    # During a rotation's grace both secrets sign; a receiver holding either accepts.
    both = signature_header(["whsec_new", "whsec_old"], ts, body)
    assert verify("whsec_old", ts, body, both, now=1767225600)
    assert verify("whsec_new", ts, body, both, now=1767225600)


def test_department_secrets_are_derived_per_department_and_generation():
    master = "m" * 10 + "0123456789abcdefghijklmnopqrstuv"
    a1 = webhook_secret(master, "nj-chengguan", 1)
    assert a1 == webhook_secret(master, "nj-chengguan", 1)
    assert a1.startswith("whsec_") and len(a1) == 6 + 43
    assert len({a1, webhook_secret(master, "nj-chengguan", 2),
                webhook_secret(master, "nj-renshe", 1),
                webhook_secret(master + "x", "nj-chengguan", 1)}) == 4
    assert master not in a1


def test_backoff_doubles_up_to_the_cap_with_jitter():
    assert [backoff_s(n, 10, 100, 0.0) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 50]
    assert [backoff_s(n, 10, 100, 0.999999) for n in (1, 2, 5)] == pytest.approx([10, 20, 100])
    assert backoff_s(10_000, 10, 100, 0.5) == 75  # no overflow after many attempts


def test_decide_delivers_retries_and_dead_letters():
    ok = decide(Attempt(status=204), attempts=1, created_at=T0, now=T0, settings=SETTINGS,
                rand=0.5)
    assert (ok.state, ok.last_status, ok.last_error) == ("delivered", 204, None)
    again = decide(Attempt(status=503), attempts=2, created_at=T0, now=T0, settings=SETTINGS,
                   rand=0.0)
    assert again.state == "pending" and again.last_error == "HTTP 503"
    assert again.next_attempt_at == T0 + timedelta(seconds=10)
    down = decide(Attempt(error="ClientConnectorError: refused"), attempts=1, created_at=T0,
                  now=T0, settings=SETTINGS, rand=0.0)
    assert down.state == "pending" and down.last_status is None
    assert decide(Attempt(status=500), attempts=4, created_at=T0, now=T0, settings=SETTINGS,
                  rand=0.0).state == "dead"  # max_attempts
    old = decide(Attempt(status=500), attempts=2, created_at=T0 - timedelta(hours=1), now=T0,
                 settings=SETTINGS, rand=0.0)
    assert old.state == "dead"  # the next try would be past max_age_s
    refused = decide(Attempt(error="refused: only http", refused=True), attempts=1,
                     created_at=T0, now=T0, settings=SETTINGS, rand=0.0)
    assert refused.state == "dead"
    redirect = decide(Attempt(status=302), attempts=1, created_at=T0, now=T0,
                      settings=SETTINGS, rand=0.0)
    assert redirect.state == "pending"  # redirects are not followed: not delivered


def test_only_http_urls_to_public_or_allowed_addresses():
    none = networks([])
    lab = networks(["127.0.0.0/8", "10.20.0.0/16"])
    assert url_problem("https://dept.example.gov.cn/hook", none) is None
    assert url_problem("http://1.2.4.8:8443/h", none) is None
    assert "not allowed" in (url_problem("http://203.0.113.9/h", none) or "")  # TEST-NET
    assert "only http" in (url_problem("ftp://dept.example/x", none) or "")
    assert "only http" in (url_problem("file:///etc/passwd", none) or "")
    assert "no host" in (url_problem("http:///x", none) or "")
    assert "credentials" in (url_problem("https://u:p@dept.example/x", none) or "")
    assert "not a URL" in (url_problem("http://[::1/x", none) or "")
    for bad in ("http://127.0.0.1:8080/h", "http://[::1]/h", "http://10.0.0.5/h",
                "http://169.254.169.254/latest/meta-data", "http://0.0.0.0/h",
                "http://[::ffff:127.0.0.1]/h", "http://224.0.0.1/h", "http://192.168.1.1/"):
        assert "not allowed" in (url_problem(bad, none) or ""), bad
    assert url_problem("http://127.0.0.1:8080/h", lab) is None
    assert url_problem("http://10.20.3.4/h", lab) is None
    assert url_problem("http://10.21.3.4/h", lab) is not None
    assert address_allowed("8.8.8.8", none)
    assert not address_allowed("100.64.0.1", none)  # carrier-grade NAT: not public
    assert not address_allowed("fe80::1%eth0", none)
    assert not address_allowed("not-an-ip", none)


def _example() -> dict:
    return tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))


def test_webhooks_config_defaults_and_errors_name_the_key():
    raw = _example()
    cfg = parse_config(to_toml(raw))
    assert cfg.webhooks.enabled and cfg.webhooks.secret_env == "HOTLINE_WEBHOOK_SECRET"
    raw["webhooks"] = {"allow_networks": ["10.0.0.0/33"], "timeout_s": 30, "lease_s": 20}
    with pytest.raises(ConfigError) as err:
        parse_config(to_toml(raw), source="hotline.toml")
    assert "webhooks.allow_networks" in str(err.value)
    raw["webhooks"] = {"timeout_s": 30, "lease_s": 20}
    with pytest.raises(ConfigError) as err:
        parse_config(to_toml(raw), source="hotline.toml")
    assert "lease_s must be above timeout_s" in str(err.value)
    raw["webhooks"] = {"timeout_s": 10, "lease_s": 30, "batch": 40, "concurrency": 10}
    with pytest.raises(ConfigError) as err:
        parse_config(to_toml(raw), source="hotline.toml")
    assert "timeout_s x 4" in str(err.value)
    raw["webhooks"] = {"max_attempts": 0}
    with pytest.raises(ConfigError) as err:
        parse_config(to_toml(raw), source="hotline.toml")
    assert "webhooks.max_attempts" in str(err.value)


def test_the_check_in_docs_webhooks_md_accepts_what_the_service_signs():
    doc = (REPO / "docs" / "webhooks.md").read_text(encoding="utf-8")
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    space: dict = {}
    exec(compile(code, "docs/webhooks.md", "exec"), space)  # the page's own function
    check = space["verify_hotline_webhook"]
    body = '{"id":"20260302000017:v2:nj-chengguan","data":{"matter_name":"占道经营"}}'.encode()
    ts = str(int(time.time()))
    header = signature_header(["whsec_new", "whsec_old"], ts, body)
    assert check("whsec_old", ts, header, body) and check("whsec_new", ts, header, body)
    assert not check("whsec_other", ts, header, body)
    assert not check("whsec_new", ts, header, body + b" ")
    assert not check("whsec_new", str(int(ts) - 600), signature_header(
        ["whsec_new"], str(int(ts) - 600), body), body)
    assert verify("whsec_new", ts, body, header, now=time.time())
