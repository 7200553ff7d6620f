"""What a matrix test runs: one `g7chaos` command (a scenario on a profile's fresh twin, or a whole column),
described up front so that tests/matrix/conftest.py can run it ahead of the test, two at a time."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Job:
    name: str
    argv: Callable[[Path], list[str]]     # the command, given the report folder it writes into
    timeout_s: float


@dataclass(frozen=True)
class Ran:
    out: subprocess.CompletedProcess
    report_dir: Path


def scenario_run(scenario: str, profile: str) -> Job:
    """`g7chaos run scenarios/<scenario>.yaml --profile <profile>` on a twin of its own."""
    return Job(f"{scenario}-on-{profile}",
               lambda report: [sys.executable, "-m", "harness", "run", str(ROOT / "scenarios" / f"{scenario}.yaml"),
                               "--profile", profile, "--report-dir", str(report)],
               timeout_s=240)


def run(job: Job, report_dir: Path) -> Ran:
    out = subprocess.run(job.argv(report_dir), cwd=ROOT, capture_output=True, text=True, timeout=job.timeout_s)
    return Ran(out, report_dir)


def failing_checks(ran: Ran, scenario: str, profile: str) -> dict[str, dict[str, Any]]:
    """The run's failed checks by name, once its exit code, verdict and profile say it failed as a run."""
    out = ran.out
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-2000:]
    (result_path,) = ran.report_dir.glob(f"*-{scenario}/result.json")
    result = json.loads(result_path.read_text())
    assert result["verdict"] == "fail" and result["profile"] == profile
    return {c["name"]: c for c in result["checks"] if not c["passed"]}


def assert_reasons_carry_numbers(failed: dict[str, dict[str, Any]]) -> None:
    for check in failed.values():
        reason = check.get("reason") or check.get("detail") or ""
        assert re.search(r"\d", reason), f"{check['name']} fails without numbers: {reason!r}"
