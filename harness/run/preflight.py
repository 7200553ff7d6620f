"""The preflight: everything a run resolves and validates before its first injection, and the dry run.

In order: the Kubernetes API of every context answers; the `alarm:` stop conditions name alarms that exist
(their ARNs also go into FIS templates; a missing one is refused, exit 2, since it could never fire); the
fleet is watched and given time to settle; each fault plans what it will touch through read-only calls; the
planned faults together stay within the scenario's and the target's blast-radius caps (exit 2 otherwise);
the stop alarms are read a first time; the checks that watch from the start start.

A dry run (`dry_run=True`) is the same phase with the steps that would prepare a run left out (no API probe,
no fleet watch, no alarm watch, no checks): only the resolution and validation a plan needs, with reads
only, and it stops there. Where a run stops at the first fault it cannot resolve, a dry run reports it
(`fault_unresolved`) and plans the others, so the whole plan can be reviewed at once; it also reports what
the planned faults reach (`reach_planned`) before the caps are applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from harness.alarmwatch import MissingAlarms, alarm_names, resolve_alarms
from harness.faults import FAULTS, Fault, FaultError, RunContext
from harness.run.events import FaultPlanned, FaultUnresolved, Reach, RunEvents
from harness.run.outcomes import TargetUnreachable
from harness.run.steady import Steadiness
from harness.run.stops import StopConditions
from harness.run.verdict import RunChecks
from harness.scenario.model import FaultStep, Scenario
from harness.target.guardrails import GuardrailError, check_planned_blast_radius, planned_reach


@dataclass
class Plan:
    """The faults the preflight planned, in the scenario's order, and (dry run only) the steps it could not.

    Filled as each fault is planned, so a run refused part-way (a blast radius past the caps) still reports
    the faults it had planned, none of them injected."""

    faults: list[Fault] = field(default_factory=list)
    unresolved: list[FaultStep] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unresolved


class Preflight:
    def __init__(self, scenario: Scenario, target: Any, ctx: RunContext, events: RunEvents, plan: Plan, *,
                 dry_run: bool):
        self.scenario = scenario
        self.target = target
        self.ctx = ctx
        self.events = events
        self.plan = plan
        self.dry_run = dry_run

    def run(self, steadiness: Steadiness | None = None, stops: StopConditions | None = None,
            checks: RunChecks | None = None) -> None:
        """The phase; a run passes what it prepares (the fleet, stop alarms, checks), a dry run nothing."""
        prepare = not self.dry_run
        if prepare:
            self._reach_apis()
        self._resolve_alarms()
        if prepare:
            assert steadiness is not None
            steadiness.watch_fleet()
            steadiness.baseline()
        self._plan_faults()
        self._check_blast_radius(self.plan.faults)
        if prepare:
            assert stops is not None and checks is not None
            stops.watch_alarms()
            checks.start(self.ctx)

    def _reach_apis(self) -> None:
        for context in self.target.contexts:
            try:
                client.VersionApi(self.target.kube(context)).get_code()
            except Exception as exc:
                raise TargetUnreachable(f"Kubernetes API of context {context!r} unreachable: {exc}") from exc

    def _resolve_alarms(self) -> None:
        """The `alarm:` stop conditions' ARNs (for FIS templates too); an alarm that does not exist could never
        fire, so naming one is refused before anything is planned."""
        names = alarm_names(self.scenario.stop_when)
        if not names:
            return
        try:
            self.ctx.alarm_arns = resolve_alarms(self.target.aws("cloudwatch"), names)
        except MissingAlarms as exc:
            raise GuardrailError(f"refused before touching anything: {exc}") from None
        except Exception as exc:
            raise TargetUnreachable(f"CloudWatch did not answer describe_alarms: {exc}") from exc
        self.events.stop_alarms_resolved.fire(self.ctx.alarm_arns)

    def _plan_faults(self) -> None:
        """Each fault's plan, in the scenario's order (the order a run draws its random picks in)."""
        for position, step in enumerate(self.scenario.faults):
            fault_cls = FAULTS.get(step.fault)
            if fault_cls is None:
                self._unresolved(step, None)
                continue
            fault = fault_cls(step.params, self.ctx)
            fault.step = step
            fault.index = position
            try:
                description = fault.plan()
            except FaultError as exc:
                self._unresolved(step, exc)
                continue
            self.events.fault_planned.fire(FaultPlanned(fault, description))
            self.plan.faults.append(fault)

    def _unresolved(self, step: FaultStep, error: FaultError | None) -> None:
        """A run stops at a fault it cannot plan (exit 4); a dry run notes it and goes on with the others."""
        if not self.dry_run:
            raise error or FaultError(f"fault {step.fault!r} is not implemented in this version")
        self.events.fault_unresolved.fire(FaultUnresolved(step, error))
        self.plan.unresolved.append(step)

    def _check_blast_radius(self, faults: list[Fault]) -> None:
        reach = None
        if self.dry_run:       # a plan shows what it reaches even when that is within the caps
            reach = planned_reach(self.target, faults)
            self.events.reach_planned.fire(Reach(*reach[:3]))
        check_planned_blast_radius(self.target, self.scenario.blast_radius, faults, reach)
