"""Matrix cells of the ECC double-bit-error scenario on the profiles that break its prescriptions.

Each profile must fail through the checks of the property it breaks, with numbers, and through no other.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ECC = ROOT / "scenarios" / "ecc-double-bit-error.yaml"

CELLS = {
    "no-dbe-remediation": {"node-drained", "no-corrupted-responses"},
    "no-dbe-alarm": {"alarm-fired"},
}


@pytest.mark.slow
@pytest.mark.parametrize("profile", list(CELLS))
def test_ecc_fails_only_the_checks_its_profile_breaks(profile: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness", "run", str(ECC), "--profile", profile,
                          "--report-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-2000:]
    (result_path,) = tmp_path.glob("*-ecc-double-bit-error/result.json")
    result = json.loads(result_path.read_text())
    assert result["verdict"] == "fail" and result["profile"] == profile
    failed = {c["name"]: c for c in result["checks"] if not c["passed"]}
    assert set(failed) == CELLS[profile], {n: c.get("reason") for n, c in failed.items()}
    if profile == "no-dbe-remediation":    # how long, how many: a failed drain and corrupted answers carry numbers
        for check in failed.values():
            reason = check.get("reason") or check.get("detail") or ""
            assert re.search(r"\d", reason), f"{check['name']} fails without numbers: {reason!r}"
        corrupted = failed["no-corrupted-responses"]["reason"]
        assert "corrupted" in corrupted and "faulty node" in corrupted, corrupted   # how many, and from where
