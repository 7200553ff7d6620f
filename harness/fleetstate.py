"""Is the fleet steady? The judgement the runner waits on after the reverts (and before a scenario starts).

A game day runs scenarios back to back on one deployment, so each scenario must hand the next one a fleet
as it found it: no node left cordoned by a fault, every node Ready with all of its GPUs allocatable, every
inference pod Ready, and the latency SLO holding again. This module judges the fleet part from the watch
timeline alone (the newest observation of each object), so waiting for it costs no API calls and wakes on
the very change that completes it.

GPU counts come from the instance type (a node that reports fewer allocatable GPUs than its type has is
the silent capacity loss the article warns about); unknown types fall back to the node's own capacity.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from harness.observe import Observation

GPU_RESOURCE = "nvidia.com/gpu"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"

# GPUs per instance of the G7 family (AWS instance type pages; the seed article: g7.48xlarge has 8,
# g7.12xlarge 2, g7.2xlarge and g7.8xlarge 1), plus the G6/G6e/P5 types a mixed fleet commonly carries.
GPUS_PER_INSTANCE: dict[str, int] = {
    "g7.2xlarge": 1, "g7.4xlarge": 1, "g7.8xlarge": 1, "g7.12xlarge": 2, "g7.24xlarge": 4, "g7.48xlarge": 8,
    "g6.xlarge": 1, "g6.2xlarge": 1, "g6.4xlarge": 1, "g6.8xlarge": 1, "g6.12xlarge": 4, "g6.16xlarge": 1,
    "g6.24xlarge": 4, "g6.48xlarge": 8, "g6e.xlarge": 1, "g6e.12xlarge": 4, "g6e.48xlarge": 8, "p5.48xlarge": 8,
}


def expected_gpus(node: Any) -> int | None:
    """GPUs the node's instance type carries (None when neither the type nor the node's capacity says)."""
    labels = node.metadata.labels or {}
    known = GPUS_PER_INSTANCE.get(labels.get(INSTANCE_TYPE, ""))
    if known is not None:
        return known
    capacity = (node.status.capacity or {}).get(GPU_RESOURCE) if node.status else None
    return int(capacity) if capacity not in (None, "") else None


def _condition(obj: Any, kind: str) -> str | None:
    for condition in (obj.status.conditions or []) if obj.status else []:
        if condition.type == kind:
            return condition.status
    return None


@dataclass
class FleetState:
    """The newest observation of every node and inference pod, folded incrementally from a Timeline."""

    nodes: dict[tuple[str, str], Any] = field(default_factory=dict)
    pods: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    _seen: int = 0

    def fold(self, observations: list[Observation]) -> None:
        """Apply observations not yet applied (the timeline only grows, so an index is enough)."""
        for obs in observations[self._seen:]:
            if obs.kind == "Node":
                key = (obs.context, obs.name)
                if obs.type == "DELETED":
                    self.nodes.pop(key, None)
                else:
                    self.nodes[key] = obs.obj
            elif obs.kind == "Pod":
                pkey = (obs.context, obs.namespace or "", obs.name)
                if obs.type == "DELETED":
                    self.pods.pop(pkey, None)
                else:
                    self.pods[pkey] = obs.obj
        self._seen = len(observations)

    def problems(self, *, pod_namespace: str, pod_labels: dict[str, str], ignore_cordoned: Iterable[tuple[str, str]] = ()
                 ) -> list[str]:
        """What keeps the fleet from being steady, one short phrase each (empty = steady)."""
        ignored = set(ignore_cordoned)
        out: list[str] = []
        if not self.nodes:
            out.append("no node observed")
        for (context, name), node in sorted(self.nodes.items()):
            where = f"{context}/{name}"
            if node.spec and node.spec.unschedulable and (context, name) not in ignored:
                out.append(f"{where} cordoned")
            if _condition(node, "Ready") != "True":
                out.append(f"{where} not Ready")
            want = expected_gpus(node)
            have = (node.status.allocatable or {}).get(GPU_RESOURCE) if node.status else None
            if want is not None and int(have or 0) < want:
                out.append(f"{where} allocatable {GPU_RESOURCE} {int(have or 0)}/{want}")
        for (context, namespace, name), pod in sorted(self.pods.items()):
            if namespace != pod_namespace:
                continue
            labels = pod.metadata.labels or {}
            if any(labels.get(k) != v for k, v in pod_labels.items()):
                continue
            if pod.metadata.deletion_timestamp:
                out.append(f"{context}/{name} terminating")
            elif (pod.status.phase if pod.status else None) != "Running" or _condition(pod, "Ready") != "True":
                out.append(f"{context}/{name} not Ready ({pod.status.phase if pod.status else '?'})")
        return out

    def cordoned(self) -> set[tuple[str, str]]:
        return {key for key, node in self.nodes.items() if node.spec and node.spec.unschedulable}


def parse_label_selector(selector: str) -> dict[str, str]:
    """`a=b,c==d` -> {a: b, c: d}; set-based and `!=` terms are not needed to recognise inference pods."""
    labels: dict[str, str] = {}
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term or "=" not in term:
            continue
        key, _, value = term.partition("==") if "==" in term else term.partition("=")
        labels[key.strip()] = value.strip()
    return labels


def summarise(problems: list[str], limit: int = 4) -> str:
    if not problems:
        return "steady"
    more = f" (+{len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more
