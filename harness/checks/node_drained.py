"""node-drained: the faulty node is cordoned and its GPU pods gone within the limit, as seen by the watches.

Measured from the moment the fault landed to the first observation of each, so a slow watch never makes a
deployment look faster than it is (the harness can only be late, never early).

Minimum evidence: a pod of the fault's node seen by the watch (on it when the fault landed, or scheduled there
later). A node on which no pod was ever seen (a selector that picked the wrong node, a watch that missed it)
has nothing to drain in the evidence: inconclusive, never "drained in 0 s".
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.checks.base import Check, Evidence, fmt_s, register
from harness.strict.params import CheckParams
from harness.strict.units import Duration


def cordoned_at(evidence: Evidence, context: str, node: str, after: float) -> float | None:
    for obs in evidence.timeline.select("Node", lambda o: o.context == context and o.name == node and o.at >= after):
        if obs.type == "DELETED" or obs.obj.spec.unschedulable:
            return obs.at
    return None


def gpu_pods_gone_at(evidence: Evidence, context: str, node: str, after: float) -> tuple[float | None, list[str]]:
    """When the last pod the drain had to remove from `node` was seen deleted (or marked terminating).

    Those are the pods on the node at `after`, as last seen before it, and any scheduled there later. A pod
    that left before `after` (an autoscaler's scale-in, a rollout) was no longer the drain's to remove: counting
    it would fail a drain that never had the chance, on any cluster whose replica count moves.
    """
    on_node: dict[str, float | None] = {}
    for obs in evidence.timeline.select("Pod", lambda o: o.context == context):
        pod: Any = obs.obj
        if pod.spec.node_name != node:
            continue
        gone = obs.type == "DELETED" or bool(pod.metadata.deletion_timestamp)
        if obs.at <= after:
            if gone:
                on_node.pop(obs.name, None)
            else:
                on_node[obs.name] = None
        elif gone:
            if obs.name in on_node and on_node[obs.name] is None:
                on_node[obs.name] = obs.at
        elif obs.name not in on_node:
            on_node[obs.name] = None    # scheduled there after the fault: must go too
    if not on_node:
        return after, []
    remaining = [name for name, gone in on_node.items() if gone is None]
    if remaining:
        return None, remaining
    return max(t for t in on_node.values() if t is not None), []


class NodeDrainedParams(CheckParams):
    """Faulty node cordoned and its GPU pods evicted within the limit (and before a spot notice ends)."""

    within: Duration = Field(120.0, gt=0)


@register
class NodeDrained(Check):
    """Judges the faults that must take a node out of service: a double-bit ECC error (the node computes wrong
    answers) and a spot interruption (the node is reclaimed at the notice's end, which also bounds the drain)."""

    name = "node-drained"
    params_model = NodeDrainedParams
    params: NodeDrainedParams
    applies_to = frozenset({"ecc-double-bit-error", "spot-interruption"})

    def evaluate(self, evidence: Evidence):
        return self.judge_each(evidence)

    def judge(self, fault: Any, index: int, evidence: Evidence):
        limit = evidence.wall(self.params.within)
        start = fault.landed_at or fault.injected_at
        if start is None or not fault.nodes:
            return self.missing(fault, index, "the fault touched no node: nothing to judge", limit_s=limit)
        notice_end = fault.times.notice_end_at
        details, failures, unseen = {}, [], []
        for node in fault.nodes:
            seen_pods = {obs.name for obs in evidence.timeline.select(
                "Pod", lambda o, c=node.context, n=node.name: o.context == c and o.obj.spec.node_name == n)}
            if not seen_pods:
                unseen.append(node.name)
                continue
            cordon = cordoned_at(evidence, node.context, node.name, start - 0.001)
            drained, remaining = gpu_pods_gone_at(evidence, node.context, node.name, start - 0.001)
            took_cordon = None if cordon is None else cordon - start
            took_drain = None if drained is None else max(0.0, drained - start)
            details[node.name] = {"cordoned_after_s": took_cordon, "drained_after_s": took_drain,
                                  "pods_left": remaining, "pods_seen": len(seen_pods)}
            ok = took_cordon is not None and took_cordon <= limit and took_drain is not None and took_drain <= limit
            if notice_end is not None and drained is not None and drained > notice_end:
                ok = False
            if not ok:
                failures.append(f"{node.name}: cordoned {fmt_s(took_cordon)}, drained {fmt_s(took_drain)}"
                                f"{f', {len(remaining)} GPU pod(s) still there' if remaining else ''}")
        if failures:
            return self.verdict(fault, index, False, f"not drained within {limit:.2f} s: " + "; ".join(failures),
                                nodes=details, limit_s=limit)
        if unseen:
            return self.missing(fault, index, f"no pod was ever seen on {', '.join(unseen)}: nothing shows a drain "
                                              f"(does the node run the workload? are the watches on its cluster?)",
                                nodes=details, limit_s=limit, unseen=unseen)
        slowest = max(d["drained_after_s"] for d in details.values())
        return self.verdict(fault, index, True, f"{len(details)} node(s) cordoned and drained, slowest "
                                                f"{slowest:.2f} s (limit {limit:.2f} s)", nodes=details, limit_s=limit)
