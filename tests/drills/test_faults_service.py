"""Drill 1 (docs/faults.md): the service, as its own process (``hotline serve``), killed -9
in the middle of a surge and started again; the quick form of scripts/drill_service_kill.py
(``--quick``: one kill, seven calls)."""

from __future__ import annotations

import json

import pytest

from scripts.drill_service_kill import drill
from tests.support.servers import REDIS_URL

pytestmark = pytest.mark.asterisk


async def test_service_killed_during_a_surge_and_restarted(tmp_path, pg_admin):
    res = await drill(tmp_path, pg_admin=pg_admin, redis_url=REDIS_URL, kills=1,
                      transcribed=False)
    print("service kill drill", json.dumps(res, ensure_ascii=False))
    assert res["pass"], "\n".join(res["problems"])
    assert res["calls"] >= 7 and res["answered"] >= 4
    assert res["log"]["resynchronised"] >= 2  # at each start
    assert res["exit_code"] == 0
