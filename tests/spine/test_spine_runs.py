"""The spine end to end as users drive it: `g7chaos run` (what `make demo` does per scenario) and `pytest -m chaos`.

Each test starts the built-in twin target in a child process, exactly as a user's command does.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ECC = ROOT / "scenarios" / "ecc-double-bit-error.yaml"

pytestmark = pytest.mark.slow


def test_demo_run_of_the_ecc_scenario_passes_with_every_report_file(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness", "run", str(ECC), "--report-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
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


def _pytest_chaos(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-m", "chaos", "-p", "no:cacheprovider", "-q",
                           "--chaos-report-dir", str(tmp_path / "reports"), str(ECC), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_pytest_chaos_collects_and_passes_the_scenario(tmp_path: Path) -> None:
    out = _pytest_chaos(tmp_path)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "1 passed" in out.stdout


def test_pytest_chaos_fails_naming_the_checks_on_the_anti_pattern(tmp_path: Path) -> None:
    out = _pytest_chaos(tmp_path, "--chaos-profile", "no-dbe-remediation")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "1 failed" in out.stdout
    assert "verdict fail" in out.stdout
    assert "node-drained:" in out.stdout and "no-corrupted-responses:" in out.stdout, out.stdout[-3000:]


def test_recover_after_sigkill_reverts_and_stops_the_orphaned_twin(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to revert: the journal says what is owed, and the run's twin lives on.
    `g7chaos recover` clears the DBE through that twin, then stops the twin the dead run started."""
    import os
    import signal
    import threading
    import time
    from harness.journal import owed_reverts, read_records

    reports = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(ECC), "--profile", "no-dbe-remediation",
                             "--report-dir", str(reports)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    twin_pid = None
    try:
        deadline, tick = time.time() + 90, threading.Event()
        journal = None
        while time.time() < deadline and proc.poll() is None:
            found = list(reports.glob("*-ecc-double-bit-error/journal.jsonl"))
            if found and any(r.get("event") == "fault-landed" for r in read_records(found[0])):
                journal = found[0]
                break
            tick.wait(0.05)
        assert journal is not None, "the fault never landed"
        twin_pid = next(r for r in read_records(journal) if r["event"] == "run-started")["twin_pid"]
        proc.kill()
        proc.wait(timeout=10)
        assert len(owed_reverts(journal)) == 1
        os.kill(twin_pid, 0)                                  # the twin outlived its run

        out = subprocess.run([sys.executable, "-m", "harness", "recover", "--reports", str(reports)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (out.stdout, out.stderr)
        assert "reverted ecc-double-bit-error" in out.stdout and f"pid {twin_pid}" in out.stdout, out.stdout
        assert owed_reverts(journal) == []
        recovered = [r for r in read_records(journal) if r.get("event") == "reverted"]
        assert recovered and recovered[0]["by"] == "recover"
        from harness.commands.recover import _alive
        deadline = time.time() + 20
        while time.time() < deadline:
            if not _alive(twin_pid):
                break
            tick.wait(0.1)
        else:
            raise AssertionError(f"the orphaned twin {twin_pid} is still running")
    finally:
        if proc.poll() is None:
            proc.kill()
        if twin_pid:
            try:
                os.kill(twin_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
