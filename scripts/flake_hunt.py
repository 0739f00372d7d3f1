"""Flake hunt: run a pytest selection several times in a row and report each test's failures.

    python scripts/flake_hunt.py --runs 5                        # the whole suite, 5 times
    python scripts/flake_hunt.py --runs 20 tests/drills.py       # some files, 20 times
    python scripts/flake_hunt.py --runs 10 -k recording tests/test_transfers.py
    python scripts/flake_hunt.py --runs 3 -- -m "not asterisk"   # more pytest options after --

Each run is a fresh pytest process (no reruns inside it: a failure counts as a failure) writing
JUnit XML and its output into the results directory (``--junit``, default
var/flake-hunt/<time>/: run-01.xml, run-01.log, ...). At the end: a table of every test that
failed at least once (or of all tests with ``--all``), with runs, failures and the first
failure's line, and the same for every test as JSON in <dir>/summary.json (``--json`` prints it
instead of the table). Exit status 1 if any run failed or broke, else 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Outcome:
    """One test's result in one run."""

    test: str
    status: str  # "passed", "failed", "error" (setup/teardown) or "skipped"
    message: str = ""


@dataclass
class TestRecord:
    """One test across all runs."""

    test: str
    runs: int = 0
    failures: int = 0
    skipped: int = 0
    failed_runs: list[int] = field(default_factory=list)
    first_failure: str = ""


@dataclass
class RunRecord:
    run: int
    exit_code: int
    seconds: float
    junit: str
    log: str
    problem: str = ""  # the run as a whole broke: no report, interrupted, usage error, ...


def test_id(case: ET.Element) -> str:
    """pytest's node id from a JUnit <testcase> (xunit1: it carries the file)."""
    name = case.get("name", "")
    classname = case.get("classname", "")
    file = case.get("file")
    if file:
        module = file[:-3].replace("/", ".") if file.endswith(".py") else file
        cls = classname[len(module) + 1:] if classname.startswith(module + ".") else ""
        return "::".join(part for part in (file, cls, name) if part)
    return f"{classname}::{name}" if classname else name


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def parse_junit(xml_text: str) -> list[Outcome]:
    """Every test case in one JUnit report, with its status and the first line of why."""
    root = ET.fromstring(xml_text)
    outcomes: list[Outcome] = []
    for case in root.iter("testcase"):
        tid = test_id(case)
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            outcomes.append(Outcome(tid, "failed", first_line(
                failure.get("message") or failure.text or "")))
        elif error is not None:
            outcomes.append(Outcome(tid, "error", first_line(
                error.get("message") or error.text or "")))
        elif skipped is not None:
            outcomes.append(Outcome(tid, "skipped", first_line(skipped.get("message") or "")))
        else:
            outcomes.append(Outcome(tid, "passed"))
    return outcomes


def tally(runs: list[tuple[int, list[Outcome]]]) -> dict[str, TestRecord]:
    """Per test: how many runs it ran in, how many of them failed, and the first failure."""
    records: dict[str, TestRecord] = {}
    for run, outcomes in runs:
        seen: set[str] = set()
        for o in outcomes:
            rec = records.setdefault(o.test, TestRecord(o.test))
            if o.status == "skipped":
                rec.skipped += 1
                continue
            if o.test not in seen:  # a failing teardown reports the test a second time
                rec.runs += 1
                seen.add(o.test)
            if o.status in ("failed", "error") and run not in rec.failed_runs:
                rec.failures += 1
                rec.failed_runs.append(run)
                if not rec.first_failure:
                    rec.first_failure = f"run {run}: {o.message}"
    return records


def table(records: list[TestRecord]) -> str:
    if not records:
        return "no test failed"
    width = min(max(len(r.test) for r in records), 90)
    lines = [f"{'test':<{width}}  runs  fails  first failure",
             f"{'-' * width}  ----  -----  -------------"]
    for r in records:
        name = r.test if len(r.test) <= width else "…" + r.test[-(width - 1):]
        lines.append(f"{name:<{width}}  {r.runs:>4}  {r.failures:>5}  {r.first_failure}")
    return "\n".join(lines)


def run_once(run: int, out: Path, pytest_args: list[str]) -> tuple[RunRecord, list[Outcome]]:
    junit = out / f"run-{run:02d}.xml"
    log = out / f"run-{run:02d}.log"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
           # No automatic reruns: a flaky test must show up as a failure.
           "-p", "no:rerunfailures", "-p", "no:flaky",
           "-o", "junit_family=xunit1", f"--junitxml={junit}", *pytest_args]
    started = time.monotonic()
    with log.open("wb") as f:
        code = subprocess.call(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    seconds = round(time.monotonic() - started, 1)
    rec = RunRecord(run, code, seconds, str(junit), str(log))
    outcomes: list[Outcome] = []
    if junit.exists():
        try:
            outcomes = parse_junit(junit.read_text(encoding="utf-8"))
        except ET.ParseError as exc:
            rec.problem = f"unreadable JUnit report: {exc}"
    else:
        rec.problem = "no JUnit report (pytest did not get to write one)"
    if code not in (0, 1) and not rec.problem:
        # 2 interrupted, 3 internal error, 4 usage error, 5 no tests collected.
        rec.problem = f"pytest exited with {code}"
    return rec, outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="test files or node ids (default: the suite)")
    parser.add_argument("--runs", type=int, default=3, help="how many runs in a row")
    parser.add_argument("-k", dest="keyword", help="pytest's -k expression")
    parser.add_argument("--junit", type=Path, help="results directory (JUnit XML per run)")
    parser.add_argument("--json", action="store_true",
                        help="print the JSON summary instead of the table")
    parser.add_argument("--all", action="store_true", help="list passing tests too")
    args, extra = parser.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    out = args.junit or REPO / "var" / "flake-hunt" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    pytest_args = ["-q", *(["-k", args.keyword] if args.keyword else []), *extra, *args.paths]

    run_records: list[RunRecord] = []
    results: list[tuple[int, list[Outcome]]] = []
    for run in range(1, args.runs + 1):
        rec, outcomes = run_once(run, out, pytest_args)
        run_records.append(rec)
        results.append((run, outcomes))
        failed = sum(o.status in ("failed", "error") for o in outcomes)
        print(f"run {run}/{args.runs}: exit {rec.exit_code}, {len(outcomes)} results, "
              f"{failed} failed, {rec.seconds:.0f} s{'; ' + rec.problem if rec.problem else ''}",
              file=sys.stderr, flush=True)

    records = sorted(tally(results).values(), key=lambda r: (-r.failures, r.test))
    summary = {
        "command": ["pytest", *pytest_args],
        "runs": [asdict(r) for r in run_records],
        "tests": [asdict(r) for r in records],
        "flaky": [r.test for r in records if 0 < r.failures < r.runs],
        "always_failing": [r.test for r in records if r.failures and r.failures == r.runs],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        shown = records if args.all else [r for r in records if r.failures]
        print(table(shown))
        broken = [r for r in run_records if r.problem]
        for r in broken:
            print(f"run {r.run}: {r.problem} (see {r.log})")
        where = out.resolve()
        if where.is_relative_to(Path.cwd()):
            where = where.relative_to(Path.cwd())
        print(f"{len(records)} tests, {args.runs} runs; results in {where}/")
    bad = any(r.failures for r in records) or any(r.problem for r in run_records)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
