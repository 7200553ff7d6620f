"""The spine end to end as users drive it: `g7chaos run` (what `make demo` does per scenario) and `pytest -m chaos`.

Each test starts the built-in twin target in a child process, exactly as a user's command does; the commands run
in the background ahead of their tests (tests/ahead.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ahead import Job, Ran

ROOT = Path(__file__).resolve().parents[2]
ECC = ROOT / "scenarios" / "ecc-double-bit-error.yaml"

pytestmark = pytest.mark.slow


def _pytest_chaos(*extra: str) -> Job:
    return Job("-".join(["pytest-chaos", *extra[1:2]]),
               lambda report: [sys.executable, "-m", "pytest", "-m", "chaos", "-p", "no:cacheprovider", "-q",
                               "--chaos-report-dir", str(report / "reports"), str(ECC), *extra],
               timeout_s=240, cwd=ROOT)


JOBS = {
    "test_demo_run_of_the_ecc_scenario_passes_with_every_report_file":
        Job("demo-ecc", lambda report: [sys.executable, "-m", "harness", "run", str(ECC), "--report-dir", str(report)],
            timeout_s=240, cwd=ROOT),
    "test_pytest_chaos_collects_and_passes_the_scenario": _pytest_chaos(),
    "test_pytest_chaos_fails_naming_the_checks_on_the_anti_pattern":
        _pytest_chaos("--chaos-profile", "no-dbe-remediation"),
}


def ahead_job(test: str, params: dict) -> Job:
    return JOBS[test]


def test_demo_run_of_the_ecc_scenario_passes_with_every_report_file(ahead_run: Ran) -> None:
    out, tmp_path = ahead_run.out, ahead_run.report_dir
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "checks: ecc-double-bit-error" in out.stdout and "verdict PASS" in out.stdout   # the checks table
    (run,) = [p for p in tmp_path.iterdir() if p.name.endswith("-ecc-double-bit-error")]
    for name in ("result.json", "junit.xml", "report.html", "journal.jsonl"):
        assert (run / name).stat().st_size > 0, name
    assert list(run.rglob("*stats*.csv")), "Locust's raw stats are missing"
    result = json.loads((run / "result.json").read_text())
    assert result["verdict"] == "pass" and result["exit_code"] == 0
    assert {c["name"] for c in result["checks"]} >= {"fault-landed", "node-drained", "no-corrupted-responses",
                                                      "alarm-fired", "slo"}
    assert result["faults"][0]["landed"] and result["faults"][0]["reverted_at"]
    events = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "run-started" and names[-1] == "run-ended"
    assert "recovered" in names, "the fleet never got steady again after the fault"
    recovered = next(e for e in events if e["event"] == "recovered")
    assert 0 <= recovered["after_s"] < 20


def test_pytest_chaos_collects_and_passes_the_scenario(ahead_run: Ran) -> None:
    out = ahead_run.out
    assert out.returncode == 0, out.stdout[-3000:]
    assert "1 passed" in out.stdout


def test_pytest_chaos_fails_naming_the_checks_on_the_anti_pattern(ahead_run: Ran) -> None:
    out = ahead_run.out
    assert out.returncode == 1, out.stdout[-3000:]
    assert "1 failed" in out.stdout
    assert "verdict fail" in out.stdout
    assert "node-drained:" in out.stdout and "no-corrupted-responses:" in out.stdout, out.stdout[-3000:]
