"""fault-landed: every fault really took effect within the limit. A fault that did not land makes the run an
error, never a pass: a deployment cannot be credited for surviving a fault it never saw."""
from __future__ import annotations

from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.strict.params import CheckParams
from harness.strict.units import Duration


class FaultLandedParams(CheckParams):
    """The fault really landed (DCGM field reads back, notice seen, targets unhealthy). Not landed = error."""

    within: Duration = Field(60.0, gt=0)


@register
class FaultLanded(Check):
    name = "fault-landed"
    params_model = FaultLandedParams
    params: FaultLandedParams

    def evaluate(self, evidence: Evidence):
        limit = evidence.wall(self.params.within)
        late, missing, times = [], [], {}
        for fault in self.in_scope(evidence):
            if fault.injected_at is None or fault.landed_at is None:
                missing.append(fault.name)
                continue
            took = fault.landed_at - fault.injected_at
            times[fault.name] = round(took, 3)
            if took > limit:
                late.append(f"{fault.name} after {took:.2f} s")
        if missing or late:
            return self.result(False, f"not landed: {', '.join(missing) or '-'}; late (limit {limit:.2f} s): "
                                      f"{', '.join(late) or '-'}", landed_after_s=times)
        return self.result(True, f"{len(times)} fault(s) landed, slowest after {max(times.values(), default=0):.2f} s "
                                 f"(limit {limit:.2f} s)", landed_after_s=times)
