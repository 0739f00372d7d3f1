"""Issue 15's pure parts of the console's hardening: who the client is behind a proxy, CSV
cells a spreadsheet would run, the cookie warning, the pages' CSP, the audit chain's hash."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from agent_desk.audit import content_hash
from agent_desk.models import AuditEntry
from agent_desk.web.app import cookie_warning
from agent_desk.web.middleware import forwarded_client, page_headers
from agent_desk.web.routes import spreadsheet_cell
from common.config import WebSection

PROXIES = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("127.0.0.1/32")]


def test_forwarded_for_is_read_only_from_trusted_proxies():
    # Not a proxy: its header is whatever the client wrote.
    assert forwarded_client("198.51.100.3", ["6.6.6.6"], PROXIES) == "198.51.100.3"
    assert forwarded_client("10.0.0.5", ["6.6.6.6"], []) == "10.0.0.5"
    # The proxy's own hop (rightmost) names the client; what the client put left of it
    # does not count.
    assert forwarded_client("10.0.0.5", ["6.6.6.6, 203.0.113.9"], PROXIES) == "203.0.113.9"
    # Through two trusted proxies (several headers are one list).
    assert forwarded_client("127.0.0.1", ["203.0.113.9", "10.0.0.7"], PROXIES) == \
        "203.0.113.9"
    # Garbage stops the walk at the last trusted hop; no header: the proxy itself.
    assert forwarded_client("10.0.0.5", ["<script>, 10.0.0.7"], PROXIES) == "10.0.0.7"
    assert forwarded_client("10.0.0.5", [], PROXIES) == "10.0.0.5"
    assert forwarded_client("10.0.0.5", ["[2001:db8::1]"], PROXIES) == "2001:db8::1"


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised():
    for cell in ("=HYPERLINK(\"http://x\")", "+8613812345678", "-1+1", "@SUM(A1)",
                 "\t=1", "\r=1"):
        assert spreadsheet_cell(cell) == "'" + cell
    for cell in ("", "南京", "13812345678", "a=b"):
        assert spreadsheet_cell(cell) == cell
    assert spreadsheet_cell(5) == 5 and spreadsheet_cell(None) is None


def test_a_warning_when_cookies_are_not_secure_off_the_loopback():
    assert cookie_warning(WebSection(host="127.0.0.1")) is None
    assert cookie_warning(WebSection(host="::1")) is None
    assert cookie_warning(WebSection(host="localhost")) is None
    warning = cookie_warning(WebSection(host="0.0.0.0"))
    assert warning is not None and "secure_cookies" in warning
    assert cookie_warning(WebSection(host="0.0.0.0", secure_cookies=True)) is None


def test_the_pages_connect_only_to_their_own_host():
    csp = page_headers("console.example:8443")["Content-Security-Policy"]
    assert "connect-src 'self' ws://console.example:8443 wss://console.example:8443;" in csp
    assert " ws: " not in csp
    # A Host header that is not a host is not written into the policy.
    csp = page_headers("evil; script-src *")["Content-Security-Policy"]
    assert "connect-src 'self';" in csp and "evil" not in csp


def test_trusted_proxies_must_be_networks():
    import pytest
    from pydantic import ValidationError

    assert WebSection(trusted_proxies=["10.0.0.0/8", "::1"]).trusted_proxies
    with pytest.raises(ValidationError):
        WebSection(trusted_proxies=["proxy.example"])


def test_the_audit_hash_covers_every_field_and_the_previous_hash():
    e = AuditEntry(id=7, at=datetime(2026, 12, 6, 8, 0, tzinfo=UTC), username="sup",
                   role="supervisor", action="agent.pause", case_number=None,
                   address="10.0.0.5", detail={"agent": "1001", "paused": True})
    h = content_hash("", e)
    assert h == content_hash("", e) and len(h) == 64
    assert content_hash("a" * 64, e) != h
    naive = AuditEntry(id=7, at=datetime(2026, 12, 6, 8, 0), username="sup",
                       role="supervisor", action="agent.pause", case_number=None,
                       address="10.0.0.5", detail={"paused": True, "agent": "1001"})
    assert content_hash("", naive) == h  # SQLite gives the UTC time back without its zone
    for field, value in (("username", "admin"), ("address", "10.0.0.6"),
                         ("detail", {"agent": "1002", "paused": True})):
        other = AuditEntry(**{**{k: getattr(e, k) for k in (
            "id", "at", "username", "role", "action", "case_number", "address", "detail")},
            field: value})
        assert content_hash("", other) != h, field
