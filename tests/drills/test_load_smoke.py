"""The load benchmark's harness itself (bench/load.py --smoke): a few dozen sipp calls with RTP
audio through a real Asterisk node and the service as its own process, every call checked to
have exactly one correct case with its recordings. Only correctness is asserted: numbers are
the benchmark's business, not the test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.harness import REPO

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


def test_smoke_run_gives_every_call_one_correct_case(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "load.py"), "--smoke", "--no-save",
         "--no-plots", "--results", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=280)
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    result = lines[-1]
    check = result["check"]
    assert check["problems"] == {}, (check["details"], result["service_log"],
                                     proc.stderr[-2000:])
    assert check["calls"] == check["cases"] == result["plan"]["calls"]
    assert check["recordings"] == 3 * check["calls"]  # caller, agent and mix, each linked
    assert check["audio_checked_calls"] > 0
    assert check["agent_messages_checked"]  # no caller's number in clear to an agent's phone
    assert result["sipp"]["failed"] == 0 and result["sipp"]["successful"] == check["calls"]
    assert result["ok"] and proc.returncode == 0
    # Everything it started is gone: no sipp, service or Asterisk on its files, no files.
    work = result["work_dir"]
    left = subprocess.run(["pgrep", "-a", "-f", work], capture_output=True, text=True).stdout
    assert not left.strip(), left
    assert not (tmp_path / "load.json").exists()
    assert not Path(work).exists()
