"""`g7chaos run --dry-run`: what a run would do, resolved against the real target, with nothing changed.

Loads and validates the scenarios, opens the target, and runs each scenario's preflight in its dry-run
mode (harness/run/preflight.py: the same alarm resolution, fault plans and blast-radius caps a run passes;
`Fault.plan()` makes read-only calls only: list nodes and pods, describe instances and subnets), printing
the timeline in deployment and wall time, the load and the checks from the preflight's events. No load is
started, no journal is written into the reports folder and no fault's `inject` is ever called, so the
twin's mutation log (or a real cluster's audit log) shows nothing from a dry run.

The target's guardrails apply as to a run (scope, kubeconfig contexts, STS account and region against the
allowlist, stop-condition alarms that exist, and the blast radius of the planned faults against the
scenario's and the target's caps, each an exit 2), except the production confirmation: a plan changes
nothing, so it can be produced in CI for review; the plan says when a real run will need --confirm.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ExitCode, UsageError
from harness.scenario.model import Scenario
from harness.session import SessionOptions, TargetStartError, open_session

if TYPE_CHECKING:
    from harness.run.events import Reach, RunEvents


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


class PlanPrinter:
    """A scenario's plan as text, from the events of the runner's preflight in its dry-run mode.

    Faults are planned in the scenario's order, as a run plans them (so a dry run draws the same random picks),
    and printed in scenario time, their `at` order, before what they reach together."""

    def __init__(self, scenario: Scenario, target: Any, out: Any):
        self.scenario = scenario
        self.target = target
        self.out = out
        self._faults: list[tuple[float, str]] = []    # (at, line) not printed yet

    def listen(self, events: RunEvents) -> None:
        events.fault_planned.add_listener(lambda e: self._fault(e.fault.step, e.plan))
        events.fault_unresolved.add_listener(lambda e: self._fault(e.step, "NOT IMPLEMENTED in this version"
                                                                  if e.error is None else f"CANNOT RESOLVE: {e.error}"))
        events.reach_planned.add_listener(self._reach)

    def header(self) -> None:
        scenario, wall = self.scenario, self.target.wall_seconds
        print(f"scenario {scenario.name} on target {self.target.name} (time scale {self.target.time_scale:g}): "
              f"{_fmt(scenario.duration)} = {wall(scenario.duration):.1f} s wall", file=self.out)
        load = scenario.load
        rate = (f"poisson {load.rate:g}/s, max {load.users} in flight" if load.arrival == "poisson"
                else f"{load.users} users")
        print(f"  load: {rate}, prompt {load.prompt_tokens} / max {load.max_tokens} tokens, "
              f"{load.workers} worker(s), idempotency keys {'on' if load.idempotency_keys else 'off'}", file=self.out)

    def _fault(self, step: Any, text: str) -> None:
        wall = self.target.wall_seconds
        lasting = f", reverted after {_fmt(step.duration)}" if step.duration else ""
        head = f"  at {_fmt(step.at)} ({wall(step.at):.1f} s wall){lasting}: {step.fault}: "
        self._faults.append((step.at, head + text))

    def flush_faults(self) -> None:
        for _, line in sorted(self._faults, key=lambda item: item[0]):
            print(line, file=self.out)
        self._faults.clear()

    def _reach(self, reach: Reach) -> None:
        # printed before the caps are applied: a refusal (exit 2) follows the reach it refuses
        self.flush_faults()
        print(f"  blast radius: {reach.nodes} node(s), {reach.gpus} GPU(s) of a {reach.fleet_nodes}-node fleet",
              file=self.out)

    def footer(self) -> None:
        for step in self.scenario.checks:
            params = step.params.model_dump(mode="json", exclude_defaults=True)
            print(f"  check {step.check}{' ' + str(params) if params else ''}", file=self.out)
        for condition in self.scenario.stop_when:
            print(f"  stop when {condition.text}", file=self.out)


def plan_scenario(scenario: Scenario, target: Any, seed: int, out: Any) -> bool:
    """Print one scenario's plan; False when a fault cannot be resolved on this target."""
    from harness.run.runner import RunOptions, Runner
    printer = PlanPrinter(scenario, target, out)
    printer.header()
    runner = Runner(scenario, target, RunOptions(seed=seed, dry_run=True))
    printer.listen(runner.events)
    try:
        plan = runner.plan()
    finally:
        printer.flush_faults()      # a plan cut short by an error still shows the faults it resolved
    printer.footer()
    return plan.complete


def dry_run(scenarios: list[tuple[Path, Scenario]], target_name: str, options: SessionOptions, *, seed: int) -> int:
    out = sys.stdout
    try:
        with open_session(target_name, options) as session:
            target = session.target
            if target.environment == "production":
                print(f"target {target.name} is production: a real run needs --confirm <context> and an answer "
                      f"at a terminal", file=out)
            results = [plan_scenario(scenario, target, seed, out) for _, scenario in scenarios]
    except TargetStartError as exc:
        print(f"g7chaos: target could not be started: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:   # an unreachable API while resolving: the target, not the input
        if isinstance(exc, UsageError):
            raise
        print(f"g7chaos: dry run could not resolve the plan: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.TARGET_ERROR
    print("dry run: nothing was changed", file=out)
    return ExitCode.PASS if all(results) else ExitCode.TARGET_ERROR
