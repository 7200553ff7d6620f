"""What every check is: a judgement over what the run recorded, with a one-line reason that carries numbers.

Checks read the evidence gathered during the run (the watch timeline, the faults with their landing
times, the load's per-window figures and per-request records) and may make read-only calls to the
target at the end (alarm history). Limits in scenario files are deployment time; `Evidence.wall`
converts them with the target's time scale.
"""
from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from harness.observe import Timeline
from harness.report.model import CheckResult


@dataclass
class Evidence:
    target: Any
    timeline: Timeline
    faults: list[Any]                       # harness.faults.base.Fault instances, after the run
    load: Any                               # harness.load.process.LoadResult
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)   # name -> (start, end) wall time
    run_started: float = 0.0
    run_ended: float = 0.0
    probes: dict[str, Any] = field(default_factory=dict)    # what live probes recorded (alarm states ...)
    limits: dict[str, float] = field(default_factory=dict)  # check name -> its `within` (deployment seconds)
    recovery_started_at: float | None = None   # wall time of the last revert (the recovery phase's start)
    recovered_at: float | None = None          # wall time steady state held again (None: not within the bound)

    def wall(self, deployment_seconds: float) -> float:
        return self.target.wall_seconds(deployment_seconds)

    def records(self) -> list[dict[str, Any]]:
        if self.load is None:
            return []
        out = []
        with open(self.load.records_path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:   # a torn last line
                    continue
        return out


class Check(ABC):
    name: ClassVar[str]

    def __init__(self, params: BaseModel):
        self.params = params

    def start(self, ctx: Any) -> None:
        """Begin live observation (most checks judge the timeline afterwards and need nothing here)."""

    def stop(self) -> None:
        pass

    @abstractmethod
    def evaluate(self, evidence: Evidence) -> CheckResult:
        ...

    def result(self, passed: bool, reason: str, **evidence: Any) -> CheckResult:
        return CheckResult(name=self.name, passed=passed, reason=reason, evidence=evidence)


CHECKS: dict[str, type[Check]] = {}


def register(cls: type[Check]) -> type[Check]:
    CHECKS[cls.name] = cls
    return cls


def fmt_s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"


def now() -> float:
    return time.time()
