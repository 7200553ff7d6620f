"""no-corrupted-responses: no client got a wrong answer after a fault landed.

Canary prompts run at temperature 0, so their answers are deterministic: any canary answer that differs
from the golden answer learned in steady state is a corrupted answer that reached a client. Each fault is
judged on its own: the corrupted answers its node served after it landed (and those no faulty node served,
which go to the fault that landed last before them). A double-bit ECC error also has a node rule: beyond the
grace limit (the check's `within`, else node-drained's), no response may start on that node at all, because
everything it computes may be wrong; a stream that began before and finishes on a draining node's healthy GPUs is
what a graceful drain is for, and its length is inference time, which is never scaled. Other faults have no such rule: a node under a spot notice may serve until
it is reclaimed.

Minimum evidence, per fault: golden answers learned in steady state, at least `min_canaries_after` canary
answers checked after the fault landed (canaries that errored are counted apart: no answer is no evidence of a
right one), and, for the node rule, a served-by header naming the node. Without them the fault is inconclusive.
"""
from __future__ import annotations

from typing import Any

from harness.checks.base import Check, Evidence, register

OUT_OF_SERVICE_KINDS = frozenset({"ecc-double-bit-error"})   # faults whose node must stop answering


@register
class NoCorruptedResponses(Check):
    name = "no-corrupted-responses"
    applies_to = None     # a corrupted answer is wrong after any fault; the node rule is ECC's only

    def evaluate(self, evidence: Evidence):
        canary = evidence.load.canary
        if not canary.learned:
            return self.inconclusive("canary answers were never learned in steady state: cannot judge corruption "
                                     "(set load.canary, and let the steady window see canary answers)",
                                     checked=canary.checked)
        self._records: list[dict[str, Any]] | None = None
        return self.judge_each(evidence)

    def judge(self, fault: Any, index: int, evidence: Evidence):
        canary = evidence.load.canary
        header = _node_header(evidence)
        landed = fault.landed_at or fault.injected_at
        if landed is None:
            return self.verdict(fault, index, False, "the fault was never injected: nothing to judge",
                                checked=canary.checked)
        nodes = {n.name for n in fault.nodes}
        after = sum(1 for t in canary.checked_at if t >= landed)
        errored = sum(1 for t in canary.errored_at if t >= landed)
        mismatches = [m for m in canary.mismatches
                      if m.t_end >= landed and _owner(m.served_by.get(header), m.t_end, evidence.faults) is fault]
        by_node: dict[str, int] = {}
        for m in mismatches:
            node = m.served_by.get(header, "?")
            by_node[node] = by_node.get(node, 0) + 1
        grace = None
        late_from_bad: list[Any] = []
        if fault.name in OUT_OF_SERVICE_KINDS:
            within = self.params.within if self.params.within is not None else evidence.limit("node-drained", fault)
            grace = evidence.wall(within) if within is not None else None
            if grace is not None:
                if self._records is None:
                    self._records = evidence.records()
                late_from_bad = [r.get("key") for r in self._records
                                 if (r.get("served_by") or {}).get(header) in nodes
                                 and r.get("t_start", r.get("t_end", 0)) > landed + grace and r.get("tokens")]
        figures = {"corrupted": len(mismatches), "checked": canary.checked, "checked_after_landing": after,
                   "errored_after_landing": errored, "by_node": by_node,
                   "served_by_faulty_after_limit": len(late_from_bad), "grace_s": grace}
        if mismatches or late_from_bad:
            first = min((m.t_end for m in mismatches), default=None)
            when = "" if first is None else f", first {first - landed:.2f} s after the fault landed"
            node_rule = (f"; {len(late_from_bad)} response(s) started on the faulty node after {grace:.2f} s"
                         if grace is not None else "")
            return self.verdict(fault, index, False, f"{len(mismatches)} corrupted canary answer(s) of "
                                                     f"{canary.checked} checked reached clients (by node: "
                                                     f"{by_node or '-'}){when}{node_rule}", **figures)
        if after < self.params.min_canaries_after:
            return self.missing(fault, index, f"{after} canary answer(s) checked after the fault landed "
                                              f"({errored} errored), fewer than the {self.params.min_canaries_after} "
                                              f"needed: no evidence that answers stayed right", **figures)
        if fault.name in OUT_OF_SERVICE_KINDS and not self._node_header_seen(evidence, header):
            return self.missing(fault, index, f"no answer carried the {header} header: whether the faulty node kept "
                                              f"serving cannot be seen (set the target's served_by_headers)", **figures)
        return self.verdict(fault, index, True, f"0 corrupted answers in {after} canary checks after the fault "
                                                f"landed ({errored} errored)", **figures)

    def _node_header_seen(self, evidence: Evidence, header: str) -> bool:
        if self._records is None:
            self._records = evidence.records()
        return any((r.get("served_by") or {}).get(header) for r in self._records)


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
