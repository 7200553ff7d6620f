"""`g7chaos run --dry-run`: what a run would do, resolved against the real target, with nothing changed.

Loads and validates the scenarios, resolves the target, and asks each fault for its plan (`Fault.plan()`
makes read-only calls only: list nodes and pods, describe instances and subnets), then prints the
timeline in deployment and wall time, the load and the checks. No load is started, no journal is written
into the reports folder and no fault's `inject` is ever called, so the twin's mutation log (or a real
cluster's audit log) shows nothing from a dry run.

The target's guardrails apply as to a run (scope, kubeconfig contexts, STS account and region against the
allowlist, stop-condition alarms that exist, and the blast radius of the planned faults against the
scenario's and the target's caps, each an exit 2), except the production confirmation: a plan changes
nothing, so it can be produced in CI for review; the plan says when a real run will need --confirm.
"""
from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.scenario.model import Scenario
from harness.session import SessionOptions, TargetStartError, open_session


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def plan_scenario(scenario: Scenario, target: Any, seed: int, out: Any) -> bool:
    """Print one scenario's plan; False when a fault cannot be resolved on this target."""
    from harness.alarmwatch import MissingAlarms, alarm_names, resolve_alarms
    from harness.faults import FAULTS, FaultError, RunContext
    from harness.journal import Journal
    from harness.observe import Timeline
    from harness.target.guardrails import GuardrailError, check_planned_blast_radius, planned_reach

    wall = target.wall_seconds
    print(f"scenario {scenario.name} on target {target.name} (time scale {target.time_scale:g}): "
          f"{_fmt(scenario.duration)} = {wall(scenario.duration):.1f} s wall", file=out)
    load = scenario.load
    rate = f"poisson {load.rate:g}/s, max {load.users} in flight" if load.arrival == "poisson" else f"{load.users} users"
    print(f"  load: {rate}, prompt {load.prompt_tokens} / max {load.max_tokens} tokens, "
          f"{load.workers} worker(s), idempotency keys {'on' if load.idempotency_keys else 'off'}", file=out)
    ok = True
    with tempfile.TemporaryDirectory(prefix="g7chaos-dryrun-") as scratch:
        journal = Journal(Path(scratch) / "journal.jsonl")   # plan() takes a context; nothing is registered
        ctx = RunContext(target=target, journal=journal, timeline=Timeline(), rng=random.Random(seed), dry_run=True,
                         stop_when=list(scenario.stop_when))
        planned = []
        try:
            names = alarm_names(scenario.stop_when)
            if names:
                try:
                    ctx.alarm_arns = resolve_alarms(target.aws("cloudwatch"), names)
                except MissingAlarms as exc:
                    raise GuardrailError(f"refused before touching anything: {exc}") from None
            for step in sorted(scenario.faults, key=lambda s: s.at):
                lasting = f", reverted after {_fmt(step.duration)}" if step.duration else ""
                head = f"  at {_fmt(step.at)} ({wall(step.at):.1f} s wall){lasting}: {step.fault}: "
                fault_cls = FAULTS.get(step.fault)
                if fault_cls is None:
                    print(head + "NOT IMPLEMENTED in this version", file=out)
                    ok = False
                    continue
                fault = fault_cls(step.params, ctx)
                fault.step = step
                try:
                    print(head + fault.plan(), file=out)
                    planned.append(fault)
                except FaultError as exc:
                    print(head + f"CANNOT RESOLVE: {exc}", file=out)
                    ok = False
            # the same blast-radius guardrail a run passes before its first injection: a breach is exit 2
            nodes, gpus, fleet, _ = planned_reach(target, planned)
            print(f"  blast radius: {nodes} node(s), {gpus} GPU(s) of a {fleet}-node fleet", file=out)
            check_planned_blast_radius(target, scenario.blast_radius, planned)
        finally:
            journal.close()
    for step in scenario.checks:
        params = step.params.model_dump(mode="json", exclude_defaults=True)
        print(f"  check {step.check}{' ' + str(params) if params else ''}", file=out)
    for condition in scenario.stop_when:
        print(f"  stop when {condition.text}", file=out)
    return ok


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
        return 4
    except Exception as exc:   # an unreachable API while resolving: the target, not the input
        from harness.cli import UsageError
        if isinstance(exc, UsageError):
            raise
        print(f"g7chaos: dry run could not resolve the plan: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 4
    print("dry run: nothing was changed", file=out)
    return 0 if all(results) else 4
