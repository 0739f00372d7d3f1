"""Unit tests are pure logic: they run without Asterisk, Redis or PostgreSQL. A test placed
here that asks for one of the real parts fails at once, naming it, instead of quietly starting
the session's Asterisk."""

from __future__ import annotations

import pytest

# The fixtures of tests/conftest.py that start or need a real part.
REAL_FIXTURES = frozenset({"lab", "services", "phones", "redis", "pg_admin", "console",
                           "asr_service"})


def pytest_runtest_setup(item: pytest.Item) -> None:
    real = sorted(REAL_FIXTURES & set(getattr(item, "fixturenames", ())))
    if real or item.get_closest_marker("asterisk"):
        pytest.fail(f"{item.nodeid} needs real parts ({', '.join(real) or 'asterisk mark'}): "
                    "it belongs in tests/integration or tests/drills", pytrace=False)
