"""Matrix cells of retry-storm, efa-saturation and gpu-thermal-throttle on the profiles that break their
prescriptions.

A gateway without an idempotency ledger lets a hung replica finish a request its client already retried
(the server completes more requests than clients receive); a tensor-parallel pair outside a placement
group cannot keep the TBT SLO under competing EFA traffic; without EFA monitoring, or without the GPU
temperature alarm, nothing alarms. Each
fails through the check of the property its profile breaks, with numbers, and through no other.
"""
from __future__ import annotations

import pytest

from cellkit import Ran, assert_reasons_carry_numbers, failing_checks, scenario_run

CELLS = {
    ("retry-storm", "no-idempotency"): {"idempotent-retries"},
    ("efa-saturation", "no-placement-group"): {"slo"},
    ("efa-saturation", "no-efa-monitoring"): {"alarm-fired"},
    ("gpu-thermal-throttle", "no-gpu-temp-alarm"): {"alarm-fired"},
}
"""(scenario, profile) -> the checks allowed to fail; at least one of them must."""


def ahead_job(test: str, params: dict):
    return scenario_run(params["scenario"], params["profile"])


@pytest.mark.slow
@pytest.mark.parametrize("scenario,profile", list(CELLS))
def test_stall_efa_cell_fails_only_through_the_broken_property(scenario: str, profile: str, ahead_run: Ran) -> None:
    failed = failing_checks(ahead_run, scenario, profile)
    allowed = CELLS[(scenario, profile)]
    assert failed and set(failed) <= allowed, {n: c.get("reason") for n, c in failed.items()}
    assert_reasons_carry_numbers(failed)
    if scenario == "retry-storm":
        server = failed["idempotent-retries"]["evidence"]["server"]
        assert server["server_completed"] > server["client_delivered"], server
