"""Matrix cells of az-loss and device-plugin-race on the profiles that break their prescriptions.

A stretched single cluster keeps sending clients into the lost zone past the load balancer's detection time;
a device plugin started before the driver leaves a rebooted node Ready without GPUs. Each fails through the
check of the property its profile breaks, with numbers, and through no other.
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
    ("az-loss", "single-multi-az-cluster"): {"traffic-failover", "slo"},
    ("device-plugin-race", "plugin-before-driver"): {"no-silent-capacity-loss"},
}
"""(scenario, profile) -> the checks allowed to fail; at least one of them must."""


@pytest.mark.slow
@pytest.mark.parametrize("scenario,profile", list(CELLS))
def test_cell_fails_only_through_the_broken_property(scenario: str, profile: str, tmp_path: Path) -> None:
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
    if scenario == "az-loss":
        assert "traffic-failover" in failed, "the stretched cluster must be caught sending clients into the lost zone"
        assert "us-east-2a" in failed["traffic-failover"]["reason"]
    else:
        reason = failed["no-silent-capacity-loss"]["reason"]
        assert "Ready with fewer GPUs" in reason and "Insufficient nvidia.com/gpu" in reason, reason
