"""A run's events shown on the console: the console is a view (harness/report/console.py) and knows no run;
the run wires its events to it here, as harness/run/journaling.py wires them to the journal."""
from __future__ import annotations

from harness.report.console import ConsoleView
from harness.run.events import RunEvents
from harness.run.livemilestones import describe


def show_on_console(console: ConsoleView, events: RunEvents) -> None:
    """Show a run as it happens: its phases, load figures and the steps worth a line, then the verdict once
    the report is written. The run's events are the one source; the journal listens to the same ones."""
    events.phase_started.add_listener(console.phase)
    events.load_reported.add_listener(console.load)
    events.fleet_not_steady.add_listener(lambda detail: console.event(f"fleet not steady before the run: {detail}"))
    events.fault_planned.add_listener(lambda e: console.event(f"plan: {e.fault.step.fault}: {e.plan}"))
    events.fault_injecting.add_listener(lambda fault: console.event(f"inject {fault.name}"))
    events.milestone_reached.add_listener(lambda m: console.event(describe(m)))
    events.recovered.add_listener(lambda e: console.event(f"steady again {e.after_s:.2f} s after the revert"))
    events.recovery_timed_out.add_listener(
        lambda e: console.event(f"not steady {e.wall_limit_s:.1f} s after the revert: {e.detail}"))
    events.report_written.add_listener(console.final)
