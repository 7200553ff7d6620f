"""Steady state: the deployment as the run found it, before the faults and again after them.

Steady means the fleet as harness/fleetstate.py judges it (every node Ready with all of its GPUs allocatable
and none cordoned by the run, every inference pod Ready; cordons that predate the run are not the run's to
judge) and, after the faults, the scenario's SLO holding again on enough answers. The fleet is read from the cluster watches'
timeline: every wait wakes on a watch event, and on the load's reports, never on a bare sleep.

- `establish`: the load runs until the first fault's `at` (at least MIN_STEADY_WALL_S) and must then be
  answering within the steady-state error rate, else the deployment was broken before the run touched it;
- `recover`: after the last revert, the fleet and the SLO must hold again within the recovery bound (the
  `recovery-time` check's limit, else DEFAULT_RECOVERY_S); a run that does not get there is inconclusive.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.observe import ClusterObserver, Timeline
from harness.fleetstate import FleetState, parse_label_selector, summarise
from harness.run.events import Recovered, RecoveryTimedOut, RunEvents
from harness.run.load import RunLoad
from harness.run.outcomes import TargetUnreachable
from harness.run.watch import Watch
from harness.scenario.model import Scenario

MIN_STEADY_WALL_S = 4.0       # enough wall time for canary answers and a steady histogram
MIN_RECOVERY_WALL_S = 1.0
MIN_RECOVERY_REQUESTS = 10    # the recovery window's SLO is judged only on enough answers
DEFAULT_RECOVERY_S = 300.0    # deployment time allowed to reach steady state again without a recovery-time check
LOAD_SLACK_S = 120.0          # the load outlives the run's planned end by this much; the run stops it


def recovery_limit_s(scenario: Scenario) -> float:
    """Deployment seconds allowed to reach steady state: the recovery-time check's limit, else a default."""
    limit = next((step.params.within for step in scenario.checks if step.check == "recovery-time"), None)
    return float(limit if limit is not None else DEFAULT_RECOVERY_S)


@dataclass
class Recovery:
    """How the deployment came back after the faults, as the checks and the verdict read it."""

    started_at: float | None = None     # wall time of the last revert (the recovery phase's start)
    recovered_at: float | None = None   # wall time steady state held again; None: not within the bound
    detail: str | None = None           # what was still wrong at the bound


class Steadiness:
    def __init__(self, scenario: Scenario, target: Any, timeline: Timeline, events: RunEvents, load: RunLoad,
                 watch: Watch):
        self.scenario = scenario
        self.target = target
        self.timeline = timeline
        self.events = events
        self.load = load
        self.watch = watch
        self.fleet = FleetState()
        self.cordoned_before: set[tuple[str, str]] = set()   # cordons that predate the run are not ours to judge
        self.observers: list[ClusterObserver] = []

    def watch_fleet(self) -> None:
        """Watch every context's nodes and inference pods into the timeline; TargetUnreachable if one cannot be
        listed within 15 s. What is cordoned now is the fleet as the run found it."""
        namespaces = [self.target.spec.selectors.inference.namespace]
        for context in self.target.contexts:
            observer = ClusterObserver(context, self.target.kube(context), self.timeline, namespaces,
                                       on_error=self.events.watch_error.fire)
            observer.start()
            self.observers.append(observer)
        deadline = time.time() + 15
        for observer in self.observers:
            if not observer.ready.wait(timeout=max(0.0, deadline - time.time())):
                raise TargetUnreachable(f"could not list and watch context {observer.context!r}")
        self.fleet.fold(self.timeline.observations)
        self.cordoned_before = self.fleet.cordoned()

    def baseline(self) -> None:
        """Wait (up to the recovery bound) for the fleet to settle before anything is planned; a fleet that does
        not is reported, not refused: the recovery phase judges against what the run found."""
        steady_at, detail = self.await_steady(time.time() + self.target.wall_seconds(recovery_limit_s(self.scenario)),
                                              slo=False)
        if steady_at is None:
            self.events.fleet_not_steady.fire(detail)

    def establish(self, *, seed: int, out_dir: Path) -> float:
        """Start the load and hold it until the first fault; returns the wall time of the scenario clock's zero,
        set so the first fault lands at its `at` from now."""
        first_at = min(step.at for step in self.scenario.faults)
        total_wall = self.target.wall_seconds(self.scenario.duration)
        self.load.start(self.target, self.scenario.load, seed=seed,
                        duration_s=total_wall + MIN_STEADY_WALL_S + LOAD_SLACK_S, out_dir=out_dir)
        self.load.mark_window("steady")
        started = time.time()
        steady_wall = max(self.target.wall_seconds(first_at), MIN_STEADY_WALL_S)
        self.watch.wait_until(started + steady_wall, allow_stop=False)
        live = self.load.figures()
        limit = self.scenario.steady_state
        if live.requests == 0:
            raise TargetUnreachable(f"no inference request completed in {steady_wall:.1f} s at "
                                    f"{self.target.inference_url}")
        if live.error_rate > limit.error_rate:
            raise TargetUnreachable(f"not in steady state before the faults: error rate {100 * live.error_rate:.2f}% "
                                    f"> {100 * limit.error_rate:g}%")
        return time.time() - self.target.wall_seconds(first_at)

    def recover(self, started_at: float) -> Recovery:
        """Steady state again: the fleet as the run found it and the SLO holding, within the recovery bound."""
        limit_s = recovery_limit_s(self.scenario)
        started = time.time()
        recovered_at, detail = self.await_steady(started + self.target.wall_seconds(limit_s), slo=True,
                                                 min_until=started + MIN_RECOVERY_WALL_S)
        if recovered_at is not None:
            self.events.recovered.fire(Recovered(recovered_at, recovered_at - started_at))
            return Recovery(started_at=started_at, recovered_at=recovered_at)
        self.events.recovery_timed_out.fire(RecoveryTimedOut(limit_s, self.target.wall_seconds(limit_s), detail))
        return Recovery(started_at=started_at, detail=detail)

    def await_steady(self, deadline: float, *, slo: bool, min_until: float = 0.0) -> tuple[float | None, str]:
        """Wake on every timeline change (and the load's reports) until the fleet is steady or the deadline passes.

        Returns (when it first held, "steady") or (None, what was still wrong at the deadline)."""
        selectors = self.target.spec.selectors.inference
        labels = parse_label_selector(selectors.label_selector)
        steady = self.scenario.steady_state
        # When it first held: the fleet since its last problem, the SLO since its last breach. The wait itself
        # lasts longer (enough answers to judge the SLO, and a minimum), but that is not the fleet's doing.
        fleet_since: float | None = None
        slo_since = time.time()
        while True:
            now = time.time()
            self.watch.raise_if_interrupted()
            self.fleet.fold(self.timeline.observations)
            problems = self.fleet.problems(pod_namespace=selectors.namespace, pod_labels=labels,
                                           ignore_cordoned=self.cordoned_before)
            fleet_since = None if problems else (fleet_since or now)
            if slo and self.load.process is not None:
                live = self.load.checked_figures()
                if live.window != "recovery" or live.requests < MIN_RECOVERY_REQUESTS:
                    problems.append(f"{live.requests if live.window == 'recovery' else 0} answers in recovery "
                                    f"(< {MIN_RECOVERY_REQUESTS})")
                else:
                    before = len(problems)
                    if live.error_rate > steady.error_rate:
                        problems.append(f"error rate {100 * live.error_rate:.2f}% > {100 * steady.error_rate:g}%")
                    if (live.ttft_p99_ms or 0) > steady.ttft_p99 * 1000:
                        problems.append(f"TTFT p99 {live.ttft_p99_ms:.0f} ms > {steady.ttft_p99 * 1000:g} ms")
                    if (live.tbt_p99_ms or 0) > steady.tbt_p99 * 1000:
                        problems.append(f"TBT p99 {live.tbt_p99_ms:.1f} ms > {steady.tbt_p99 * 1000:g} ms")
                    if len(problems) > before:
                        slo_since = now
            if not problems and now >= min_until:
                return max(fleet_since or now, slo_since), "steady"
            if now >= deadline:
                return None, summarise(problems)
            with self.timeline.changed:   # a watch event completes the wait early; the load reports every 200 ms
                self.timeline.changed.wait(timeout=max(0.0, min(0.2, deadline - now)))

    def stop(self) -> None:
        for observer in self.observers:
            observer.stop()
