"""Synthetic evidence for the node-replaced, capacity-restored, session-continuity and recovery-time checks:
real kubernetes client models on a real Timeline, real load-record files; only the clock is made up."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from harness.checks.base import Evidence
from harness.faults.base import FaultTimes, NodeRef
from harness.observe import Observation, Timeline

T0 = 1_000_000.0
NODEGROUP = "g7-use2a-13b"


def node(name: str, *, ready: bool = True, gpus: int = 8, cordoned: bool = False,
         nodegroup: str = NODEGROUP) -> client.V1Node:
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=name, labels={"eks.amazonaws.com/nodegroup": nodegroup,
                                                        "node.kubernetes.io/instance-type": "g7.48xlarge"}),
        spec=client.V1NodeSpec(unschedulable=cordoned or None),
        status=client.V1NodeStatus(allocatable={"nvidia.com/gpu": str(gpus)},
                                   conditions=[client.V1NodeCondition(type="Ready", status="True" if ready else "False")]))


def pod(name: str, node_name: str, *, ready: bool = True, terminating: bool = False) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, namespace="inference", labels={"app": "triton"},
                                     deletion_timestamp="2026-01-01T00:00:00Z" if terminating else None),
        spec=client.V1PodSpec(node_name=node_name, containers=[client.V1Container(name="triton")]),
        status=client.V1PodStatus(phase="Running",
                                  conditions=[client.V1PodCondition(type="Ready", status="True" if ready else "False")]))


class Clock:
    """Adds observations to a timeline at chosen offsets from T0."""

    def __init__(self) -> None:
        self.timeline = Timeline()

    def see(self, at: float, obj: Any, type_: str = "MODIFIED", context: str = "g7-use2a") -> None:
        kind = "Node" if isinstance(obj, client.V1Node) else "Pod"
        self.timeline.add(Observation(T0 + at, context, kind, type_, obj.metadata.name, obj.metadata.namespace, obj))


@dataclass
class FakeFault:
    name: str = "spot-interruption"
    nodes: list[NodeRef] = field(default_factory=list)
    times: FaultTimes = field(default_factory=FaultTimes)
    unobservable: dict[str, dict[str, str]] = field(default_factory=dict)
    injected_at: float | None = T0 + 10
    landed_at: float | None = T0 + 10.2
    reverted_at: float | None = None


class StubTarget:
    """Time scale 30; no reachable cluster, so checks that read the API at the end judge the timeline alone."""

    time_scale = 30.0
    contexts = ["g7-use2a"]
    served_by_headers = ["x-served-by-pod", "x-served-by-node", "x-served-by-az"]

    def wall_seconds(self, deployment_seconds: float) -> float:
        return deployment_seconds / self.time_scale

    def kube(self, context: str) -> Any:
        raise ConnectionError("no cluster in a unit test")


@dataclass
class FakeLoad:
    records_path: str


def evidence(timeline: Timeline, faults: list[Any], records: list[dict[str, Any]] | None = None,
             tmp: Path | None = None, **kwargs: Any) -> Evidence:
    load = None
    if records is not None:
        assert tmp is not None
        path = tmp / "records.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        load = FakeLoad(str(path))
    return Evidence(target=StubTarget(), timeline=timeline, faults=faults, load=load, **kwargs)


def fleet(clock: Clock, names: list[str], at: float = 0.0) -> None:
    """Nodes with one Ready replica per GPU, as the watches list them at the start."""
    for name in names:
        clock.see(at, node(name), "LISTED")
        for g in range(8):
            clock.see(at, pod(f"{name}-p{g}", name), "LISTED")
