"""no-silent-capacity-loss: GPUs that vanish without anything turning red are reported, with node and duration.

Why "silent": a node that is NotReady is loud (alarms, dashboards, the scheduler says so). The failure the
article warns about is quieter: after a reboot the device plugin starts before the driver, registers zero GPUs
and never retries; the node is Ready, `nvidia.com/gpu` allocatable is below what the instance type has, and
GPU pods sit Pending with `Insufficient nvidia.com/gpu`. Three symptoms are judged on the watch timeline,
each as the longest continuous stretch (an open stretch lasts until the run ended):

- a Ready node whose allocatable `nvidia.com/gpu` is below its instance type's GPU count;
- a GPU pod Pending only for `Insufficient nvidia.com/gpu` (every node Ready and untainted, still no room);
- a GPU pod Running on a Ready node that has no allocatable GPU.

Any stretch longer than `within` (deployment time) fails. A short stretch is normal: the plugin registers a few
seconds after the kubelet is Ready.

How many GPUs a node should have: its instance type's count where the table below knows it, else the most GPUs
any node of that instance type registered during the run (the count sources disagree for some G7 sizes, so the
node's own fleet is the better witness). Minimum evidence: node observations from the watches, and an expected
count for every node; a node whose count cannot be known is listed, and the check is inconclusive rather than
silently skipping it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.strict.params import CheckParams
from harness.strict.units import Duration

GPU = "nvidia.com/gpu"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
GPUS_BY_INSTANCE_TYPE = {"g7.48xlarge": 8, "g7.24xlarge": 4, "g7.12xlarge": 2, "g7.8xlarge": 1, "g7.4xlarge": 1,
                         "g7.2xlarge": 1}
"""GPUs per G7 size (g7.48xlarge 8, g7.12xlarge 2, g7.2xlarge and g7.8xlarge 1)."""
INSUFFICIENT = f"Insufficient {GPU}"
GPU_FAMILIES = ("g", "p")       # EC2 accelerated families whose nodes must show their GPUs
LOUD_REASONS = ("taint", "not ready", "unschedulable")


@dataclass
class Stretch:
    subject: str
    started: float
    ended: float | None = None

    def length(self, end: float) -> float:
        return (self.ended if self.ended is not None else end) - self.started


def _ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def _capacity(node: Any) -> int | None:
    raw = ((node.status.capacity if node.status else None) or {}).get(GPU)
    try:
        return int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return None


def _allocatable(node: Any) -> int | None:
    raw = (node.status.allocatable or {}).get(GPU)
    try:
        return int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return None


def _gpu_request(pod: Any) -> int:
    total = 0
    for container in pod.spec.containers or []:
        resources = container.resources
        for source in (getattr(resources, "limits", None) or {}, getattr(resources, "requests", None) or {}):
            if GPU in source:
                total = max(total, int(str(source[GPU])))
    return total


def _pending_for_gpus(pod: Any) -> str | None:
    """The scheduler's message when it is only about missing GPUs (no node down, tainted or cordoned)."""
    if pod.spec.node_name or pod.metadata.deletion_timestamp:
        return None
    for condition in pod.status.conditions or [] if pod.status else []:
        if condition.type == "PodScheduled" and condition.status == "False":
            message = condition.message or ""
            if INSUFFICIENT in message and not any(word in message for word in LOUD_REASONS):
                return message
    return None


class _Tracker:
    """Continuous stretches per subject: open on a symptom, close when an observation shows it gone."""

    def __init__(self) -> None:
        self.open: dict[str, Stretch] = {}
        self.done: list[Stretch] = []

    def see(self, subject: str, symptom: bool, at: float) -> None:
        if symptom and subject not in self.open:
            self.open[subject] = Stretch(subject, at)
        elif not symptom and subject in self.open:
            stretch = self.open.pop(subject)
            stretch.ended = at
            self.done.append(stretch)

    def longest(self, end: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for stretch in [*self.done, *self.open.values()]:
            out[stretch.subject] = max(out.get(stretch.subject, 0.0), stretch.length(end))
        return out


class NoSilentCapacityLossParams(CheckParams):
    """No node with fewer allocatable GPUs than its instance type has, no Pending for Insufficient GPUs."""

    within: Duration = Field(300.0, gt=0)


@register
class NoSilentCapacityLoss(Check):
    name = "no-silent-capacity-loss"
    params_model = NoSilentCapacityLossParams
    params: NoSilentCapacityLossParams

    def evaluate(self, evidence: Evidence):
        limit = evidence.wall(self.params.within)
        end = evidence.run_ended or max((o.at for o in evidence.timeline.observations), default=0.0)
        nodes, pending, orphans = _Tracker(), _Tracker(), _Tracker()
        node_state: dict[tuple[str, str], tuple[bool, int | None]] = {}
        pod_node: dict[tuple[str, str], tuple[str, int]] = {}
        observations = sorted(evidence.timeline.observations, key=lambda o: o.at)
        if not any(o.kind == "Node" for o in observations):
            return self.inconclusive("the watches saw no node: nothing shows whether GPUs went missing",
                                     limit_s=limit)
        most_by_type: dict[str, int] = {}
        for obs in observations:
            if obs.kind == "Node" and obs.type != "DELETED":
                kind = (obs.obj.metadata.labels or {}).get(INSTANCE_TYPE, "")
                most_by_type[kind] = max(most_by_type.get(kind, 0), _capacity(obs.obj) or 0)
        unjudged: set[str] = set()
        for obs in observations:
            if obs.kind == "Node":
                key = (obs.context, obs.name)
                subject = f"{obs.context}/{obs.name}"
                if obs.type == "DELETED":
                    node_state.pop(key, None)
                    nodes.see(subject, False, obs.at)
                    continue
                labels = obs.obj.metadata.labels or {}
                kind = labels.get(INSTANCE_TYPE, "")
                expected = GPUS_BY_INSTANCE_TYPE.get(kind) or most_by_type.get(kind) or None
                if expected is None and kind.startswith(GPU_FAMILIES):
                    unjudged.add(f"{subject} ({kind or 'no instance type'})")
                ready, gpus = _ready(obs.obj), _allocatable(obs.obj)
                node_state[key] = (ready, gpus)
                nodes.see(subject, expected is not None and ready and gpus is not None and gpus < expected, obs.at)
                for (ctx, pod), (node, _) in list(pod_node.items()):
                    if ctx == obs.context and node == obs.name:
                        orphans.see(f"{ctx}/{pod}", ready and gpus == 0, obs.at)
            elif obs.kind == "Pod":
                subject = f"{obs.context}/{obs.namespace}/{obs.name}"
                pod = obs.obj
                gone = obs.type == "DELETED"
                need = 0 if gone else _gpu_request(pod)
                pending.see(subject, need > 0 and _pending_for_gpus(pod) is not None, obs.at)
                running = (not gone and need > 0 and pod.spec.node_name and pod.status is not None
                           and pod.status.phase == "Running" and not pod.metadata.deletion_timestamp)
                if running:
                    pod_node[(obs.context, f"{obs.namespace}/{obs.name}")] = (pod.spec.node_name, need)
                    ready, gpus = node_state.get((obs.context, pod.spec.node_name), (False, None))
                    orphans.see(f"{obs.context}/{obs.namespace}/{obs.name}", ready and gpus == 0, obs.at)
                else:
                    pod_node.pop((obs.context, f"{obs.namespace}/{obs.name}"), None)
                    orphans.see(f"{obs.context}/{obs.namespace}/{obs.name}", False, obs.at)
        short = nodes.longest(end)
        waiting = pending.longest(end)
        stranded = orphans.longest(end)
        figures = {"nodes_short_of_gpus_s": {k: round(v, 3) for k, v in short.items()},
                   "pods_pending_for_gpus_s": {k: round(v, 3) for k, v in waiting.items()},
                   "gpu_pods_on_gpuless_nodes_s": {k: round(v, 3) for k, v in stranded.items()}, "limit_s": limit,
                   "nodes_unjudged": sorted(unjudged)}
        failures = []
        for label, table in (("Ready with fewer GPUs than its type has", short),
                             (f"Pending for {INSUFFICIENT}", waiting), ("running on a node without GPUs", stranded)):
            over = {k: v for k, v in table.items() if v > limit}
            if over:
                worst, took = max(over.items(), key=lambda kv: kv[1])
                more = f" (+{len(over) - 1} more)" if len(over) > 1 else ""
                failures.append(f"{worst} {label} for {took:.2f} s{more}")
        if failures:
            return self.result(False, f"silent GPU capacity loss longer than {limit:.2f} s: " + "; ".join(failures),
                               **figures)
        if unjudged:
            return self.inconclusive(f"{len(unjudged)} GPU node(s) of an instance type whose GPU count is unknown and "
                                     f"never registered a GPU in the run: {', '.join(sorted(unjudged)[:3])}", **figures)
        longest = max([*short.values(), *waiting.values(), *stranded.values()], default=0.0)
        return self.result(True, f"no silent GPU capacity loss beyond {limit:.2f} s (longest stretch "
                                 f"{longest:.2f} s over {len(short)} short node(s), {len(waiting)} pending pod(s))",
                           **figures)
