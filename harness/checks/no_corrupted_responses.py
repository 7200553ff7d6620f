"""no-corrupted-responses: no client got a wrong answer once the deployment had the means to know of the fault.

Canary prompts run at temperature 0, so their answers are deterministic: any canary answer that differs
from the golden answer learned in steady state is a corrupted answer that reached a client. Each fault is
judged on its own: the corrupted answers its node served (and those no faulty node served, which go to the
fault that landed last before them).

When the deployment could know: no detector is instant (FIDELITY NMA-1, ELB-1). A double-bit error is seen by a
detector an operator runs when the fault lands (the node condition, or dcgm-exporter's counter), and the
deployment's canary health check pulls the replica at its next probe: answers corrupted before the landing plus
one probe interval are counted and reported, never failed; one after it fails the fault. The probe interval is
the check's `probe_interval`, else the longest HealthCheckIntervalSeconds of the target's load balancer target
groups; unreadable, it is 0 (judged from the landing: the strict reading), and the evidence says which. Nothing
in the other faults corrupts an answer, so for them the window ends at the landing.

A double-bit error also has a node rule: beyond the grace limit (the check's `within`, else node-drained's), no
response may start on that node at all, because everything it computes may be wrong; a stream that began before
and finishes on a draining node's healthy GPUs is what a graceful drain is for, and its length is inference
time, which is never scaled. Other faults have no such rule: a node under a spot notice may serve until it is
reclaimed.

Minimum evidence, per fault: golden answers learned in steady state, at least `min_canaries_after` canary
answers checked once the deployment could know (canaries that errored are counted apart: no answer is no
evidence of a right one), and, for the node rule, a served-by header naming the node. Without them the fault is
inconclusive.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.loadbalancer import health_check_interval
from harness.strict.params import CheckParams
from harness.strict.units import Duration

OUT_OF_SERVICE_KINDS = frozenset({"ecc-double-bit-error"})   # faults whose node must stop answering


class NoCorruptedResponsesParams(CheckParams):
    """No canary answer differs from its golden answer once the deployment had the means to know of the fault
    (its landing; for a double-bit error, its landing plus one health-check probe); nothing served by the bad GPU
    after `within` (default: node-drained's limit)."""

    within: Duration | None = Field(None, gt=0)
    probe_interval: Duration | None = Field(None, gt=0, description="how often the deployment's canary health check "
                                            "runs; default: the longest HealthCheckIntervalSeconds of the target's "
                                            "load balancer target groups")
    min_canaries_after: int = Field(1, ge=1, le=1_000_000, description="canary answers needed once the deployment "
                                    "could know of each fault; fewer and the fault cannot be judged (inconclusive)")


@register
class NoCorruptedResponses(Check):
    name = "no-corrupted-responses"
    params_model = NoCorruptedResponsesParams
    params: NoCorruptedResponsesParams
    applies_to = None     # a corrupted answer is wrong after any fault; the node rule is ECC's only

    def evaluate(self, evidence: Evidence):
        canary = evidence.load.canary
        if not canary.learned:
            return self.inconclusive("canary answers were never learned in steady state: cannot judge corruption "
                                     "(set load.canary, and let the steady window see canary answers)",
                                     checked=canary.checked)
        self._interval: tuple[float, str] | None = None
        return self.judge_each(evidence)

    def probe(self, fault: Any, evidence: Evidence) -> tuple[float, str]:
        """(deployment seconds, where they come from) the deployment may take past the landing to pull what the
        fault corrupts."""
        if fault.name not in OUT_OF_SERVICE_KINDS:
            return 0.0, "none: nothing in this fault corrupts an answer"
        if self.params.probe_interval is not None:
            return float(self.params.probe_interval), "the check's probe_interval"
        if self._interval is None:
            found = health_check_interval(evidence.target)
            self._interval = ((found[0], f"HealthCheckIntervalSeconds of target group {found[1]}") if found else
                              (0.0, "unknown (no target group health check could be read): judged from the landing"))
        return self._interval

    def judge(self, fault: Any, index: int, evidence: Evidence):
        canary = evidence.load.canary
        header = _node_header(evidence)
        landed = fault.landed_at or fault.injected_at
        if landed is None:
            return self.verdict(fault, index, False, "the fault was never injected: nothing to judge",
                                checked=canary.checked)
        started = min(fault.injected_at or landed, landed)
        probe_s, probe_source = self.probe(fault, evidence)
        knows_at = landed + evidence.wall(probe_s)
        nodes = {n.name for n in fault.nodes}
        theirs = [m for m in canary.mismatches
                  if m.t_end >= started and _owner(m.served_by.get(header), m.t_end, evidence.faults) is fault]
        late = [m for m in theirs if m.t_end > knows_at]
        by_node: dict[str, int] = {}
        for m in late:
            node = m.served_by.get(header, "?")
            by_node[node] = by_node.get(node, 0) + 1
        after_landing = sum(1 for t in canary.checked_at if t >= landed)
        after = sum(1 for t in canary.checked_at if t > knows_at)
        errored = sum(1 for t in canary.errored_at if t > knows_at)
        grace = None
        late_from_bad: list[Any] = []
        if fault.name in OUT_OF_SERVICE_KINDS:
            within = self.params.within if self.params.within is not None else evidence.limit("node-drained", fault)
            grace = evidence.wall(within) if within is not None else None
            if grace is not None:
                late_from_bad = [r.get("key") for r in evidence.records()
                                 if (r.get("served_by") or {}).get(header) in nodes
                                 and r.get("t_start", r.get("t_end", 0)) > landed + grace and r.get("tokens")]
        window = (f"the landing + one {probe_s:g} s probe ({probe_source}), {knows_at - landed:.2f} s wall"
                  if probe_s else "the landing")
        figures = {"corrupted": len(late), "corrupted_before_knowing": len(theirs) - len(late),
                   "checked": canary.checked, "checked_after_landing": after_landing, "checked_after_knowing": after,
                   "errored_after_knowing": errored, "by_node": by_node, "probe_interval_s": probe_s,
                   "probe_interval_source": probe_source, "knows_after_landing_s": round(knows_at - landed, 3),
                   "served_by_faulty_after_limit": len(late_from_bad), "grace_s": grace}
        before = f"; {len(theirs) - len(late)} reached clients before that"
        if late or late_from_bad:
            first = min((m.t_end for m in late), default=None)
            when = "" if first is None else f", first {first - landed:.2f} s after the fault landed"
            node_rule = (f"; {len(late_from_bad)} response(s) started on the faulty node after {grace:.2f} s"
                         if grace is not None else "")
            return self.verdict(fault, index, False, f"{len(late)} corrupted canary answer(s) of {canary.checked} "
                                                     f"checked reached clients after the deployment could know "
                                                     f"({window}; by node: {by_node or '-'}){when}{before}"
                                                     f"{node_rule}", **figures)
        if after < self.params.min_canaries_after:
            return self.missing(fault, index, f"{after} canary answer(s) checked after {window} ({errored} "
                                              f"errored), fewer than the {self.params.min_canaries_after} needed: "
                                              f"no evidence that answers stayed right", **figures)
        if fault.name in OUT_OF_SERVICE_KINDS and not self._node_header_seen(evidence, header):
            return self.missing(fault, index, f"no answer carried the {header} header: whether the faulty node kept "
                                              f"serving cannot be seen (set the target's served_by_headers)", **figures)
        return self.verdict(fault, index, True, f"0 corrupted answers in {after} canary checks after {window} "
                                                f"({errored} errored){before}", **figures)

    def _node_header_seen(self, evidence: Evidence, header: str) -> bool:
        return any((r.get("served_by") or {}).get(header) for r in evidence.records())


def _owner(node: str | None, at: float, faults: list[Any]) -> Any:
    """The fault a corrupted answer belongs to: the one whose node served it, else the last to land before it."""
    for fault in faults:
        if node is not None and node in {n.name for n in fault.nodes}:
            return fault
    landed = [(f.landed_at or f.injected_at, i) for i, f in enumerate(faults) if (f.landed_at or f.injected_at)]
    before = [(t, i) for t, i in landed if t <= at]
    return faults[max(before)[1]] if before else None


def _node_header(evidence: Evidence) -> str:
    headers = evidence.target.served_by_headers
    return next((h for h in headers if "node" in h), headers[0] if headers else "x-served-by-node")
