"""The tools against flakes: is a WAV finished (what softphones wait for before a recording
may be read), and the flake hunt's reading of JUnit reports."""

from __future__ import annotations

import importlib.util
import struct
import sys
import wave
from pathlib import Path
from types import ModuleType

from agent_desk.softphone.wavfile import wav_complete
from lab.harness import free_port, free_sip_port

REPO = Path(__file__).resolve().parents[2]


def _flake_hunt() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flake_hunt", REPO / "scripts/flake_hunt.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["flake_hunt"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _wav(path: Path, frames: int = 800) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * frames)
    return path


def test_a_finished_wav_is_complete(tmp_path: Path) -> None:
    assert wav_complete(_wav(tmp_path / "a.wav"))


def test_a_wav_whose_header_was_never_filled_in_is_not(tmp_path: Path) -> None:
    # As pjmedia leaves it until the recorder is destroyed: sizes 0, audio after the header.
    path = _wav(tmp_path / "a.wav")
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, 0)
    struct.pack_into("<I", data, 40, 0)
    path.write_bytes(bytes(data))
    assert not wav_complete(path)


def test_a_wav_still_growing_after_its_header_is_not(tmp_path: Path) -> None:
    path = _wav(tmp_path / "a.wav")
    with path.open("ab") as f:
        f.write(b"\x00\x00" * 80)
    assert not wav_complete(path)


def test_missing_or_foreign_files_are_not_complete(tmp_path: Path) -> None:
    assert not wav_complete(tmp_path / "none.wav")
    (tmp_path / "x.wav").write_bytes(b"not a wave file at all")
    assert not wav_complete(tmp_path / "x.wav")


def test_lab_ports_are_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(50)] + [free_sip_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" line="3"/>
<testcase classname="tests.test_a" name="test_flaky[postgresql]" file="tests/test_a.py">
  <failure message="wave.Error: not a WAVE file&#10;more">traceback</failure></testcase>
<testcase classname="tests.test_a.TestGroup" name="test_in_class" file="tests/test_a.py"/>
<testcase classname="tests.test_b" name="test_skipped" file="tests/test_b.py">
  <skipped message="no browser"/></testcase>
<testcase classname="tests.test_b" name="test_teardown" file="tests/test_b.py"/>
<testcase classname="tests.test_b" name="test_teardown" file="tests/test_b.py">
  <error message="failed on teardown with &quot;AssertionError: 1 channel(s) left&quot;"/>
</testcase>
</testsuite></testsuites>
"""


def test_junit_reports_become_node_ids_with_the_first_failure_line() -> None:
    hunt = _flake_hunt()
    outcomes = {o.test: o for o in hunt.parse_junit(JUNIT)}
    assert outcomes["tests/test_a.py::test_ok"].status == "passed"
    flaky = outcomes["tests/test_a.py::test_flaky[postgresql]"]
    assert flaky.status == "failed" and flaky.message == "wave.Error: not a WAVE file"
    assert "tests/test_a.py::TestGroup::test_in_class" in outcomes
    assert outcomes["tests/test_b.py::test_skipped"].status == "skipped"


def test_tally_counts_runs_and_failures_per_test() -> None:
    hunt = _flake_hunt()
    good = [o for o in hunt.parse_junit(JUNIT) if o.status != "failed"]
    records = hunt.tally([(1, hunt.parse_junit(JUNIT)), (2, good), (3, good)])
    flaky = records["tests/test_a.py::test_flaky[postgresql]"]
    assert (flaky.runs, flaky.failures, flaky.failed_runs) == (1, 1, [1])
    assert flaky.first_failure == "run 1: wave.Error: not a WAVE file"
    teardown = records["tests/test_b.py::test_teardown"]  # reported twice a run: counted once
    assert (teardown.runs, teardown.failures) == (3, 3)
    assert records["tests/test_a.py::test_ok"].failures == 0
    assert records["tests/test_b.py::test_skipped"].runs == 0
    assert "test_flaky" in hunt.table([flaky])
