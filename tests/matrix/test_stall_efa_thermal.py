"""Matrix cells of retry-storm and efa-saturation on the profiles that break their prescriptions.

A gateway without an idempotency ledger lets a hung replica finish a request its client already retried
(the server completes more requests than clients receive); a tensor-parallel pair outside a placement
group cannot keep the TBT SLO under competing EFA traffic; without EFA monitoring nothing alarms. Each
fails through the check of the property its profile breaks, with numbers, and through no other.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CELLS = {
    ("retry-storm", "no-idempotency"): {"idempotent-retries"},
    ("efa-saturation", "no-placement-group"): {"slo"},
    ("efa-saturation", "no-efa-monitoring"): {"alarm-fired"},
}
"""(scenario, profile) -> the checks allowed to fail; at least one of them must."""


@pytest.mark.slow
@pytest.mark.parametrize("scenario,profile", list(CELLS))
def test_stall_efa_cell_fails_only_through_the_broken_property(scenario: str, profile: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness", "run", str(ROOT / "scenarios" / f"{scenario}.yaml"),
                          "--profile", profile, "--report-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-2000:]
    (result_path,) = tmp_path.glob(f"*-{scenario}/result.json")
    result = json.loads(result_path.read_text())
    assert result["verdict"] == "fail" and result["profile"] == profile
    failed = {c["name"]: c for c in result["checks"] if not c["passed"]}
    allowed = CELLS[(scenario, profile)]
    assert failed and set(failed) <= allowed, {n: c.get("reason") for n, c in failed.items()}
    for check in failed.values():
        reason = check.get("reason") or check.get("detail") or ""
        assert re.search(r"\d", reason), f"{check['name']} fails without numbers: {reason!r}"
    if scenario == "retry-storm":
        server = failed["idempotent-retries"]["evidence"]["server"]
        assert server["server_completed"] > server["client_delivered"], server
