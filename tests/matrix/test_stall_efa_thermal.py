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
HIDDEN = ("gpu-thermal-throttle", "embedded-dcgm-exporter")     # the one detector never sees the fault


def ahead_job(test: str, params: dict):
    if "scenario" not in params:
        return scenario_run(*HIDDEN)
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




@pytest.mark.slow
def test_a_thermal_fault_the_exporter_cannot_show_fails_fault_landed_and_judges_nothing_else(ahead_run: Ran) -> None:
    """The exporter reads its own hostengine: the injected temperature never reaches its one detector. The run
    is an error through `fault-landed` alone, naming why; no other check judges a deployment that never saw the
    fault, and the matrix counts the cell as the harness telling, not as a broken run."""
    from harness.report.matrix import MatrixCell
    from harness.report.model import RunResult

    out = ahead_run.out
    assert out.returncode == 4, out.stdout[-3000:] + out.stderr[-2000:]
    (path,) = ahead_run.report_dir.glob(f"*-{HIDDEN[0]}/result.json")
    run = RunResult.model_validate_json(path.read_text())
    assert run.verdict == "error" and run.profile == HIDDEN[1]
    assert [c.name for c in run.checks] == ["fault-landed"] and run.checks[0].status == "fail"
    assert "not landed: gpu-thermal-throttle" in run.checks[0].reason
    assert "embedded hostengine" in (run.error or ""), run.error
    assert all(f.injected_at is not None and f.reverted_at is not None for f in run.faults)
    cell = MatrixCell.of(run)
    assert cell.fault_hidden and cell.label() == "error: fault-landed"
