"""capacity-restored: the fleet is back to the serving capacity it had before the fault, within the limit.

Capacity for GPU inference is three things at once, and each can come back without the others:
allocatable `nvidia.com/gpu` on Ready, schedulable nodes (the device plugin registered the GPUs), every node
Ready, and Ready inference pods (a replacement replica holds its GPUs but serves nothing until its model
is loaded: minutes from S3, seconds from local NVMe). The check replays the watch timeline into that
state, takes the state at injection as the baseline, and finds the moment the fleet was back to it for
good (the last recovery after the last shortfall), then confirms it with a final read of the API.

Minimum evidence: an effect of the fault on capacity, seen by the watches: the fleet fell short of its baseline,
or a node the fault touched went NotReady, was cordoned, lost GPUs or left. A fault that showed none of that
(it never reached the fleet, or the watches missed it) leaves nothing restored to judge: inconclusive, never
"never fell short".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.strict.params import CheckParams
from harness.strict.units import Duration

GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class Capacity:
    gpus: int                                   # allocatable GPUs on Ready, schedulable nodes
    serving: int                                # Ready inference pods that are not terminating
    not_ready: tuple[str, ...] = field(default=())

    def covers(self, baseline: "Capacity") -> bool:
        return self.gpus >= baseline.gpus and self.serving >= baseline.serving and not self.not_ready

    def describe(self, baseline: "Capacity | None" = None) -> str:
        if baseline is None:
            return f"{self.gpus} GPUs, {self.serving} replicas Ready, {len(self.not_ready)} node(s) not Ready"
        return (f"{self.gpus}/{baseline.gpus} GPUs allocatable, {self.serving}/{baseline.serving} replicas Ready"
                + (f", not Ready: {', '.join(self.not_ready)}" if self.not_ready else ""))


def _ready(obj: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (obj.status.conditions or []))


def allocatable_gpus(node: Any) -> int:
    try:
        return int(str((node.status.allocatable or {}).get(GPU, "0")))
    except ValueError:
        return 0


def capacity_of(nodes: list[Any], pods: list[Any]) -> Capacity:
    gpus = sum(allocatable_gpus(n) for n in nodes if _ready(n) and not n.spec.unschedulable)
    serving = sum(1 for p in pods if not p.metadata.deletion_timestamp and p.status.phase == "Running" and _ready(p))
    not_ready = tuple(sorted(n.metadata.name for n in nodes if not _ready(n)))
    return Capacity(gpus, serving, not_ready)


def capacity_series(evidence: Evidence) -> list[tuple[float, Capacity]]:
    """The fleet's capacity after every Node and Pod observation, in time order."""
    nodes: dict[tuple[str, str], Any] = {}
    pods: dict[tuple[str, str, str], Any] = {}
    observations = sorted(evidence.timeline.select("Node") + evidence.timeline.select("Pod"), key=lambda o: o.at)
    series: list[tuple[float, Capacity]] = []
    for obs in observations:
        if obs.kind == "Node":
            key: Any = (obs.context, obs.name)
            table: dict[Any, Any] = nodes
        else:
            key, table = (obs.context, obs.namespace or "", obs.name), pods
        if obs.type == "DELETED":
            table.pop(key, None)
        else:
            table[key] = obs.obj
        series.append((obs.at, capacity_of(list(nodes.values()), list(pods.values()))))
    return series


def state_at(series: list[tuple[float, Capacity]], at: float) -> Capacity | None:
    state = None
    for when, capacity in series:
        if when > at:
            break
        state = capacity
    return state


def restored_after(series: list[tuple[float, Capacity]], baseline: Capacity,
                   since: float) -> tuple[float | None, Capacity | None, bool]:
    """(when the fleet was back to `baseline` for good, the lowest state seen, whether it ever fell short).

    None when the last state seen is still short of the baseline."""
    lowest: Capacity | None = None
    restored: float | None = since
    dipped = False
    for when, capacity in series:
        if when < since:
            continue
        if not capacity.covers(baseline):
            dipped, restored = True, None
            if lowest is None or (capacity.gpus, capacity.serving) < (lowest.gpus, lowest.serving):
                lowest = capacity
        elif restored is None:
            restored = when
    return restored, lowest, dipped


def live_capacity(target: Any) -> Capacity:
    """A fresh read of every cluster: the watches may lag, the API is the truth at the end."""
    nodes, pods = [], []
    inference = target.spec.selectors.inference
    for context in target.contexts:
        core = client.CoreV1Api(target.kube(context))
        nodes.extend(core.list_node().items)
        pods.extend(core.list_namespaced_pod(inference.namespace, label_selector=inference.label_selector).items)
    return capacity_of(nodes, pods)


def fault_window(evidence: Evidence) -> tuple[float | None, float | None]:
    """(first injection, first landing or injection) over the run's faults."""
    injected = [f.injected_at for f in evidence.faults if f.injected_at is not None]
    landed = [f.landed_at or f.injected_at for f in evidence.faults if f.injected_at is not None]
    return (min(injected) if injected else None), (min(landed) if landed else None)


def fault_node_effects(evidence: Evidence, since: float) -> str:
    """What the watches saw happen to the nodes the faults touched after `since` (empty: nothing)."""
    seen = []
    for fault in evidence.faults:
        for ref in fault.nodes:
            for obs in evidence.timeline.select("Node", lambda o, r=ref: o.context == r.context and o.name == r.name
                                                and o.at >= since):
                node = obs.obj
                ready = any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
                gpus = int(((node.status.allocatable or {}).get(GPU) or 0))
                if obs.type == "DELETED":
                    seen.append(f"{ref.name} left")
                elif not ready or node.spec.unschedulable or gpus == 0:
                    seen.append(f"{ref.name} {'NotReady' if not ready else 'cordoned' if node.spec.unschedulable else 'lost its GPUs'}")
                if seen:
                    break
    return ", ".join(seen)


class CapacityRestoredParams(CheckParams):
    """Allocatable nvidia.com/gpu back to the expected count, nodes Ready, within the limit."""

    within: Duration = Field(600.0, gt=0)


@register
class CapacityRestored(Check):
    name = "capacity-restored"
    params_model = CapacityRestoredParams
    params: CapacityRestoredParams

    def evaluate(self, evidence: Evidence):
        limit = evidence.wall(self.params.within)
        injected, landed = fault_window(evidence)
        if injected is None or landed is None:
            return self.result(False, "no fault was injected: nothing to restore")
        series = capacity_series(evidence)
        baseline = state_at(series, injected)
        if baseline is None:
            return self.result(False, "the watches saw no node before the fault: no baseline")
        restored, lowest, dipped = restored_after(series, baseline, landed)
        try:
            final = live_capacity(evidence.target)
        except Exception as exc:   # the timeline still judges; say the final read failed
            final, final_error = None, f"{type(exc).__name__}: {exc}"
        else:
            final_error = None
        figures = {"baseline": baseline.__dict__, "lowest": lowest.__dict__ if lowest else None,
                   "final": final.__dict__ if final else None, "final_read_error": final_error,
                   "limit_s": limit, "dipped": dipped}
        if final is not None and not final.covers(baseline):
            return self.result(False, f"not restored at the end of the run: {final.describe(baseline)} "
                                      f"(lowest {lowest.describe(baseline) if lowest else '-'})", **figures)
        if restored is None:
            return self.result(False, f"never back to {baseline.gpus} GPUs and {baseline.serving} Ready replicas "
                                      f"in the run (lowest {lowest.describe(baseline) if lowest else '-'})", **figures)
        took = max(0.0, restored - landed)
        figures["restored_after_s"] = took
        if took > limit:
            return self.result(False, f"capacity back only {took:.2f} s after the fault (limit {limit:.2f} s); "
                                      f"lowest {lowest.describe(baseline) if lowest else '-'}", **figures)
        if not dipped and not (touched := fault_node_effects(evidence, landed)):
            return self.inconclusive(f"the fault had no effect the watches saw (capacity never fell short of "
                                     f"{baseline.gpus} GPUs and {baseline.serving} replicas, and no node it touched "
                                     f"went NotReady, was cordoned, lost GPUs or left): nothing to restore",
                                     **figures)
        how = f"back {took:.2f} s after the fault" if dipped else f"never fell short ({touched})"
        return self.result(True, f"{baseline.gpus} GPUs and {baseline.serving} replicas {how} (limit {limit:.2f} s; "
                                 f"lowest {lowest.describe(baseline) if lowest else '-'})", **figures)
