"""What every check is: a judgement over what the run recorded, with a one-line reason that carries numbers.

Checks read the evidence gathered during the run (the watch timeline, the faults with their landing
times, the load's per-window figures and per-request records) and may make read-only calls to the
target at the end (alarm history). Limits in scenario files are deployment time; `Evidence.wall`
converts them with the target's time scale.

A check is one module: its parameter model (`params_model`, a `CheckParams`) next to its code, registered by
`@register` under its contract name; what it reads of a fault is the typed attributes of
`harness.faults.base.Fault`.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.faults.base import Fault
from harness.jsonl import read_records
from harness.observe import Timeline
from harness.report.model import CheckLimit, CheckResult, FaultJudgement, limit_within
from harness.strict.params import CheckParams, ParamsOf, register_into


@dataclass
class Evidence:
    target: Any
    timeline: Timeline
    faults: list[Fault]                     # after the run
    load: Any                               # harness.load.process.LoadResult
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)   # name -> (start, end) wall time
    run_started: float = 0.0
    run_ended: float = 0.0
    probes: dict[str, Any] = field(default_factory=dict)    # what live probes recorded (alarm states ...)
    # one per check entry with a `within` (deployment seconds), with its `faults:` scope (None: every fault)
    limits: list[CheckLimit] = field(default_factory=list)
    recovery_started_at: float | None = None   # wall time of the last revert (the recovery phase's start)
    recovered_at: float | None = None          # wall time steady state held again (None: not within the bound)
    _records: list[dict[str, Any]] | None = field(default=None, init=False, repr=False, compare=False)

    def wall(self, deployment_seconds: float) -> float:
        return self.target.wall_seconds(deployment_seconds)

    def limit(self, check: str, fault: Any) -> float | None:
        """The `within` of the scenario's entry of `check` that judges `fault` (deployment seconds), or None: a
        composed scenario may give one check a limit per fault."""
        return limit_within(self.limits, check, fault.name, getattr(fault, "index", None))

    def records(self) -> list[dict[str, Any]]:
        """The load's per-request records, read once for every check that judges them (a long run's file is
        large; the checks only read it)."""
        if self.load is None:
            return []
        if self._records is None:
            self._records = read_records(self.load.records_path)
        return self._records


@dataclass(frozen=True)
class Judged:
    """One fault as a check sees it: the fault, its position in the scenario, and whether the check judges it."""

    fault: Any
    index: int
    applies: bool
    why_not: str = ""


class Check(ABC):
    """A judgement over the run. A check that judges faults one by one sets `applies_to` (the fault kinds it has
    a rule for) and implements `judge`; one that judges the whole run (SLOs, retries) leaves `applies_to` None
    and implements `evaluate`."""

    name: ClassVar[str]
    params_model: ClassVar[type[CheckParams]]
    applies_to: ClassVar[frozenset[str] | None] = None

    def __init__(self, params: CheckParams):
        self.params = params

    def scoped(self, evidence: Evidence) -> list[Judged]:
        """Every fault of the run, marked with whether this check judges it: the scenario's `faults:` scope
        first (kinds or positions), then the kinds the check has a rule for."""
        wanted = getattr(self.params, "faults", None)
        out = []
        for index, fault in enumerate(evidence.faults):
            position = getattr(fault, "index", index)
            if wanted is not None and fault.name not in wanted and position not in wanted:
                out.append(Judged(fault, position, False, "not in this check's faults: scope"))
            elif self.applies_to is not None and fault.name not in self.applies_to:
                out.append(Judged(fault, position, False, f"{self.name} has no rule for {fault.name} "
                                                         f"(it judges {', '.join(sorted(self.applies_to))})"))
            else:
                out.append(Judged(fault, position, True))
        return out

    def in_scope(self, evidence: Evidence) -> list[Any]:
        """The faults this check judges."""
        return [j.fault for j in self.scoped(evidence) if j.applies]

    def judge(self, fault: Any, index: int, evidence: Evidence) -> FaultJudgement:
        """One fault, by its kind's own rules (checks with `applies_to` implement this)."""
        raise NotImplementedError(f"{self.name} judges the whole run, not one fault")

    def judge_each(self, evidence: Evidence) -> CheckResult:
        """Judge every fault in scope on its own; the check fails if any fault fails, and is not applicable when
        it judges none."""
        judgements = []
        for item in self.scoped(evidence):
            if item.applies:
                judgements.append(self.judge(item.fault, item.index, evidence))
            else:
                judgements.append(FaultJudgement(fault=item.fault.name, index=item.index, status="not-applicable",
                                                 reason=item.why_not))
        judged = [j for j in judgements if j.status != "not-applicable"]
        if not judged:
            reasons = "; ".join(f"fault {j.index} {j.fault}: {j.reason}" for j in judgements) or "no faults"
            return CheckResult(name=self.name, passed=False, status="not-applicable", reason=reasons,
                               judgements=judgements)
        failed = [j for j in judged if j.status == "fail"]
        unsure = [j for j in judged if j.status == "inconclusive"]
        status = "fail" if failed else "inconclusive" if unsure else "pass"
        shown = failed or unsure or judged
        reason = "; ".join(j.reason if len(judged) == 1 else f"fault {j.index} {j.fault}: {j.reason}" for j in shown)
        evidence_out = judged[0].evidence if len(judged) == 1 else {
            f"{j.index}:{j.fault}": j.evidence for j in judged}
        return CheckResult(name=self.name, passed=status == "pass", status=status, reason=reason,
                           evidence=evidence_out, judgements=judgements)

    def verdict(self, fault: Any, index: int, passed: bool, reason: str, **evidence: Any) -> FaultJudgement:
        return FaultJudgement(fault=fault.name, index=index, status="pass" if passed else "fail", reason=reason,
                              evidence=evidence)

    def missing(self, fault: Any, index: int, reason: str, **evidence: Any) -> FaultJudgement:
        """The fault could not be judged: the evidence this check needs at the least was never gathered. Never a
        pass; the reason says what was missing."""
        return FaultJudgement(fault=fault.name, index=index, status="inconclusive", reason=reason, evidence=evidence)

    def inconclusive(self, reason: str, **evidence: Any) -> CheckResult:
        """A whole-run check whose minimum evidence is missing (see `missing`)."""
        return CheckResult(name=self.name, passed=False, status="inconclusive", reason=reason, evidence=evidence)

    def start(self, ctx: Any) -> None:
        """Begin live observation (most checks judge the timeline afterwards and need nothing here)."""

    def stop(self) -> None:
        pass

    def marks(self) -> list[Any]:
        """What the check's own live probes saw change (alarm states), as `harness.report.marks.ClusterMark`s
        for the report's cluster lane; most checks only read the timeline and have none."""
        return []

    @abstractmethod
    def evaluate(self, evidence: Evidence) -> CheckResult:
        ...

    def result(self, passed: bool, reason: str, **evidence: Any) -> CheckResult:
        return CheckResult(name=self.name, passed=passed, reason=reason, evidence=evidence)


CHECKS: dict[str, type[Check]] = {}
"""Check name (contract) -> class, filled by `@register` as each check module is imported."""

CHECK_PARAMS: Mapping[str, type[CheckParams]] = ParamsOf(CHECKS)
"""Check name -> its parameter model, read through CHECKS (what scenario validation and the schema use)."""


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: the check under its contract name, with the parameter model it declares."""
    return register_into(CHECKS, cls, CheckParams, "check")


def fmt_s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"


def now() -> float:
    return time.time()
