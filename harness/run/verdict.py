"""Judging a run: the scenario's checks on the evidence gathered, and what the report says about faults and load.

Checks are built when the run is (a check named in the scenario but not implemented in this version fails
with that reason), started at the end of the preflight (some watch from the start: an alarm, the fleet),
stopped whatever ends the run, and evaluated only on a run that went its course. A check that raises fails
with the reason; it never passes by accident. On a run stopped because a fault never landed, only
`fault-landed` is judged (it says which fault and how long it was given): the others would judge a
deployment that never saw the fault.

A pass also needs the evidence it stands on (`missing_evidence`): the load's figures, whole, and a fleet back
to steady state; without them the run is inconclusive, whatever the checks said.
"""
from __future__ import annotations

import time
from typing import Any

from harness.checks import CHECKS, Evidence
from harness.faults import Fault, RunContext
from harness.load.process import LoadResult
from harness.report.model import CheckLimit, CheckResult, FaultRecord, RunMetrics, WindowMetrics
from harness.scenario.model import Scenario


class RunChecks:
    def __init__(self, scenario: Scenario):
        self.checks = [CHECKS[step.check](step.params) for step in scenario.checks if step.check in CHECKS]
        self.unknown = [step.check for step in scenario.checks if step.check not in CHECKS]
        self.started: list[Any] = []     # only these are stopped: a refused preflight starts none
        # the scenario's limits (deployment seconds): the checks' Evidence.limit and the report's milestones
        self.limits = [CheckLimit(check=step.check, faults=step.params.faults, within_s=step.params.within)
                       for step in scenario.checks if getattr(step.params, "within", None) is not None]

    def start(self, ctx: RunContext) -> None:
        for check in self.checks:
            check.start(ctx)
            self.started.append(check)

    def stop(self) -> None:
        for check in self.started:
            check.stop()

    def slo_lines(self) -> tuple[float, float]:
        """The TTFT and TBT p99 limits of the scenario's first `slo` check, in ms (the article's without one):
        the lines the report draws and the bar a request must meet to count as goodput."""
        slo = next((c for c in self.checks if c.name == "slo"), None)
        params = slo.params if slo is not None else CHECKS["slo"].params_model()
        return params.ttft_p99 * 1000.0, params.tbt_p99 * 1000.0

    def marks(self) -> list[Any]:
        return [mark for check in self.started for mark in check.marks()]

    def judge(self, evidence: Evidence, *, not_landed: bool) -> list[CheckResult]:
        results: list[CheckResult] = []
        for check in self.checks:
            if not_landed and check.name != "fault-landed":
                continue
            started = time.time()
            try:
                result = check.evaluate(evidence)
            except Exception as exc:
                result = CheckResult(name=check.name, passed=False, reason=f"check failed to run: {exc}")
            result.duration_s = round(time.time() - started, 3)
            results.append(result)
        for name in [] if not_landed else self.unknown:
            results.append(CheckResult(name=name, passed=False, reason=f"check {name!r} is not implemented"))
        return results


def fault_records(faults: list[Fault]) -> list[FaultRecord]:
    """Each planned fault as the report shows it: where, when injected, landed and reverted, or why not."""
    return [FaultRecord(name=f.name, params=f.params.model_dump(mode="json"),
                        target=", ".join(n.describe() for n in f.nodes), injected_at=f.injected_at,
                        injection_started_at=f.injection_started_at,
                        landed=None if f.injected_at is None else f.landed_at is not None,
                        landed_at=f.landed_at, landed_evidence=f.landed_evidence,
                        reverted_at=f.reverted_at, revert_error=f.revert_error, index=f.index,
                        nodes=[n.name for n in f.nodes], lost_at=f.times.lost_at, notice_at=f.times.notice_at,
                        notice_end_at=f.times.notice_end_at)
            for f in faults]


def run_metrics(load_result: LoadResult | None,
                window_times: dict[str, tuple[float, float]] | None = None) -> RunMetrics:
    """The load's figures over the whole run and per window (empty when the load left no result), each window
    with the wall times it opened and closed (`RunLoad.windows`), which the report's steady-state goodput needs."""
    if load_result is None:
        return RunMetrics()
    whole, times = load_result.whole, window_times or {}

    def window(figures: Any) -> WindowMetrics:
        opened, closed = times.get(figures.window, (None, None))
        return WindowMetrics.model_validate({**figures.model_dump(), "started_at": opened, "ended_at": closed})

    return RunMetrics(requests=whole.requests, errors=whole.errors, ttft_p50_ms=whole.ttft_p50_ms,
                      ttft_p99_ms=whole.ttft_p99_ms, tbt_p50_ms=whole.tbt_p50_ms, tbt_p99_ms=whole.tbt_p99_ms,
                      windows=[window(w) for w in load_result.windows], load_clocks=load_result.clocks)


def missing_evidence(load_result: LoadResult | None, *, ran: bool, load_stop_error: str | None,
                     recovery_detail: str | None, recovery_wall_limit_s: float) -> list[str]:
    """What a pass needs that this run did not gather: the load's figures, whole, and a fleet steady at the end.

    Only for a run that went the whole way (`ran`): an abort or an error has its own verdict already."""
    if not ran:
        return []
    missing = []
    if load_result is None:
        why = load_stop_error or "the load process left no result"
        missing.append(f"no load evidence ({why}): no check could judge the run")
    elif not load_result.complete:
        missing.append("load evidence incomplete: " + "; ".join(load_result.problems))
    if recovery_detail is not None:
        missing.append(f"the fleet was not back to steady state within {recovery_wall_limit_s:.1f} s after the "
                       f"revert: {recovery_detail}")
    return missing
