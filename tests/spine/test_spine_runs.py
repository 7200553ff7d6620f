"""The spine end to end as users drive it: the game day `make demo` runs, and `pytest -m chaos`.

Each command starts the built-in twin target in a child process, exactly as a user's command does; the commands
run in the background ahead of their tests (tests/ahead.py), and other modules read the same runs
(tests/jobs.py): the demo's game day is the matrix's article column, the anti-pattern run its ECC cell.
"""
from __future__ import annotations

import json

import pytest

from ahead import Job, Ran
from jobs import article_column, pytest_chaos_ecc

pytestmark = pytest.mark.slow

JOBS = {
    "test_the_demo_game_day_passes_the_ecc_scenario_with_every_report_file": article_column(),
    "test_pytest_chaos_collects_and_passes_the_scenario": pytest_chaos_ecc(),
    "test_pytest_chaos_fails_naming_the_checks_on_the_anti_pattern": pytest_chaos_ecc("no-dbe-remediation"),
}


def ahead_job(test: str, params: dict) -> Job:
    return JOBS[test]


def test_the_demo_game_day_passes_the_ecc_scenario_with_every_report_file(ahead_run: Ran) -> None:
    out, column = ahead_run.out, ahead_run.report_dir / "article"
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    # one column runs in the matrix's own process: its console is the command's output, as `make demo` shows it
    assert "checks: ecc-double-bit-error" in out.stdout and "verdict PASS  ecc-double-bit-error" in out.stdout
    (run,) = [p for p in column.iterdir() if p.name.endswith("-ecc-double-bit-error")]
    for name in ("result.json", "junit.xml", "report.html", "journal.jsonl"):
        assert (run / name).stat().st_size > 0, name
    assert list(run.rglob("*stats*.csv")), "Locust's raw stats are missing"
    result = json.loads((run / "result.json").read_text())
    assert result["verdict"] == "pass" and result["exit_code"] == 0
    assert {c["name"] for c in result["checks"]} >= {"fault-landed", "node-drained", "node-replaced",
                                                      "no-corrupted-responses", "alarm-fired", "slo"}
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
    assert list(ahead_run.report_dir.glob("*-ecc-double-bit-error/result.json")), "no run folder written"
