"""Matrix cells of the spot-interruption and cold-start scenarios on the profiles that break their prescriptions.

no-kv-offload loses the KV caches of the interrupted node's conversations: spot-interruption must fail on
session-continuity. cold-start-from-s3 loads replacement weights from S3 for minutes: cold-start must fail on
recovery-time and/or capacity-restored. Each fails with numbers, and through no other check.
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
    ("spot-interruption", "no-kv-offload"): ({"session-continuity"}, {"session-continuity"}),
    ("cold-start", "cold-start-from-s3"): ({"recovery-time", "capacity-restored"}, set()),
}
"""(scenario, profile) -> (checks allowed to fail, checks that must be among the failures: at least one
of the allowed ones when empty)."""


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "profile"), list(CELLS))
def test_fails_only_the_checks_its_profile_breaks(scenario: str, profile: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness", "run", str(ROOT / "scenarios" / f"{scenario}.yaml"),
                          "--profile", profile, "--report-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-2000:]
    (result_path,) = tmp_path.glob(f"*-{scenario}/result.json")
    result = json.loads(result_path.read_text())
    assert result["verdict"] == "fail" and result["profile"] == profile
    failed = {c["name"]: c for c in result["checks"] if not c["passed"]}
    allowed, required = CELLS[(scenario, profile)]
    reasons = {n: c.get("reason") for n, c in failed.items()}
    assert failed and set(failed) <= allowed, reasons
    assert required <= set(failed), reasons
    for check in failed.values():
        reason = check.get("reason") or check.get("detail") or ""
        assert re.search(r"\d", reason), f"{check['name']} fails without numbers: {reason!r}"
    if scenario == "spot-interruption":
        assert "re-prefill" in failed["session-continuity"]["reason"]
