"""Matrix cells of az-loss and device-plugin-race on the profiles that break their prescriptions.

A stretched single cluster keeps sending clients into the lost zone past the load balancer's detection time;
a device plugin started before the driver leaves a rebooted node Ready without GPUs. Each fails through the
check of the property its profile breaks, with numbers, and through no other.
"""
from __future__ import annotations

import pytest

from cellkit import Ran, assert_reasons_carry_numbers, failing_checks, scenario_run

CELLS = {
    ("az-loss", "single-multi-az-cluster"): {"traffic-failover", "slo"},
    ("device-plugin-race", "plugin-before-driver"): {"no-silent-capacity-loss"},
}
"""(scenario, profile) -> the checks allowed to fail; at least one of them must."""


def ahead_job(test: str, params: dict):
    return scenario_run(params["scenario"], params["profile"])


@pytest.mark.slow
@pytest.mark.parametrize("scenario,profile", list(CELLS))
def test_cell_fails_only_through_the_broken_property(scenario: str, profile: str, ahead_run: Ran) -> None:
    failed = failing_checks(ahead_run, scenario, profile)
    allowed = CELLS[(scenario, profile)]
    assert failed and set(failed) <= allowed, {n: c.get("reason") for n, c in failed.items()}
    assert_reasons_carry_numbers(failed)
    if scenario == "az-loss":
        assert "traffic-failover" in failed, "the stretched cluster must be caught sending clients into the lost zone"
        assert "us-east-2a" in failed["traffic-failover"]["reason"]
    else:
        reason = failed["no-silent-capacity-loss"]["reason"]
        assert "Ready with fewer GPUs" in reason and "Insufficient nvidia.com/gpu" in reason, reason
