"""recovery-time: from the end of the fault to steady state again, against a limit.

The fault ends when it has done its damage: when the harness reverted it, or earlier when the fault says
so itself (a spot interruption is over once EC2 reclaimed the instance at the end of its notice: its
`times.notice_end_at`). Steady state is what the runner waits for in its recovery phase (every node Ready
with its GPUs, no fault's cordon left, every inference pod Ready, the SLO holding in the recovery window);
it reports the moment as `Evidence.recovered_at`. That moment cannot be earlier than the recovery phase,
so when the fleet was already whole by then, the watch timeline says when it became whole (the capacity
replay of capacity-restored: GPUs, Ready nodes and Ready replicas back to the pre-fault baseline for good).
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.checks.capacity_restored import capacity_series, fault_window, restored_after, state_at
from harness.faults.base import Fault
from harness.strict.params import CheckParams
from harness.strict.units import Duration


def fault_ended_at(fault: Fault, fallback: float | None) -> float | None:
    """The earlier of the fault's revert and the end of its own notice, else `fallback`."""
    candidates = [t for t in (fault.times.notice_end_at, fault.reverted_at) if t is not None]
    return min(candidates) if candidates else fallback


class RecoveryTimeParams(CheckParams):
    """Time from revert to steady state again is within the limit."""

    within: Duration = Field(300.0, gt=0)


@register
class RecoveryTime(Check):
    name = "recovery-time"
    params_model = RecoveryTimeParams
    params: RecoveryTimeParams

    def evaluate(self, evidence: Evidence):
        limit = evidence.wall(self.params.within)
        injected, landed = fault_window(evidence)
        if injected is None or landed is None:
            return self.result(False, "no fault was injected: nothing to recover from")
        phase_start = getattr(evidence, "recovery_started_at", None)
        ends = [fault_ended_at(f, phase_start) for f in evidence.faults if f.injected_at is not None]
        ends = [t for t in ends if t is not None]
        fault_end = max(ends) if ends else (phase_start or evidence.run_ended)
        series = capacity_series(evidence)
        baseline = state_at(series, injected)
        fleet_at, lowest, dipped = (None, None, False) if baseline is None else restored_after(series, baseline, landed)
        runner_at = getattr(evidence, "recovered_at", None)
        figures: dict[str, Any] = {"limit_s": limit, "fault_ended_at": fault_end, "fleet_restored_at": fleet_at,
                                   "runner_recovered_at": runner_at, "recovery_phase_started_at": phase_start,
                                   "lowest": lowest.__dict__ if lowest else None}
        if phase_start is not None and runner_at is None:
            return self.result(False, f"not steady again within the recovery bound ({limit:.2f} s after the revert); "
                                      f"fleet {'restored' if fleet_at else 'not restored'}"
                                      + (f", lowest {lowest.describe(baseline)}" if lowest and baseline else ""),
                               **figures)
        if fleet_at is None:
            return self.result(False, "the fleet never got back to its pre-fault capacity"
                                      + (f" (lowest {lowest.describe(baseline)})" if lowest and baseline else ""),
                               **figures)
        if runner_at is not None and phase_start is not None and fleet_at > phase_start:
            recovered = runner_at            # still recovering when the phase began: the runner saw the end
        else:
            recovered = fleet_at             # whole before the phase began: the timeline knows when
        took = max(0.0, recovered - fault_end)
        figures["recovery_s"] = took
        if took > limit:
            return self.result(False, f"steady again {took:.2f} s after the fault ended (limit {limit:.2f} s)"
                                      + (f"; lowest {lowest.describe(baseline)}" if lowest and baseline else ""),
                               **figures)
        return self.result(True, f"steady again {took:.2f} s after the fault ended (limit {limit:.2f} s)"
                                 + ("" if dipped else "; capacity never fell short"), **figures)
