"""no-corrupted-responses: no client got a wrong answer after the fault landed.

Canary prompts run at temperature 0, so their answers are deterministic: any canary answer that differs
from the golden answer learned in steady state is a corrupted answer that reached a client. Beyond the
grace limit, no response may start on the faulty node at all (it should be out of service); a stream that
began before and finishes on a draining node's healthy GPUs is what a graceful drain is for, and its length
is inference time, which is never scaled.
"""
from __future__ import annotations

from harness.checks.base import Check, Evidence, register


@register
class NoCorruptedResponses(Check):
    name = "no-corrupted-responses"

    def evaluate(self, evidence: Evidence):
        canary = evidence.load.canary
        if not canary.learned:
            return self.result(False, "canary answers were never learned in steady state: cannot judge corruption",
                               checked=canary.checked)
        landed = min((f.landed_at or f.injected_at for f in evidence.faults if f.injected_at), default=None)
        mismatches = [m for m in canary.mismatches if landed is None or m.t_end >= landed]
        within = self.params.within if self.params.within is not None else evidence.limits.get("node-drained")
        grace = evidence.wall(within) if within is not None else None
        bad_nodes = {n.name for f in evidence.faults for n in f.nodes}
        late_from_bad = []
        if grace is not None and landed is not None:
            for record in evidence.records():
                node = (record.get("served_by") or {}).get(_node_header(evidence))
                started = record.get("t_start", record.get("t_end", 0))
                if node in bad_nodes and started > landed + grace and record.get("tokens"):
                    late_from_bad.append(record.get("key"))
        by_node: dict[str, int] = {}
        for m in mismatches:
            node = m.served_by.get(_node_header(evidence), "?")
            by_node[node] = by_node.get(node, 0) + 1
        if mismatches or late_from_bad:
            first = min((m.t_end for m in mismatches), default=None)
            when = "" if first is None else f", first {first - (landed or first):.2f} s after the fault landed"
            return self.result(False, f"{len(mismatches)} corrupted canary answer(s) of {canary.checked} checked reached "
                                      f"clients (by node: {by_node or '-'}){when}; {len(late_from_bad)} response(s) "
                                      f"started on the faulty node after {grace if grace is not None else '-'} s",
                               corrupted=len(mismatches), checked=canary.checked, by_node=by_node,
                               served_by_faulty_after_limit=len(late_from_bad))
        return self.result(True, f"0 corrupted answers in {canary.checked} canary checks", checked=canary.checked)


def _node_header(evidence: Evidence) -> str:
    headers = evidence.target.served_by_headers
    return next((h for h in headers if "node" in h), headers[0] if headers else "x-served-by-node")
