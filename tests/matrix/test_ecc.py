"""Matrix cells of the ECC double-bit-error scenario on the profiles that break its prescriptions.

Each profile must fail through the checks of the property it breaks, with numbers, and through no other.
"""
from __future__ import annotations

import pytest

from cellkit import Ran, assert_reasons_carry_numbers, failing_checks, scenario_run
from jobs import pytest_chaos_ecc

SCENARIO = "ecc-double-bit-error"
CELLS = {
    "no-dbe-remediation": {"node-drained", "node-replaced", "no-corrupted-responses"},
    "no-dbe-alarm": {"alarm-fired"},
}


def ahead_job(test: str, params: dict):
    if params["profile"] == "no-dbe-remediation":     # the run tests/spine/test_spine_runs.py reads through pytest
        return pytest_chaos_ecc("no-dbe-remediation")
    return scenario_run(SCENARIO, params["profile"])


@pytest.mark.slow
@pytest.mark.parametrize("profile", list(CELLS))
def test_ecc_fails_only_the_checks_its_profile_breaks(profile: str, ahead_run: Ran) -> None:
    failed = failing_checks(ahead_run, SCENARIO, profile)
    assert set(failed) == CELLS[profile], {n: c.get("reason") for n, c in failed.items()}
    if profile == "no-dbe-remediation":    # how long, how many: a failed drain and corrupted answers carry numbers
        assert_reasons_carry_numbers(failed)
        corrupted = failed["no-corrupted-responses"]["reason"]
        assert "corrupted" in corrupted and "faulty node" in corrupted, corrupted   # how many, and from where
