"""node-replaced: a node the fault took away is replaced by a new node of the same nodegroup, Ready in time.

A spot interruption, an auto-repair replace or an AZ recovery all end the same way when the deployment is
healthy: the nodegroup's Auto Scaling group launches an instance, it joins the cluster and its kubelet
reports Ready. The check reads that from the watch timeline: the first node of the fault node's nodegroup
(same cluster) that was not there when the fault was injected, and the first moment it was seen Ready.
Measured from the fault landing, so a slow watch can only make the deployment look slower.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.checks.base import Check, Evidence, fmt_s, register
from harness.strict.params import CheckParams
from harness.strict.units import Duration

NODEGROUP = "eks.amazonaws.com/nodegroup"


def node_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def nodes_before(evidence: Evidence, context: str, at: float) -> set[str]:
    """Names of the nodes of `context` that existed at wall time `at`, replayed from the timeline."""
    present: set[str] = set()
    for obs in evidence.timeline.select("Node", lambda o: o.context == context and o.at <= at):
        if obs.type == "DELETED":
            present.discard(obs.name)
        else:
            present.add(obs.name)
    return present


def replacement(evidence: Evidence, context: str, nodegroup: str | None, old: set[str],
                after: float) -> tuple[str | None, float | None, float | None]:
    """(name, first seen, first Ready) of the first new node of `nodegroup` after `after`."""
    joined: dict[str, float] = {}
    for obs in evidence.timeline.select("Node", lambda o: o.context == context and o.at >= after):
        if obs.name in old or obs.type == "DELETED":
            continue
        labels = obs.obj.metadata.labels or {}
        if nodegroup is not None and labels.get(NODEGROUP) != nodegroup:
            continue
        joined.setdefault(obs.name, obs.at)
        if node_ready(obs.obj):
            return obs.name, joined[obs.name], obs.at
    if joined:
        name, seen = min(joined.items(), key=lambda kv: kv[1])
        return name, seen, None
    return None, None, None


class NodeReplacedParams(CheckParams):
    """A replacement node joined and is Ready within the limit."""

    within: Duration = Field(600.0, gt=0)


@register
class NodeReplaced(Check):
    """Judges the faults after which the node must be replaced: a double-bit ECC error (auto repair replaces it)
    and a spot interruption (the instance is reclaimed)."""

    name = "node-replaced"
    params_model = NodeReplacedParams
    params: NodeReplacedParams
    applies_to = frozenset({"ecc-double-bit-error", "spot-interruption"})

    def evaluate(self, evidence: Evidence):
        self._used: set[str] = set()    # a replacement counts for one lost node only, across faults
        return self.judge_each(evidence)

    def judge(self, fault: Any, index: int, evidence: Evidence):
        limit = evidence.wall(self.params.within)
        start = fault.landed_at or fault.injected_at
        if start is None or not fault.nodes:
            return self.missing(fault, index, "the fault touched no node: nothing to replace", limit_s=limit)
        used = getattr(self, "_used", set())
        details: dict[str, Any] = {}
        failures: list[str] = []
        for node in fault.nodes:
            old = nodes_before(evidence, node.context, fault.injected_at)
            name, seen, ready = replacement(evidence, node.context, node.nodegroup, old | used, start - 0.001)
            if name:
                used.add(name)
            took = None if ready is None else max(0.0, ready - start)
            details[node.name] = {"replacement": name, "joined_after_s": None if seen is None else seen - start,
                                  "ready_after_s": took, "nodegroup": node.nodegroup}
            if took is None or took > limit:
                what = "no new node joined" if name is None else (
                    f"{name} joined after {fmt_s(seen - start)} but was not Ready" if took is None
                    else f"{name} Ready after {took:.2f} s")
                failures.append(f"{node.name} ({node.nodegroup}): {what}")
        if failures:
            return self.verdict(fault, index, False, f"not replaced within {limit:.2f} s: " + "; ".join(failures),
                                nodes=details, limit_s=limit)
        slowest = max(d["ready_after_s"] for d in details.values())
        return self.verdict(fault, index, True, f"{len(details)} node(s) replaced in their nodegroup, slowest Ready "
                                                f"after {slowest:.2f} s (limit {limit:.2f} s)", nodes=details,
                            limit_s=limit)
