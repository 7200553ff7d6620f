"""One scenario against one target, as a list of phases:

preflight -> steady state -> faults on the timeline -> observe -> revert -> recovery -> verdict -> report.

Every phase waits on deadlines and on what the watches and the load report, never on bare sleeps; every
step is written to the journal as it happens; faults are reverted whatever ends the run (pass, failure,
exception, stop condition, Ctrl-C, SIGTERM), and a second Ctrl-C does not skip the reverts.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from kubernetes import client

from harness.alarmwatch import AlarmWatch, MissingAlarms, alarm_names, resolve_alarms
from harness.checks import CHECKS, Evidence
from harness.faults import FAULTS, Fault, FaultError, FaultNotLanded, RunContext
from harness.journal import Journal
from harness.load.process import LoadProcess
from harness.load.spec import LoadSpec
from harness.observe import ClusterObserver, Timeline
from harness.recovery import FleetState, parse_label_selector, summarise
from harness.report.console import ConsoleView
from harness.report.model import (CheckResult, FaultRecord, RunMetrics, RunResult, StopCondition as StopRecord,
                                  WindowMetrics)
from harness.report.writers import run_dir, write_run
from harness.scenario.loadspec import load_spec_fields
from harness.scenario.model import Scenario
from harness.session import Session, TwinFacts
from harness.target.guardrails import GuardrailError, check_planned_blast_radius

MIN_STEADY_WALL_S = 4.0       # enough wall time for canary answers and a steady histogram
MIN_RECOVERY_WALL_S = 1.0
MIN_RECOVERY_REQUESTS = 10    # the recovery window's SLO is judged only on enough answers
DEFAULT_RECOVERY_S = 300.0    # deployment time allowed to reach steady state again without a recovery-time check
REPLAY_HEADERS = ["idempotent-replayed"]


class Aborted(Exception):
    def __init__(self, why: str, stop: StopRecord | None = None):
        super().__init__(why)
        self.stop = stop


class TargetUnreachable(Exception):
    pass


@dataclass
class RunOptions:
    profile: str | None = None
    seed: int = 1
    report_root: Path = Path("reports")
    dry_run: bool = False
    console: ConsoleView | None = None
    twin: TwinFacts | None = None       # the twin the run is on: recover finds (and, if owned, stops) it from the journal


@dataclass
class _State:
    faults: list[Fault] = field(default_factory=list)
    windows: dict[str, list[float]] = field(default_factory=dict)


class Runner:
    def __init__(self, scenario: Scenario, target: Any, options: RunOptions):
        self.scenario = scenario
        self.target = target
        self.options = options
        self.started = time.time()
        self.dir = run_dir(options.report_root, scenario.name, datetime.fromtimestamp(self.started, timezone.utc))
        self.journal = Journal(Path(self.dir) / "journal.jsonl")
        self.timeline = Timeline()
        self.rng = random.Random(options.seed)
        self.ctx = RunContext(target=target, journal=self.journal, timeline=self.timeline, rng=self.rng,
                              dry_run=options.dry_run, stop_when=list(scenario.stop_when))
        self.console = options.console or ConsoleView()
        self.state = _State()
        self.observers: list[ClusterObserver] = []
        self.load: LoadProcess | None = None
        self.alarms: AlarmWatch | None = None
        self.breach_since: dict[str, float] = {}   # stop condition -> when its breach was first seen (whole run)
        self.checks = [CHECKS[step.check](step.params) for step in scenario.checks if step.check in CHECKS]
        self.started_checks: list[Any] = []     # only these are stopped: a refused preflight starts none
        self.unknown_checks = [step.check for step in scenario.checks if step.check not in CHECKS]
        self.interrupted = threading.Event()
        self.fleet = FleetState()
        self.cordoned_before: set[tuple[str, str]] = set()   # cordons that predate the run are not ours to judge
        self.recovery_started: float | None = None
        self.recovered_at: float | None = None
        self.recovery_detail: str | None = None
        self.load_stop_error: str | None = None
        self.window_times: dict[str, list[float]] = {}

    # ---------------------------------------------------------------------------------------- phases
    def run(self) -> RunResult:
        twin = self.options.twin
        self.journal.write("run-started", scenario=self.scenario.name, target=self.target.name,
                           profile=self.options.profile, seed=self.options.seed, dry_run=self.options.dry_run,
                           target_spec=self.target.spec.model_dump(mode="json"),
                           twin_endpoints=str(twin.endpoints) if twin else None, owns_twin=twin.owned if twin else False,
                           twin_pid=twin.pid if twin else None, harness_pid=os.getpid())
        error: str | None = None
        stop: StopRecord | None = None
        aborted = unreachable = refused = not_landed = False
        load_result = None
        with self._signals():
            try:
                self.preflight()
                self.steady_state()
                self.faults_on_timeline()
                self.recovery()
            except GuardrailError as exc:   # refused before any injection: invalid input, exit 2
                refused, error = True, str(exc)
                self.journal.write("refused", error=error)
            except Aborted as exc:
                aborted, stop, error = True, exc.stop, str(exc)
            except KeyboardInterrupt:
                aborted, error = True, "interrupted"
            except FaultNotLanded as exc:      # the deployment hid the fault from every detector it has
                not_landed, error = True, str(exc)
            except (TargetUnreachable, FaultError) as exc:
                unreachable, error = True, str(exc)
            except Exception as exc:  # an unexpected harness failure is an error, never a pass
                unreachable, error = True, f"{type(exc).__name__}: {exc}"
            finally:
                with self._shielded():
                    self.revert_all()
                    load_result = self._stop_load()
                    if self.alarms is not None:
                        self.alarms.stop()
                    for check in self.started_checks:
                        check.stop()
                    for observer in self.observers:
                        observer.stop()
        return self.verdict(load_result, error=error, stop=stop, aborted=aborted, unreachable=unreachable,
                            refused=refused, not_landed=not_landed)

    def preflight(self) -> None:
        self.phase("preflight")
        for context in self.target.contexts:
            try:
                client.VersionApi(self.target.kube(context)).get_code()
            except Exception as exc:
                raise TargetUnreachable(f"Kubernetes API of context {context!r} unreachable: {exc}") from exc
        self._resolve_alarms()
        namespaces = [self.target.spec.selectors.inference.namespace]
        for context in self.target.contexts:
            observer = ClusterObserver(context, self.target.kube(context), self.timeline, namespaces,
                                       on_error=lambda m: self.journal.write("watch-error", message=m))
            observer.start()
            self.observers.append(observer)
        deadline = time.time() + 15
        for observer in self.observers:
            if not observer.ready.wait(timeout=max(0.0, deadline - time.time())):
                raise TargetUnreachable(f"could not list and watch context {observer.context!r}")
        self.fleet.fold(self.timeline.observations)
        self.cordoned_before = self.fleet.cordoned()
        steady_at, detail = self._await_steady(time.time() + self.target.wall_seconds(self._recovery_limit()),
                                               slo=False)
        if steady_at is None:
            self.journal.write("preflight-not-steady", detail=detail)
            self.console.event(f"fleet not steady before the run: {detail}")
        for position, step in enumerate(self.scenario.faults):
            fault = FAULTS[step.fault](step.params, self.ctx)
            fault.step = step
            fault.index = position
            plan = fault.plan()
            self.journal.write("fault-planned", fault=step.fault, plan=plan)
            self.console.event(f"plan: {step.fault}: {plan}")
            self.state.faults.append(fault)
        check_planned_blast_radius(self.target, self.scenario.blast_radius, self.state.faults)
        self._watch_alarms()
        for check in self.checks:
            check.start(self.ctx)
            self.started_checks.append(check)

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
        self.journal.write("stop-alarms", alarms=self.ctx.alarm_arns)

    def _watch_alarms(self) -> None:
        names = alarm_names(self.scenario.stop_when)
        if not names:
            return
        self.alarms = AlarmWatch(self.target.aws("cloudwatch"), names,
                                 on_error=lambda m: self.journal.write("alarm-watch-error", message=m))
        self.alarms.start()
        if not self.alarms.wait_first(15.0):
            raise TargetUnreachable(f"could not read the state of stop-condition alarm(s) {', '.join(names)}")

    def steady_state(self) -> None:
        self.phase("steady state")
        first_at = min(step.at for step in self.scenario.faults)
        total_wall = self.target.wall_seconds(self.scenario.duration)
        spec = LoadSpec.model_validate({
            **load_spec_fields(self.scenario.load, seed=self.options.seed,
                               duration_s=total_wall + MIN_STEADY_WALL_S + 120),
            "temperature": 0.0})
        self.load = LoadProcess()
        self.load.start(self.target.inference_url, spec, Path(self.dir) / "load",
                        served_by_headers=list(self.target.served_by_headers) + REPLAY_HEADERS, first_window="warmup")
        self.load.wait_started(timeout_s=60)
        self._window("steady")
        self.t0 = time.time()
        steady_wall = max(self.target.wall_seconds(first_at), MIN_STEADY_WALL_S)
        self._wait_until(self.t0 + steady_wall, allow_stop=False)
        live = self.load.live()
        limit = self.scenario.steady_state
        if live.requests == 0:
            raise TargetUnreachable(f"no inference request completed in {steady_wall:.1f} s at "
                                    f"{self.target.inference_url}")
        if live.error_rate > limit.error_rate:
            raise TargetUnreachable(f"not in steady state before the faults: error rate {100 * live.error_rate:.2f}% "
                                    f"> {100 * limit.error_rate:g}%")
        self.t0 = time.time() - self.target.wall_seconds(first_at)   # the scenario clock: faults at their `at`

    def faults_on_timeline(self) -> None:
        self.phase("faults")
        pending = sorted(self.state.faults, key=lambda f: f.step.at)
        reverts: list[tuple[float, Fault]] = []
        for fault in pending:
            self._wait_until(self.t0 + self.target.wall_seconds(fault.step.at), reverts=reverts)
            self._window(f"fault:{fault.name}")
            self.console.event(f"inject {fault.name}")
            fault.inject()
            fault.injected_at = time.time()
            self.journal.write("fault-injected", fault=fault.name, nodes=[n.describe() for n in fault.nodes])
            landed_within = self._landed_limit()
            evidence = self._await_landed(fault, time.time() + landed_within)
            self.journal.write("fault-landed" if evidence else "fault-not-landed", fault=fault.name, evidence=evidence)
            fault.landed_evidence = evidence or {}
            if not evidence:
                blind = "; ".join(f"{metric} unobservable on {node}: {why}" for metric, nodes in
                                  (fault.extra.get("unobservable") or {}).items() for node, why in nodes.items())
                raise FaultNotLanded(f"{fault.name} did not land within {landed_within:.1f} s (no detector it "
                                     f"trusts showed it{': ' + blind if blind else ''})")
            if fault.step.duration is not None:
                reverts.append((fault.injected_at + self.target.wall_seconds(fault.step.duration), fault))
        self.phase("observe")
        self._wait_until(self.t0 + self.target.wall_seconds(self.scenario.duration), reverts=reverts)

    def recovery(self) -> None:
        """Steady state again: the fleet as the run found it and the SLO holding, within a bound."""
        self.revert_all()
        self.phase("recovery")
        self._window("recovery")
        self.recovery_started = max([time.time()] + [f.reverted_at for f in self.state.faults
                                                     if getattr(f, "reverted_at", None)])
        limit_s = self._recovery_limit()
        started = time.time()
        self.recovered_at, detail = self._await_steady(started + self.target.wall_seconds(limit_s), slo=True,
                                                       min_until=started + MIN_RECOVERY_WALL_S)
        if self.recovered_at is not None:
            self.journal.write("recovered", recovered_at=self.recovered_at,
                               after_s=round(self.recovered_at - self.recovery_started, 3))
            self.console.event(f"steady again {self.recovered_at - self.recovery_started:.2f} s after the revert")
        else:
            self.recovery_detail = detail
            self.journal.write("recovery-timeout", limit_s=limit_s, detail=detail)
            self.console.event(f"not steady {self.target.wall_seconds(limit_s):.1f} s after the revert: {detail}")

    def _recovery_limit(self) -> float:
        """Deployment seconds allowed to reach steady state: the recovery-time check's limit, else a default."""
        limit = next((step.params.within for step in self.scenario.checks if step.check == "recovery-time"), None)
        return float(limit if limit is not None else DEFAULT_RECOVERY_S)

    def _await_steady(self, deadline: float, *, slo: bool, min_until: float = 0.0) -> tuple[float | None, str]:
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
            if self.interrupted.is_set():
                raise KeyboardInterrupt
            self.fleet.fold(self.timeline.observations)
            problems = self.fleet.problems(pod_namespace=selectors.namespace, pod_labels=labels,
                                           ignore_cordoned=self.cordoned_before)
            fleet_since = None if problems else (fleet_since or now)
            if slo and self.load is not None:
                live = self.load.live()
                self.console.load(live)
                if not self.load.alive():
                    raise TargetUnreachable("the load process died")
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

    def revert_all(self) -> None:
        for fault in reversed(self.state.faults):
            if fault.injected_at is None or getattr(fault, "reverted_at", None):
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
            self.journal.write("revert-failed", fault=fault.name, error=fault.revert_error, reason=reason)
            return
        fault.reverted_at = time.time()
        fault.revert_error = None
        self.journal.write("fault-reverted", fault=fault.name, reason=reason)

    def _load_died(self) -> str:
        """Which load process died and how: its figures from then on are lost, so the run cannot be judged."""
        assert self.load is not None
        dead = [f"{name} (pid {proc.pid}) exited with {proc.returncode}"
                for name, proc in zip(self.load.names, self.load.procs) if proc.poll() is not None]
        return (f"a load process died mid-run: {'; '.join(dead) or 'unknown'}; the load it carried and its "
                f"figures are missing, so the run cannot be judged")

    # ---------------------------------------------------------------------------------------- verdict
    def verdict(self, load_result: Any, *, error: str | None, stop: StopRecord | None, aborted: bool,
                unreachable: bool, refused: bool = False, not_landed: bool = False) -> RunResult:
        """Every check on a run that went its course. On a run stopped because a fault never landed, only
        `fault-landed` is judged (it says which fault and how long it was given); the others would judge a
        deployment that never saw the fault. The verdict is an error either way."""
        self.phase("verdict")
        checks: list[CheckResult] = []
        if load_result is not None and not unreachable and not aborted and not refused:
            evidence = Evidence(target=self.target, timeline=self.timeline, faults=self.state.faults,
                                load=load_result, run_started=self.started, run_ended=time.time(),
                                windows=self._windows(), recovered_at=self.recovered_at,
                                recovery_started_at=self.recovery_started,
                                limits=[(step.check, step.params.faults, step.params.within)
                                        for step in self.scenario.checks
                                        if getattr(step.params, "within", None) is not None])
            for check in self.checks:
                if not_landed and check.name != "fault-landed":
                    continue
                started = time.time()
                try:
                    result = check.evaluate(evidence)
                except Exception as exc:
                    result = CheckResult(name=check.name, passed=False, reason=f"check failed to run: {exc}")
                result.duration_s = round(time.time() - started, 3)
                checks.append(result)
            for name in [] if not_landed else self.unknown_checks:
                checks.append(CheckResult(name=name, passed=False, reason=f"check {name!r} is not implemented"))
        faults = [FaultRecord(name=f.name, params=f.params.model_dump(mode="json"),
                              target=", ".join(n.describe() for n in f.nodes), injected_at=f.injected_at,
                              landed=None if f.injected_at is None else f.landed_at is not None,
                              landed_at=f.landed_at, landed_evidence=getattr(f, "landed_evidence", {}) or {},
                              reverted_at=getattr(f, "reverted_at", None), revert_error=getattr(f, "revert_error", None))
                  for f in self.state.faults]
        metrics = RunMetrics()
        if load_result is not None:
            whole = load_result.whole
            metrics = RunMetrics(requests=whole.requests, errors=whole.errors, ttft_p50_ms=whole.ttft_p50_ms,
                                 ttft_p99_ms=whole.ttft_p99_ms, tbt_p50_ms=whole.tbt_p50_ms,
                                 tbt_p99_ms=whole.tbt_p99_ms,
                                 windows=[WindowMetrics.model_validate(w.model_dump()) for w in load_result.windows])
        result = RunResult.build(
            missing_evidence=self._missing_evidence(load_result, ran=not (unreachable or aborted or refused)),
            scenario=self.scenario.name, description=self.scenario.description, target=self.target.name,
            profile=self.options.profile, seed=self.options.seed, started_at=self.started, ended_at=time.time(),
            checks=checks, faults=faults, stop_condition=stop, error=error, aborted=aborted,
            unreachable=unreachable, invalid_input=refused, metrics=metrics,
            measurement_degraded=bool(load_result and load_result.degraded),
            measurement_degraded_reason=load_result.degraded_reason if load_result else None,
            report_dir=str(self.dir))
        self.journal.write("run-ended", verdict=result.verdict, exit_code=result.exit_code)
        self.journal.close()
        write_run(result, Path(self.dir), records=load_result.records_path if load_result else None)
        self.console.final(result)
        return result

    def _missing_evidence(self, load_result: Any, *, ran: bool) -> list[str]:
        """What a pass needs that this run did not gather: the load's figures, whole, and a fleet steady at the end.

        Only for a run that went the whole way: an abort or an error has its own verdict already."""
        if not ran:
            return []
        missing = []
        if load_result is None:
            why = self.load_stop_error or "the load process left no result"
            missing.append(f"no load evidence ({why}): no check could judge the run")
        elif not load_result.complete:
            missing.append("load evidence incomplete: " + "; ".join(load_result.problems))
        if self.recovery_detail is not None:
            missing.append(f"the fleet was not back to steady state within "
                           f"{self.target.wall_seconds(self._recovery_limit()):.1f} s after the revert: "
                           f"{self.recovery_detail}")
        return missing

    # ---------------------------------------------------------------------------------------- helpers
    def phase(self, name: str) -> None:
        self.journal.write("phase", phase=name)
        self.console.phase(name)

    def _window(self, name: str) -> None:
        now = time.time()
        if self.load is not None:
            self.load.mark_window(name)
        for times in self.window_times.values():
            if len(times) == 1:
                times.append(now)
        self.window_times[name] = [now]
        self.journal.write("window", window=name)

    def _windows(self) -> dict[str, tuple[float, float]]:
        end = time.time()
        return {name: (times[0], times[1] if len(times) > 1 else end) for name, times in self.window_times.items()}

    def _landed_limit(self) -> float:
        landed = next((step.params for step in self.scenario.checks if step.check == "fault-landed"), None)
        return max(self.target.wall_seconds(landed.within if landed else 60.0), 5.0)

    def _await_landed(self, fault: Fault, deadline: float) -> dict[str, Any] | None:
        """The fault's landing evidence, in slices short enough that stop conditions are still watched."""
        while True:
            evidence = fault.await_landed(min(deadline, time.time() + 0.2))
            if evidence or time.time() >= deadline:
                return evidence
            if self.interrupted.is_set():
                raise KeyboardInterrupt
            self._check_stops(time.time())

    def _check_stops(self, now: float) -> None:
        if self.load is not None:
            self._check_stop_conditions(self.load.live(), self.breach_since, now)
        self._check_alarm_conditions(now)

    def _wait_until(self, deadline: float, reverts: list | None = None, allow_stop: bool = True) -> None:
        """Wait for the scenario clock while watching stop conditions, due reverts and the load's health."""
        breach_since = self.breach_since
        tick = threading.Event()
        while True:
            now = time.time()
            if self.interrupted.is_set():
                raise KeyboardInterrupt
            for due, fault in list(reverts or []):
                if now >= due:
                    self._revert(fault, "duration elapsed")
                    reverts.remove((due, fault))
            if self.load is not None:
                live = self.load.live()
                self.console.load(live)
                if not self.load.alive():
                    raise TargetUnreachable(self._load_died())
                if allow_stop:
                    self._check_stop_conditions(live, breach_since, now)
            if allow_stop:
                self._check_alarm_conditions(now)
            if now >= deadline:
                return
            tick.wait(min(0.1, deadline - now))

    def _check_stop_conditions(self, live: Any, breach_since: dict[str, float], now: float) -> None:
        values = {"error_rate": live.error_rate, "ttft_p99": (live.ttft_p99_ms or 0) / 1000,
                  "tbt_p99": (live.tbt_p99_ms or 0) / 1000}
        for condition in self.scenario.stop_when:
            if condition.metric not in values:
                continue
            observed = values[condition.metric]
            if condition.breached(observed) and live.requests >= 20:
                since = breach_since.setdefault(condition.text, now)
                if now - since >= self.target.wall_seconds(condition.for_s):
                    record = StopRecord(condition=condition.text, observed=observed, threshold=condition.threshold,
                                        held_for_s=now - since, fired_at=now,
                                        reason=f"{condition.metric} {observed:.4g} breached '{condition.text}' "
                                               f"for {now - since:.2f} s")
                    self.journal.write("stop-condition", **record.model_dump(mode="json"))
                    raise Aborted(record.reason, record)
            else:
                breach_since.pop(condition.text, None)

    def _check_alarm_conditions(self, now: float) -> None:
        """`alarm:<name>` stop conditions, from the alarm watch's latest reading (no call made here).

        The `for` window counts from when the harness first read the alarm in ALARM; the report also gives
        CloudWatch's own state-change time, so how long the abort took is on record from both clocks."""
        if self.alarms is None:
            return
        states = self.alarms.states()
        for condition in self.scenario.stop_when:
            if condition.metric != "alarm":
                continue
            alarm = states.get(condition.alarm or "")
            if alarm is None or alarm.state != "ALARM":
                continue
            held = now - alarm.seen_at
            if held < self.target.wall_seconds(condition.for_s):
                continue
            changed = (datetime.fromtimestamp(alarm.updated_at, timezone.utc).isoformat(timespec="milliseconds")
                       if alarm.updated_at is not None else "?")
            record = StopRecord(condition=condition.text, observed=None, threshold=None, held_for_s=held,
                                fired_at=now, alarm=alarm.name, alarm_arn=alarm.arn, state=alarm.state,
                                state_updated_at=alarm.updated_at, state_reason=alarm.reason,
                                reason=f"alarm {alarm.name} in ALARM (since {changed}, seen {held:.2f} s ago) fired "
                                       f"'{condition.text}': {alarm.reason}"[:1000])
            self.journal.write("stop-condition", **record.model_dump(mode="json"))
            raise Aborted(record.reason, record)

    def _stop_load(self) -> Any:
        if self.load is None:
            return None
        try:
            return self.load.stop(timeout_s=20)
        except Exception as exc:
            self.load_stop_error = f"{type(exc).__name__}: {exc}"
            self.journal.write("load-stop-failed", error=self.load_stop_error)
            return None

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM end the run through the same path: revert, report, exit 3."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupt(signum, frame):
            self.journal.write("signal", signal=signal.Signals(signum).name)
            self.interrupted.set()
            raise KeyboardInterrupt

        previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextmanager
    def _shielded(self) -> Iterator[None]:
        """Reverts run to the end: further Ctrl-C / SIGTERM are recorded, not obeyed."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def note(signum, frame):
            self.journal.write("signal-ignored-during-revert", signal=signal.Signals(signum).name)

        previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def run_scenarios(session: Session, scenarios: list[tuple[Path, Scenario]], *, seed: int, report_dir: Path,
                  console: ConsoleView | None = None) -> list[RunResult]:
    """Each scenario in turn on the session's target, one report each; an aborted run ends the sequence (a stop
    condition or an interrupt means the deployment, or the person, said stop)."""
    console = console or ConsoleView()
    results: list[RunResult] = []
    for _, scenario in scenarios:
        options = RunOptions(profile=session.profile, seed=seed, report_root=report_dir, console=console,
                             twin=session.twin)
        result = Runner(scenario, session.target, options).run()
        results.append(result)
        if result.verdict == "aborted":
            break
    return results
