"""What happens in a run, as events: the one sink that the journal and the console both listen to.

A phase says once that something happened (`events.fault_injected.fire(fault)`); what is written about it is
the listeners' business: harness/run/journaling.py turns events into the journal's records (what
`g7chaos recover` reads after a crash), harness/report/console.py into live lines, and a dry run's printer
(harness/commands/dryrun.py) into the plan. So the journal and the console cannot drift apart on what
happened or in which order, and no phase has to know who is listening.

In the style of Locust's `Events` (one `EventHook` per kind of event, `add_listener`, `fire`), except that
each hook is typed by the one payload its listeners receive. Listeners run in the order they were added, in
the thread that fires (signal handlers and watch threads fire too), and an exception in one propagates to
the phase that fired: a journal that cannot be written must stop the run, not be skipped.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from harness.faults import Fault, FaultError
    from harness.load.process import LiveFigures
    from harness.report.model import Milestone, RunResult, StopRecord
    from harness.scenario.model import FaultStep
    from harness.session import TwinFacts

E = TypeVar("E")


class EventHook(Generic[E]):
    """The listeners of one kind of event."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[E], None]] = []

    def add_listener(self, listener: Callable[[E], None]) -> Callable[[E], None]:
        self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[[E], None]) -> None:
        self._listeners.remove(listener)

    def fire(self, event: E) -> None:
        for listener in list(self._listeners):
            listener(event)


# ------------------------------------------------------------------------------------------ payloads
@dataclass(frozen=True)
class RunStarted:
    scenario: str
    target: str
    profile: str | None
    seed: int
    dry_run: bool
    target_spec: dict[str, Any]
    twin: TwinFacts | None
    harness_pid: int


@dataclass(frozen=True)
class FaultPlanned:
    fault: Fault          # its `step` and `index` set
    plan: str             # the fault's own one-line description of what it will touch


@dataclass(frozen=True)
class FaultUnresolved:
    """A dry run's fault that could not be planned; a real run stops at the first instead."""

    step: FaultStep
    error: FaultError | None      # None: no implementation of the fault in this version


@dataclass(frozen=True)
class Reach:
    """What the planned faults touch together (harness.target.guardrails.planned_reach)."""

    nodes: int
    gpus: int
    fleet_nodes: int


@dataclass(frozen=True)
class FaultLanded:
    fault: Fault
    evidence: dict[str, Any] | None     # None: it did not land within the limit


@dataclass(frozen=True)
class FaultReverted:
    fault: Fault
    reason: str           # "duration elapsed" or "end of run"


@dataclass(frozen=True)
class RevertFailed:
    fault: Fault
    error: str
    reason: str


@dataclass(frozen=True)
class Recovered:
    recovered_at: float
    after_s: float        # wall seconds after the last revert


@dataclass(frozen=True)
class RecoveryTimedOut:
    limit_s: float        # deployment seconds
    wall_limit_s: float
    detail: str           # what was still wrong at the bound


class RunEvents:
    """Every event of one run. Phases fire; the journal, the console and a dry run's printer listen."""

    def __init__(self) -> None:
        self.run_started: EventHook[RunStarted] = EventHook()
        self.phase_started: EventHook[str] = EventHook()
        self.window_opened: EventHook[str] = EventHook()
        self.watch_error: EventHook[str] = EventHook()               # a cluster watch's message
        self.stop_alarms_resolved: EventHook[dict[str, str]] = EventHook()   # alarm name -> ARN
        self.alarm_watch_error: EventHook[str] = EventHook()
        self.fleet_not_steady: EventHook[str] = EventHook()          # before the run: what was wrong
        self.fault_planned: EventHook[FaultPlanned] = EventHook()
        self.fault_unresolved: EventHook[FaultUnresolved] = EventHook()
        self.reach_planned: EventHook[Reach] = EventHook()
        self.refused: EventHook[str] = EventHook()                   # a guardrail refused the run: why
        self.fault_injecting: EventHook[Fault] = EventHook()
        self.fault_injected: EventHook[Fault] = EventHook()
        self.fault_landed: EventHook[FaultLanded] = EventHook()
        self.fault_reverted: EventHook[FaultReverted] = EventHook()
        self.revert_failed: EventHook[RevertFailed] = EventHook()
        self.load_reported: EventHook[LiveFigures] = EventHook()
        self.milestone_reached: EventHook[Milestone] = EventHook()   # live (harness/run/livemilestones.py)
        self.stop_condition_fired: EventHook[StopRecord] = EventHook()
        self.recovered: EventHook[Recovered] = EventHook()
        self.recovery_timed_out: EventHook[RecoveryTimedOut] = EventHook()
        self.load_stop_failed: EventHook[str] = EventHook()
        self.signal_received: EventHook[str] = EventHook()           # the signal's name; the run ends
        self.signal_ignored: EventHook[str] = EventHook()            # during the reverts, which go on
        self.run_ended: EventHook[RunResult] = EventHook()           # the verdict, before the report is written
        self.report_written: EventHook[RunResult] = EventHook()
