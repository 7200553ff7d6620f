"""What a run produced: the models the runner fills and every report is written from.

These models are the boundary between the runner and its readers (result.json, junit.xml, report.html, the
console, the verdict matrix, `pytest -m chaos`). Field names follow docs/CONTRACTS.md section 4, which is contract:
CI gates parse result.json, so fields are only ever added, never renamed.

The verdict and exit code are computed in one place, `verdict_and_exit_code`, so every entry point (CLI,
pytest plugin, game day) answers the same question the same way. The rule that matters most: a fault that
was not injected, or whose landing was not proven, is an *error*, never a pass: a chaos test whose chaos did
not happen proves nothing.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from harness.errors import ExitCode

Verdict = Literal["pass", "fail", "aborted", "error", "inconclusive"]

VERDICT_OF_EXIT_CODE: dict[int, Verdict] = {0: "pass", 1: "fail", 2: "error", 3: "aborted", 4: "error",
                                            5: "inconclusive"}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Model(BaseModel):
    # Unknown fields are kept, not rejected: a newer runner may add fields an older reader still round-trips.
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_computed(cls, data: Any) -> Any:
        """Reading a result.json back: derived fields (detail, duration_s...) are recomputed, not stored."""
        if isinstance(data, dict):
            computed = cls.model_computed_fields
            if any(key in computed for key in data):
                data = {k: v for k, v in data.items() if k not in computed}
        return data


CheckStatus = Literal["pass", "fail", "not-applicable", "inconclusive"]


class FaultJudgement(_Model):
    """A check's judgement of one fault of the scenario, by that fault's own rules.

    `index` is the fault's position in the scenario's `faults:` list, so two faults of one kind stay apart.
    "not-applicable": the check has no rule for this kind of fault (session continuity after a double-bit
    error, whose KV cache cannot be trusted anyway), or the scenario scoped the check away from it."""

    fault: str
    index: int
    status: CheckStatus
    reason: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)


class CheckResult(_Model):
    """One check's outcome. `reason` is a single line with the numbers ("cordoned after 41.2 s, limit 120 s").

    `status` is the outcome; `passed` is True exactly when it is "pass". A check none of whose faults it has a
    rule for is "not-applicable": it neither passes nor fails the run. A check whose minimum evidence was not
    gathered (no canary answered after the fault, no retried key) is "inconclusive": never a pass, and the run
    is inconclusive unless something failed outright. `judgements` holds the per-fault outcomes of a check that
    judges each fault on its own."""

    name: str
    passed: bool
    status: CheckStatus | None = None
    reason: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    judgements: list[FaultJudgement] = Field(default_factory=list)
    duration_s: float = 0.0

    @model_validator(mode="after")
    def _status_matches_passed(self) -> "CheckResult":
        if self.status is None:
            object.__setattr__(self, "status", "pass" if self.passed else "fail")
        elif self.passed != (self.status == "pass"):
            raise ValueError(f"check {self.name}: passed={self.passed} contradicts status {self.status!r}")
        return self

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def detail(self) -> str:
        """The contract name of `reason` in result.json."""
        return self.reason


class FaultRecord(_Model):
    """One fault on the timeline: what was injected where, whether it was proven to land, and its revert.

    Timestamps accept datetimes or Unix seconds (what `time.time()` and the journal use).
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    target: str = ""                         # human description: "node ip-10-0-1-12... gpu 0 (us-east-2a)"
    injection_started_at: datetime | None = None   # the injection call began (injected_at: it returned)
    injected_at: datetime | None = None      # None: it could not be injected
    landed: bool | None = None               # None: landing not (yet) proven
    landed_at: datetime | None = None
    landed_evidence: dict[str, Any] = Field(default_factory=dict)
    reverted_at: datetime | None = None
    revert_error: str | None = None
    index: int = 0                           # position in the scenario's `faults:`
    nodes: list[str] = Field(default_factory=list)   # names of the nodes it touched
    lost_at: datetime | None = None          # FaultTimes: service may be gone from here (az-loss)
    notice_at: datetime | None = None        # the warning the deployment got (spot notice)
    notice_end_at: datetime | None = None    # the notice ran out (spot: EC2 reclaims the instance)

    @property
    def did_land(self) -> bool:
        return self.injected_at is not None and self.landed is True

    def not_landed_reason(self) -> str:
        if self.injected_at is None:
            return f"fault {self.name} could not be injected" + (f" into {self.target}" if self.target else "")
        if self.landed is False:
            return f"fault {self.name} was injected but did not land" + (f" on {self.target}" if self.target else "")
        return f"fault {self.name} was injected but its landing was never proven"


class WindowMetrics(_Model):
    """Load figures of one time window (steady-state, fault:<name>, recovery, whole...) as result.json records
    them: the load generator's `harness.load.recorder.WindowFigures`, its degradation stated as a flag and a
    reason."""

    window: str
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0                  # fraction 0..1
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    tbt_p50_ms: float | None = None
    tbt_p99_ms: float | None = None
    e2e_p99_ms: float | None = None
    degraded: bool = False                   # the load generator could not keep up during this window
    degraded_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _degraded_reason(cls, data: Any) -> Any:
        """The load recorder states degradation as its reason (a string, None when fine): accept that too."""
        if isinstance(data, dict) and "degraded" in data:
            if isinstance(data["degraded"], str):
                data = {**data, "degraded": True, "degraded_reason": data.get("degraded_reason") or data["degraded"]}
            elif data["degraded"] is None:
                data = {**data, "degraded": False}
        return data


class LoadClock(_Model):
    """A load worker's wall clock against its master's (harness/load/wire.py): its records' and windows' wall
    stamps were moved by `offset_ms` onto the master's clock, within `uncertainty_ms` (half the best probe's
    round trip). Latencies are measured on the worker and need no offset."""

    process: int
    name: str
    offset_ms: float
    uncertainty_ms: float | None = None


class RunMetrics(_Model):
    requests: int = 0
    errors: int = 0
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    tbt_p50_ms: float | None = None
    tbt_p99_ms: float | None = None
    windows: list[WindowMetrics] = Field(default_factory=list)
    load_clocks: list[LoadClock] = Field(default_factory=list, description="workers' clocks against the master's")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class StopRecord(_Model):
    """The record of the stop condition that aborted a run, with the numbers that made it fire. (The condition as
    a scenario declares it is `harness.scenario.stopwhen.StopCondition`.)"""

    condition: str                           # as written: "error_rate > 20% for 30s"
    observed: float | None = None            # the value seen when it fired
    threshold: float | None = None
    held_for_s: float | None = None
    fired_at: datetime | None = None
    reason: str = ""                         # one line: "error_rate 34.1% > 20% for 30.4 s"
    # an `alarm:<name>` condition: the CloudWatch alarm, its state and CloudWatch's own state-change time
    alarm: str | None = None
    alarm_arn: str | None = None
    state: str | None = None
    state_updated_at: datetime | None = None
    state_reason: str | None = None


MilestoneName = Literal["impact", "detect", "isolate", "drain", "replace", "slo-restored"]
MILESTONES: tuple[MilestoneName, ...] = ("impact", "detect", "isolate", "drain", "replace", "slo-restored")


class Milestone(_Model):
    """One moment of a fault's story, computed from the run's recorded files (harness/report/timeline.py).

    `after_s` is on the scenario's clock (deployment seconds after the fault was injected, as the scenario file
    states its limits); `wall_after_s` is the same span in wall seconds (they differ on a target that compresses
    time). `source` names the record it came from; an absent milestone has `at` None and `absent` saying why:
    it never happened within the run, or the target cannot show it."""

    fault: str
    index: int
    name: MilestoneName
    at: datetime | None = None
    after_s: float | None = None
    wall_after_s: float | None = None
    limit_s: float | None = None             # deployment seconds: the `within` of the check that bounds it
    source: str = ""
    absent: str | None = None

    @property
    def reached(self) -> bool:
        return self.at is not None

    @property
    def late(self) -> bool:
        return self.after_s is not None and self.limit_s is not None and self.after_s > self.limit_s


class Score(_Model):
    """The run's resilience score, 0-100 (formula: docs/REPORTS.md). `gated_by` names the correctness checks
    that failed: a gated run scores 0 whatever its latency was."""

    value: float
    gated_by: list[str] = Field(default_factory=list)
    goodput_steady: float | None = None      # fraction of steady-state requests that met every SLO
    goodput_fault: float | None = None       # the same while a fault was in place
    goodput_part: float | None = None        # 0..1, fault goodput relative to steady
    milestone_part: float | None = None      # 0..1, milestones against their limits
    detail: str = ""


class CheckLimit(_Model):
    """A check's limit as the scenario states it (deployment seconds), with the faults it is scoped to."""

    check: str
    faults: list[Any] | None = None
    within_s: float

    def judges(self, fault: str, index: int | None) -> bool:
        """Whether this limit bounds fault `fault` at position `index` (no `faults:` scope: every fault)."""
        return self.faults is None or fault in self.faults or index in self.faults


def limit_within(limits: list[CheckLimit], check: str, fault: str, index: int | None) -> float | None:
    """The `within` of the first of `limits` that is `check`'s and judges this fault (deployment seconds)."""
    return next((limit.within_s for limit in limits if limit.check == check and limit.judges(fault, index)), None)


class RunResult(_Model):
    """Everything one scenario run produced. Written as result.json (contract fields: docs/CONTRACTS.md section 4)."""

    scenario: str
    description: str = ""
    target: str = ""
    profile: str | None = None
    seed: int | None = None
    verdict: Verdict
    exit_code: int
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    faults: list[FaultRecord] = Field(default_factory=list)
    metrics: RunMetrics = Field(default_factory=RunMetrics)
    stop_condition: StopRecord | None = None
    error: str | None = None
    measurement_degraded: bool = False
    measurement_degraded_reason: str | None = None
    report_dir: str | None = None
    # why the run cannot pass although nothing failed: run-level evidence that was never gathered (no checks
    # judged, a load process that left no final figures, a fleet not steady at the end); inconclusive checks
    # name their own missing evidence
    missing_evidence: list[str] = Field(default_factory=list)
    # deployment seconds per wall second (1 for a real cluster; the twin compresses time): the report shows
    # times on the scenario's clock, with wall time beside them
    time_scale: float = 1.0
    slo_ttft_ms: float | None = None         # the run's SLO lines (the slo check's limits, when it has one)
    slo_tbt_ms: float | None = None
    limits: list[CheckLimit] = Field(default_factory=list)
    milestones: list[Milestone] = Field(default_factory=list)
    score: Score | None = None
    scenario_file: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds(), 3)

    @property
    def inconclusive_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "inconclusive"]

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.failed]

    def summary(self) -> str:
        """One line for logs and the pytest failure text."""
        if self.verdict == "pass":
            return f"{self.scenario}: pass ({len(self.checks)} checks)"
        if self.verdict == "fail":
            names = ", ".join(c.name for c in self.failed_checks)
            return f"{self.scenario}: fail ({names})"
        if self.verdict == "aborted":
            why = self.stop_condition.reason or self.stop_condition.condition if self.stop_condition else self.error
            return f"{self.scenario}: aborted ({why or 'interrupted'})"
        if self.verdict == "inconclusive":
            why = [*self.missing_evidence, *(f"{c.name}: {c.reason}" for c in self.inconclusive_checks)]
            return f"{self.scenario}: inconclusive ({'; '.join(why)})"
        return f"{self.scenario}: error ({self.error or _fault_error(self.faults) or 'unknown'})"

    @classmethod
    def build(cls, *, scenario: str, checks: Iterable[CheckResult] = (), faults: Iterable[FaultRecord] = (),
              stop_condition: StopRecord | None = None, aborted: bool = False, invalid_input: bool = False,
              unreachable: bool = False, error: str | None = None, missing_evidence: Iterable[str] = (),
              **fields: Any) -> "RunResult":
        """Build a result whose verdict and exit code follow the contract (see `verdict_and_exit_code`)."""
        checks, faults, missing = list(checks), list(faults), list(missing_evidence)
        if not any(c.status in ("pass", "fail", "inconclusive") for c in checks):
            missing.append("no check judged anything: " + ("none was evaluated" if not checks else
                                                          "every check was not applicable to this run's faults"))
        verdict, code = verdict_and_exit_code(checks, faults, stop_condition=stop_condition, aborted=aborted,
                                              invalid_input=invalid_input, unreachable=unreachable, error=error,
                                              missing_evidence=missing)
        if error is None and verdict == "error" and not invalid_input and not unreachable:
            error = _fault_error(faults)
        return cls(scenario=scenario, checks=checks, faults=faults, stop_condition=stop_condition, error=error,
                   verdict=verdict, exit_code=int(code), missing_evidence=missing, **fields)


def _fault_error(faults: Iterable[FaultRecord]) -> str | None:
    faults = list(faults)
    reasons = [f.not_landed_reason() for f in faults if not f.did_land]
    reasons += [f"revert of {f.name} failed ({f.revert_error}): the fault may still be in place; run "
                f"`g7chaos recover`" for f in faults if f.revert_error]
    return "; ".join(reasons) or None


def verdict_and_exit_code(checks: Iterable[CheckResult], faults: Iterable[FaultRecord] = (), *,
                          stop_condition: StopRecord | None = None, aborted: bool = False,
                          invalid_input: bool = False, unreachable: bool = False,
                          error: str | None = None, missing_evidence: Iterable[str] = ()) -> tuple[Verdict, ExitCode]:
    """The contract, in order of precedence:

    2 invalid input (nothing ran) > 3 aborted (stop condition fired or interrupt; faults were reverted) >
    4 target unreachable, a harness error, any fault not injected / not proven landed (landed False *or*
    None), or a revert that failed (the fault may still be in place) > 1 any check failed > 5 inconclusive: a
    check lacked its minimum evidence, or the run lacked evidence a pass needs (`missing_evidence`) > 0 pass.
    A pass therefore always rests on evidence: no check judged, partial load figures or a fleet left unsteady
    never come out green.
    """
    checks, faults = list(checks), list(faults)
    if invalid_input:
        return "error", ExitCode.INVALID_INPUT
    if aborted or stop_condition is not None:
        return "aborted", ExitCode.ABORTED
    if unreachable or error:
        return "error", ExitCode.TARGET_ERROR
    if any(not f.did_land for f in faults) or any(f.revert_error for f in faults):
        return "error", ExitCode.TARGET_ERROR
    if any(c.failed for c in checks):
        return "fail", ExitCode.CHECK_FAILED
    judged = [c for c in checks if c.status != "not-applicable"]
    if list(missing_evidence) or not judged or any(c.status == "inconclusive" for c in checks):
        return "inconclusive", ExitCode.INCONCLUSIVE
    return "pass", ExitCode.PASS


# Which run outcome decides a game day's exit code: an interrupt stops the whole day; broken input must be fixed
# before anything else; then an unreachable target, a fault that did not land or a failed revert; then failed
# checks; then runs that lacked the evidence to pass.
_GAMEDAY_PRECEDENCE = [ExitCode.ABORTED, ExitCode.INVALID_INPUT, ExitCode.TARGET_ERROR, ExitCode.CHECK_FAILED,
                       ExitCode.INCONCLUSIVE, ExitCode.PASS]


class GamedayResult(_Model):
    """Every scenario of a game day; the day's verdict is its worst run's."""

    runs: list[RunResult] = Field(default_factory=list)
    verdict: Verdict
    exit_code: int
    name: str = "gameday"
    target: str = ""
    profile: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    report_dir: str | None = None
    score: float | None = None               # mean of the runs' scores (docs/REPORTS.md)

    @classmethod
    def from_runs(cls, runs: Iterable[RunResult], *, aborted: bool = False, **fields: Any) -> "GamedayResult":
        runs = list(runs)
        code = gameday_exit_code(runs, aborted=aborted)
        if "started_at" not in fields and runs:
            fields["started_at"] = min(r.started_at for r in runs)
        if "ended_at" not in fields:
            ends = [r.ended_at for r in runs if r.ended_at is not None]
            fields["ended_at"] = max(ends) if ends else None
        fields.setdefault("score", gameday_score(runs))
        return cls(runs=runs, verdict=VERDICT_OF_EXIT_CODE[int(code)], exit_code=int(code), **fields)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "inconclusive": 0, "aborted": 0, "error": 0}
        for run in self.runs:
            out[run.verdict] += 1
        return out


def gameday_score(runs: Iterable[RunResult]) -> float | None:
    """The day's score: the mean of its runs' scores. A run without a score is left out rather than counted as 0
    (a missing score is not a bad one); None when no run has one."""
    scores = [r.score.value for r in runs if r.score is not None]
    return sum(scores) / len(scores) if scores else None


def gameday_exit_code(runs: Iterable[RunResult], *, aborted: bool = False) -> ExitCode:
    if aborted:
        return ExitCode.ABORTED
    codes = {int(r.exit_code) for r in runs}
    for code in _GAMEDAY_PRECEDENCE:
        if int(code) in codes:
            return code
    return ExitCode.PASS
