"""The planned faults on the scenario clock: each injected at its `at`, proven landed, and reverted.

A fault is injected when the scenario clock reaches its `at`, in its own load window (`fault:<name>`), and
must then show itself to a detector it trusts within the `fault-landed` limit (at least 5 s wall): a
deployment cannot be credited for surviving a fault it never saw, so a fault that did not land ends the
run (FaultNotLanded). Its landing is awaited in short slices, so the stop conditions are still watched.

Reverts have one path (`_revert`), taken when a fault's `duration` ends while the run goes on and, for
every fault still in place, at the end of the run whatever ends it. A revert that raises stays owed in the
journal and is tried again at the end of the run.
"""
from __future__ import annotations

import time
from typing import Any

from harness.faults import Fault, FaultNotLanded
from harness.run.events import FaultLanded, FaultReverted, RevertFailed, RunEvents
from harness.run.load import RunLoad
from harness.run.watch import Watch
from harness.scenario.model import Scenario


class FaultSchedule:
    def __init__(self, faults: list[Fault], scenario: Scenario, target: Any, events: RunEvents, load: RunLoad,
                 watch: Watch):
        self.faults = faults          # in the scenario's order: reverted in reverse, reported in order
        self.scenario = scenario
        self.target = target
        self.events = events
        self.load = load
        self.watch = watch
        self._due: list[tuple[float, Fault]] = []    # (wall time its duration ends, fault) not yet reverted

    def inject_on_timeline(self, t0: float) -> None:
        """Every fault at its `at` after `t0` (the wall time of the scenario's zero), the due reverts meanwhile."""
        for fault in sorted(self.faults, key=lambda f: f.step.at):
            self.watch.wait_until(t0 + self.target.wall_seconds(fault.step.at), due=self.revert_due)
            self.load.mark_window(f"fault:{fault.name}")
            self.events.fault_injecting.fire(fault)
            fault.injection_started_at = time.time()
            fault.inject()
            fault.injected_at = time.time()
            self.events.fault_injected.fire(fault)
            landed_within = self._landed_limit()
            evidence = self._await_landed(fault, time.time() + landed_within)
            self.events.fault_landed.fire(FaultLanded(fault, evidence))
            fault.landed_evidence = evidence or {}
            if not evidence:
                blind = "; ".join(f"{metric} unobservable on {node}: {why}" for metric, nodes in
                                  fault.unobservable.items() for node, why in nodes.items())
                raise FaultNotLanded(f"{fault.name} did not land within {landed_within:.1f} s (no detector it "
                                     f"trusts showed it{': ' + blind if blind else ''})")
            if fault.step.duration is not None:
                self._due.append((fault.injected_at + self.target.wall_seconds(fault.step.duration), fault))

    def revert_due(self, now: float) -> None:
        """Revert the faults whose `duration` has ended by `now`."""
        for due, fault in list(self._due):
            if now >= due:
                self._revert(fault, "duration elapsed")
                self._due.remove((due, fault))

    def revert_all(self) -> None:
        """Every fault still in place, the last injected first (also one whose earlier revert failed)."""
        for fault in reversed(self.faults):
            if fault.injected_at is None or fault.reverted_at:
                continue
            self._revert(fault, "end of run")

    def _revert(self, fault: Fault, reason: str) -> None:
        """The one revert path, at a fault's duration end and at the end of the run. A revert that raises is
        recorded (the journal keeps it owed) and tried again at the end of the run; if that fails too, the run
        is an error that says to run `g7chaos recover`, never a pass."""
        try:
            fault.revert()
        except Exception as exc:
            fault.revert_error = f"{type(exc).__name__}: {exc}"
            self.events.revert_failed.fire(RevertFailed(fault, fault.revert_error, reason))
            return
        fault.reverted_at = time.time()
        fault.revert_error = None
        self.events.fault_reverted.fire(FaultReverted(fault, reason))

    def _landed_limit(self) -> float:
        """Wall seconds a fault has to show itself: the `fault-landed` check's `within` (default 1 min), >= 5 s."""
        landed = next((step.params for step in self.scenario.checks if step.check == "fault-landed"), None)
        return max(self.target.wall_seconds(landed.within if landed else 60.0), 5.0)

    def _await_landed(self, fault: Fault, deadline: float) -> dict[str, Any] | None:
        """The fault's landing evidence, in slices short enough that stop conditions are still watched."""
        while True:
            evidence = fault.await_landed(min(deadline, time.time() + 0.2))
            if evidence or time.time() >= deadline:
                return evidence
            self.watch.raise_if_interrupted()
            self.watch.check_stops(time.time())
