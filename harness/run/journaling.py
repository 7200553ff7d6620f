"""The run journal's records, written from the run's events: every record a run writes, in one place.

`g7chaos recover` (harness/commands/recover.py) reads these records from a run that died, even by SIGKILL,
so their names and fields are a format: `run-started` says which target and twin to reach again (and whether
the twin was the run's own to stop), the fault records say what was injected and reverted. Faults write
their owed reverts themselves (harness/faults/base.py), straight into the same journal and before they
change anything. Each record is written (and fsynced) as its event fires, before any later step runs.
"""
from __future__ import annotations

from harness.faults import Fault
from harness.journal import Journal
from harness.report.model import RunResult, StopRecord
from harness.run.events import (FaultLanded, FaultPlanned, FaultReverted, Recovered, RecoveryTimedOut, RevertFailed,
                                RunEvents, RunStarted)


class JournalRecords:
    """Listens to a run's events and appends each as the journal record it has always been."""

    def __init__(self, journal: Journal):
        self.journal = journal

    def listen(self, events: RunEvents) -> None:
        write = self.journal.write
        events.run_started.add_listener(self.run_started)
        events.phase_started.add_listener(lambda name: write("phase", phase=name))
        events.window_opened.add_listener(lambda name: write("window", window=name))
        events.watch_error.add_listener(lambda message: write("watch-error", message=message))
        events.stop_alarms_resolved.add_listener(lambda alarms: write("stop-alarms", alarms=alarms))
        events.alarm_watch_error.add_listener(lambda message: write("alarm-watch-error", message=message))
        events.fleet_not_steady.add_listener(lambda detail: write("preflight-not-steady", detail=detail))
        events.fault_planned.add_listener(self.fault_planned)
        events.refused.add_listener(lambda error: write("refused", error=error))
        events.fault_injected.add_listener(self.fault_injected)
        events.fault_landed.add_listener(self.fault_landed)
        events.fault_reverted.add_listener(self.fault_reverted)
        events.revert_failed.add_listener(self.revert_failed)
        events.stop_condition_fired.add_listener(self.stop_condition_fired)
        events.milestone_reached.add_listener(
            lambda m: write("milestone", fault=m.fault, index=m.index, milestone=m.name, after_s=m.after_s,
                            source=m.source))
        events.recovered.add_listener(self.recovered)
        events.recovery_timed_out.add_listener(self.recovery_timed_out)
        events.load_stop_failed.add_listener(lambda error: write("load-stop-failed", error=error))
        events.signal_received.add_listener(lambda name: write("signal", signal=name))
        events.signal_ignored.add_listener(lambda name: write("signal-ignored-during-revert", signal=name))
        events.run_ended.add_listener(self.run_ended)

    def run_started(self, e: RunStarted) -> None:
        twin = e.twin
        self.journal.write("run-started", scenario=e.scenario, target=e.target, profile=e.profile, seed=e.seed,
                           dry_run=e.dry_run, target_spec=e.target_spec,
                           twin_endpoints=str(twin.endpoints) if twin else None,
                           owns_twin=twin.owned if twin else False, twin_pid=twin.pid if twin else None,
                           harness_pid=e.harness_pid)

    def fault_planned(self, e: FaultPlanned) -> None:
        self.journal.write("fault-planned", fault=e.fault.step.fault, plan=e.plan)

    def fault_injected(self, fault: Fault) -> None:
        self.journal.write("fault-injected", fault=fault.name, nodes=[n.describe() for n in fault.nodes])

    def fault_landed(self, e: FaultLanded) -> None:
        self.journal.write("fault-landed" if e.evidence else "fault-not-landed", fault=e.fault.name,
                           evidence=e.evidence)

    def fault_reverted(self, e: FaultReverted) -> None:
        self.journal.write("fault-reverted", fault=e.fault.name, reason=e.reason)

    def revert_failed(self, e: RevertFailed) -> None:
        self.journal.write("revert-failed", fault=e.fault.name, error=e.error, reason=e.reason)

    def stop_condition_fired(self, record: StopRecord) -> None:
        self.journal.write("stop-condition", **record.model_dump(mode="json"))

    def recovered(self, e: Recovered) -> None:
        self.journal.write("recovered", recovered_at=e.recovered_at, after_s=round(e.after_s, 3))

    def recovery_timed_out(self, e: RecoveryTimedOut) -> None:
        self.journal.write("recovery-timeout", limit_s=e.limit_s, detail=e.detail)

    def run_ended(self, result: RunResult) -> None:
        """The last record: nothing is written after the verdict, so the journal is closed here."""
        self.journal.write("run-ended", verdict=result.verdict, exit_code=result.exit_code)
        self.journal.close()
