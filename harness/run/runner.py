"""One scenario against one target, as a list of phases:

preflight -> steady state -> faults on the timeline -> observe -> revert -> recovery -> verdict -> report.

This module only puts the phases in order and turns how the run ended into its verdict; each phase is its
own module: harness/run/preflight.py (and the dry run), steady.py (steady state before and after the
faults), schedule.py (the faults on the scenario clock and their one revert path), watch.py and stops.py
(every wait, with the stop conditions judged), load.py (the load and its windows), verdict.py (the checks).
What happens is fired as events (events.py); the journal (journaling.py) and the console listen.

Every phase waits on deadlines and on what the watches and the load report, never on bare sleeps; every
step is written to the journal as it happens; faults are reverted whatever ends the run (pass, failure,
exception, stop condition, Ctrl-C, SIGTERM), and a second Ctrl-C does not skip the reverts.
"""
from __future__ import annotations

import os
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.checks import Evidence
from harness.faults import Fault, FaultError, FaultNotLanded, RunContext
from harness.journal import Journal
from harness.load.process import LoadProcess, LoadResult
from harness.observe import Timeline
from harness.report.console import ConsoleView
from harness.report.history import record_run
from harness.report.marks import CLUSTER_JSONL, write_marks
from harness.report.model import RunResult, StopRecord
from harness.report.writers import run_dir, with_timeline, write_run
from harness.run.clustermarks import fault_marks, stop_marks
from harness.run.events import RunEvents, RunStarted
from harness.run.journaling import JournalRecords
from harness.run.livemilestones import LiveMilestones
from harness.run.load import RunLoad
from harness.run.outcomes import Aborted, TargetUnreachable
from harness.run.preflight import Plan, Preflight
from harness.run.schedule import FaultSchedule
from harness.run.signals import Interrupted, interrupts_end_the_run, shielded
from harness.run.steady import Recovery, Steadiness, recovery_limit_s
from harness.run.onconsole import show_on_console
from harness.run.stops import StopConditions
from harness.run.verdict import RunChecks, fault_records, missing_evidence, run_metrics
from harness.run.watch import Watch
from harness.scenario.model import Scenario
from harness.session import Session, TwinFacts
from harness.target.guardrails import GuardrailError


@dataclass
class RunOptions:
    profile: str | None = None
    seed: int = 1
    report_root: Path = Path("reports")
    dry_run: bool = False               # plan only (Runner.plan): nothing is written, started or injected
    console: ConsoleView | None = None
    twin: TwinFacts | None = None       # the twin the run is on: recover finds (and, if owned, stops) it again
    scenario_file: Path | None = None   # the file the scenario came from: the history records its git commit


class Runner:
    def __init__(self, scenario: Scenario, target: Any, options: RunOptions):
        self.scenario = scenario
        self.target = target
        self.options = options
        self.started = time.time()
        if options.dry_run:       # a dry run leaves nothing in the reports folder; faults still need a journal
            self._scratch = tempfile.TemporaryDirectory(prefix="g7chaos-dryrun-")
            self.dir = Path(self._scratch.name)
        else:
            self.dir = run_dir(options.report_root, scenario.name, datetime.fromtimestamp(self.started, timezone.utc))
        self.journal = Journal(self.dir / "journal.jsonl")
        self.events = RunEvents()
        if not options.dry_run:   # a dry run prints its plan only (harness/commands/dryrun.py listens)
            JournalRecords(self.journal).listen(self.events)     # first: a record is on disk before it is shown
            show_on_console(options.console or ConsoleView(), self.events)
        self.timeline = Timeline()
        self.ctx = RunContext(target=target, journal=self.journal, timeline=self.timeline,
                              rng=random.Random(options.seed), dry_run=options.dry_run,
                              stop_when=list(scenario.stop_when))
        self.interrupted = threading.Event()
        self.run_load = RunLoad(self.events)
        self.stops = StopConditions(scenario.stop_when, target, self.events)
        self.watch = Watch(self.run_load, self.stops, self.interrupted)
        self.steadiness = Steadiness(scenario, target, self.timeline, self.events, self.run_load, self.watch)
        self.checks = RunChecks(scenario)
        self.planned = Plan()
        self.faults: list[Fault] = self.planned.faults     # planned by the preflight, in the scenario's order
        self.schedule = FaultSchedule(self.faults, scenario, target, self.events, self.run_load, self.watch)
        self.t0 = 0.0                 # wall time of the scenario clock's zero, set by the steady-state phase
        ttft_line, tbt_line = self.checks.slo_lines()
        self.live = LiveMilestones(self.events, self.timeline, self.faults, scenario=scenario.name,
                                   time_scale=target.time_scale, slo_ttft_ms=ttft_line, slo_tbt_ms=tbt_line,
                                   limits=self.checks.limits)
        if not options.dry_run:
            self.live.listen()
        self.recovery = Recovery()

    @property
    def load(self) -> LoadProcess | None:
        """The load process, once the steady-state phase has started it."""
        return self.run_load.process

    # ---------------------------------------------------------------------------------------- modes
    def run(self) -> RunResult:
        if self.options.dry_run:
            raise ValueError("a dry run plans (Runner.plan); it does not run")
        self.events.run_started.fire(RunStarted(
            scenario=self.scenario.name, target=self.target.name, profile=self.options.profile,
            seed=self.options.seed, dry_run=self.options.dry_run, target_spec=self.target.spec.model_dump(mode="json"),
            twin=self.options.twin, harness_pid=os.getpid()))
        error: str | None = None
        stop: StopRecord | None = None
        aborted = unreachable = refused = not_landed = False
        load_result = None
        with interrupts_end_the_run(self.interrupted):
            try:
                self.preflight()
                self.steady_state()
                self.faults_on_timeline()
                self.recovery_phase()
            except GuardrailError as exc:   # refused before any injection: invalid input, exit 2
                refused, error = True, str(exc)
                self.events.refused.fire(error)
            except Aborted as exc:
                aborted, stop, error = True, exc.stop, str(exc)
            except KeyboardInterrupt as exc:    # Interrupted from our handler, or a caller's (a run off the main thread)
                aborted, error = True, "interrupted"
                if isinstance(exc, Interrupted):
                    self.events.signal_received.fire(exc.signal_name)
            except FaultNotLanded as exc:      # the deployment hid the fault from every detector it has
                not_landed, error = True, str(exc)
            except (TargetUnreachable, FaultError) as exc:
                unreachable, error = True, str(exc)
            except Exception as exc:  # an unexpected harness failure is an error, never a pass
                unreachable, error = True, f"{type(exc).__name__}: {exc}"
            finally:
                with shielded() as shield:
                    self.schedule.revert_all()
                    load_result = self.run_load.stop()
                    self.stops.stop()
                    self.checks.stop()
                    self.steadiness.stop()
                for name in shield.ignored:
                    self.events.signal_ignored.fire(name)
        return self.verdict(load_result, error=error, stop=stop, aborted=aborted, unreachable=unreachable,
                            refused=refused, not_landed=not_landed)

    def plan(self) -> Plan:
        """The dry run: the preflight in its dry-run mode, then stop. Nothing is injected, started or written
        (the faults' journal is a scratch file, removed here); listeners of `events` see the plan as it forms."""
        if not self.options.dry_run:
            raise ValueError("Runner.plan needs RunOptions(dry_run=True): a run's journal is kept")
        try:
            Preflight(self.scenario, self.target, self.ctx, self.events, self.planned, dry_run=True).run()
        finally:
            self.journal.close()
            self._scratch.cleanup()
        return self.planned

    # ---------------------------------------------------------------------------------------- phases
    def preflight(self) -> None:
        self.events.phase_started.fire("preflight")
        Preflight(self.scenario, self.target, self.ctx, self.events, self.planned, dry_run=False).run(
            self.steadiness, self.stops, self.checks)

    def steady_state(self) -> None:
        self.events.phase_started.fire("steady state")
        self.t0 = self.steadiness.establish(seed=self.options.seed, out_dir=self.dir / "load")

    def faults_on_timeline(self) -> None:
        self.events.phase_started.fire("faults")
        self.schedule.inject_on_timeline(self.t0)
        self.events.phase_started.fire("observe")
        self.watch.wait_until(self.t0 + self.target.wall_seconds(self.scenario.duration), due=self.schedule.revert_due)

    def recovery_phase(self) -> None:
        """Steady state again after the last revert: the fleet as the run found it and the SLO holding."""
        self.schedule.revert_all()
        self.events.phase_started.fire("recovery")
        self.run_load.mark_window("recovery")
        self.recovery = self.steadiness.recover(max([time.time()] + [f.reverted_at for f in self.faults
                                                                     if f.reverted_at]))

    # ---------------------------------------------------------------------------------------- verdict
    def verdict(self, load_result: LoadResult | None, *, error: str | None, stop: StopRecord | None, aborted: bool,
                unreachable: bool, refused: bool = False, not_landed: bool = False) -> RunResult:
        """The checks on a run that went its course (only `fault-landed` when a fault never landed), the
        report written, and the verdict shown."""
        self.events.phase_started.fire("verdict")
        ran = not (unreachable or aborted or refused)
        checks = []
        if load_result is not None and ran:
            evidence = Evidence(target=self.target, timeline=self.timeline, faults=self.faults,
                                load=load_result, run_started=self.started, run_ended=time.time(),
                                windows=self.run_load.windows(), recovered_at=self.recovery.recovered_at,
                                recovery_started_at=self.recovery.started_at, limits=self.checks.limits)
            checks = self.checks.judge(evidence, not_landed=not_landed)
        ttft_line, tbt_line = self.checks.slo_lines()
        result = RunResult.build(
            time_scale=self.target.time_scale, slo_ttft_ms=ttft_line, slo_tbt_ms=tbt_line,
            limits=self.checks.limits,
            missing_evidence=missing_evidence(
                load_result, ran=ran, load_stop_error=self.run_load.stop_error,
                recovery_detail=self.recovery.detail,
                recovery_wall_limit_s=self.target.wall_seconds(recovery_limit_s(self.scenario))),
            scenario=self.scenario.name, description=self.scenario.description, target=self.target.name,
            profile=self.options.profile, seed=self.options.seed, started_at=self.started, ended_at=time.time(),
            checks=checks, faults=fault_records(self.faults), stop_condition=stop, error=error, aborted=aborted,
            unreachable=unreachable, invalid_input=refused, metrics=run_metrics(load_result, self.run_load.windows()),
            measurement_degraded=bool(load_result and load_result.degraded),
            measurement_degraded_reason=load_result.degraded_reason if load_result else None,
            report_dir=str(self.dir),
            scenario_file=str(self.options.scenario_file) if self.options.scenario_file else None)
        write_marks(self.dir / CLUSTER_JSONL, [*self.live.cluster_marks(), *fault_marks(self.faults),
                                               *self.checks.marks(), *stop_marks(stop)])
        records = load_result.records_path if load_result else None
        result, timeline = with_timeline(result, self.dir, records)     # milestones and score, never raises
        self.events.run_ended.fire(result)
        write_run(result, self.dir, records=records, timeline=timeline)
        record_run(self.options.report_root, result)   # never raises: the history cannot change a verdict
        self.events.report_written.fire(result)
        return result


def run_scenarios(session: Session, scenarios: list[tuple[Path, Scenario]], *, seed: int, report_dir: Path,
                  console: ConsoleView | None = None) -> list[RunResult]:
    """Each scenario in turn on the session's target, one report each; an aborted run ends the sequence (a stop
    condition or an interrupt means the deployment, or the person, said stop)."""
    console = console or ConsoleView()
    results: list[RunResult] = []
    for path, scenario in scenarios:
        options = RunOptions(profile=session.profile, seed=seed, report_root=report_dir, console=console,
                             twin=session.twin, scenario_file=path)
        result = Runner(scenario, session.target, options).run()
        results.append(result)
        if result.verdict == "aborted":
            break
    return results
