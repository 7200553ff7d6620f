"""toy-landed-quickly: a check that lives outside harness/checks/ and is registered from this file alone.

It judges the toy fault (tests/extension/toy_fault.py) one fault at a time, from what every fault records for
checks (its injection, landing and revert times), against its own parameter: landed within `within` and reverted.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.report.model import CheckResult, FaultJudgement
from harness.strict.params import CheckParams
from harness.strict.units import Duration


class ToyLandedQuicklyParams(CheckParams):
    """The toy fault landed within the limit and was reverted."""

    within: Duration = Field(30.0, gt=0, description="deployment time from injection to landing")


@register
class ToyLandedQuickly(Check):
    name = "toy-landed-quickly"
    params_model = ToyLandedQuicklyParams
    params: ToyLandedQuicklyParams
    applies_to = frozenset({"toy-node-annotation"})

    def evaluate(self, evidence: Evidence) -> CheckResult:
        return self.judge_each(evidence)

    def judge(self, fault: Any, index: int, evidence: Evidence) -> FaultJudgement:
        limit = evidence.wall(self.params.within)
        if fault.injected_at is None or fault.landed_at is None:
            return self.missing(fault, index, "the fault was never injected or never landed", limit_s=limit)
        took = fault.landed_at - fault.injected_at
        reverted = fault.reverted_at is not None
        return self.verdict(fault, index, took <= limit and reverted,
                            f"landed {took:.2f} s after injection (limit {limit:.2f} s), "
                            f"{'reverted' if reverted else 'never reverted'}", landed_after_s=took)
