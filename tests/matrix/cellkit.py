"""What a matrix test runs: one `g7chaos` command (a scenario on a profile's fresh twin, or a whole column),
described up front so that it runs in the background ahead of the test
(tests/ahead.py)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from ahead import Job, Ran

ROOT = Path(__file__).resolve().parents[2]


def scenario_run(scenario: str, profile: str, folder: Path = ROOT / "scenarios", timeout_s: float = 240) -> Job:
    """`g7chaos run <folder>/<scenario>.yaml --profile <profile>` on a twin of its own."""
    return Job(f"{scenario}-on-{profile}",
               lambda report: [sys.executable, "-m", "harness", "run", str(folder / f"{scenario}.yaml"),
                               "--profile", profile, "--report-dir", str(report)],
               timeout_s=timeout_s, cwd=ROOT, rerun_when_degraded=True)


def failing_checks(ran: Ran, scenario: str, profile: str) -> dict[str, dict[str, Any]]:
    """The run's failed checks by name, once its exit code, verdict and profile say it failed as a run."""
    out = ran.out
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-2000:]
    (result_path,) = ran.report_dir.glob(f"*-{scenario}/result.json")
    result = json.loads(result_path.read_text())
    assert result["verdict"] == "fail" and result["profile"] == profile
    return {c["name"]: c for c in result["checks"] if c["status"] == "fail"}


def assert_reasons_carry_numbers(failed: dict[str, dict[str, Any]]) -> None:
    for check in failed.values():
        reason = check.get("reason") or check.get("detail") or ""
        assert re.search(r"\d", reason), f"{check['name']} fails without numbers: {reason!r}"
