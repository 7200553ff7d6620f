"""no-silent-capacity-loss over a watch timeline of real kubernetes client models: a Ready node short of GPUs,
GPU pods Pending only for Insufficient nvidia.com/gpu, and GPU pods running on a node without GPUs are reported
with node and duration; loud states (NotReady, tainted) and short stretches are not."""
from __future__ import annotations

from types import SimpleNamespace

from kubernetes.client import (V1Container, V1Node, V1NodeCondition, V1NodeSpec, V1NodeStatus, V1ObjectMeta, V1Pod,
                               V1PodCondition, V1PodSpec, V1PodStatus, V1ResourceRequirements)

from harness.checks import CHECKS, Evidence
from harness.checks.no_silent_capacity_loss import NoSilentCapacityLossParams
from harness.observe import Observation, Timeline


T0 = 1_800_000_000.0
SCALE = 30.0        # within 120 s deployment time -> 4 s wall
NODE = "ip-10-0-48-4.us-east-2.compute.internal"


def _node(ready: str, gpus: str, itype: str = "g7.48xlarge", name: str = NODE) -> V1Node:
    return V1Node(metadata=V1ObjectMeta(name=name, labels={"node.kubernetes.io/instance-type": itype}),
                  spec=V1NodeSpec(),
                  status=V1NodeStatus(allocatable={"nvidia.com/gpu": gpus, "cpu": "192"},
                                      capacity={"nvidia.com/gpu": gpus, "cpu": "192"},
                                      conditions=[V1NodeCondition(type="Ready", status=ready)]))


def _pod(name: str, *, node: str | None = None, phase: str = "Pending", message: str | None = None) -> V1Pod:
    conditions = []
    if message is not None:
        conditions.append(V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable", message=message))
    return V1Pod(metadata=V1ObjectMeta(name=name, namespace="inference"),
                 spec=V1PodSpec(node_name=node, containers=[V1Container(
                     name="triton", resources=V1ResourceRequirements(limits={"nvidia.com/gpu": "1"}))]),
                 status=V1PodStatus(phase=phase, conditions=conditions))


def _evaluate(observations: list[tuple[float, str, object]], end: float = 20.0, within: float = 120.0):
    timeline = Timeline()
    for at, kind, obj in observations:
        timeline.add(Observation(T0 + at, "g7-use2b", kind, "MODIFIED", obj.metadata.name,
                                 obj.metadata.namespace, obj))
    evidence = Evidence(target=SimpleNamespace(wall_seconds=lambda s: s / SCALE), timeline=timeline, faults=[],
                        load=None, run_started=T0 - 5, run_ended=T0 + end)
    return CHECKS["no-silent-capacity-loss"](NoSilentCapacityLossParams(within=within)).evaluate(evidence)


INSUFFICIENT = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
TAINTED = ("0/2 nodes are available: 1 Insufficient nvidia.com/gpu, "
           "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.")


def test_a_healthy_boot_is_short_and_passes():
    result = _evaluate([(0, "Node", _node("True", "8")), (1, "Node", _node("False", "0")),
                        (4, "Node", _node("True", "0")), (5, "Node", _node("True", "8")),
                        (1.1, "Pod", _pod("p1", message=TAINTED)), (4.1, "Pod", _pod("p1", message=INSUFFICIENT)),
                        (5.1, "Pod", _pod("p1", node=NODE, phase="Running"))])
    assert result.passed, result.reason
    assert abs(result.evidence["nodes_short_of_gpus_s"][f"g7-use2b/{NODE}"] - 1.0) < 1e-6
    assert abs(result.evidence["pods_pending_for_gpus_s"]["g7-use2b/inference/p1"] - 1.0) < 1e-6


def test_a_ready_node_that_never_registers_its_gpus_fails_with_node_and_duration():
    result = _evaluate([(0, "Node", _node("True", "8")), (1, "Node", _node("False", "0")),
                        (4, "Node", _node("True", "0")), (4.1, "Pod", _pod("p1", message=INSUFFICIENT)),
                        (4.1, "Pod", _pod("p2", message=INSUFFICIENT))])
    assert not result.passed
    assert f"g7-use2b/{NODE} Ready with fewer GPUs than its type has for 16.00 s" in result.reason
    assert "Pending for Insufficient nvidia.com/gpu for 15.90 s (+1 more)" in result.reason


def test_a_node_that_is_loudly_down_is_not_silent():
    result = _evaluate([(0, "Node", _node("True", "8")), (1, "Node", _node("False", "0")),
                        (1.1, "Pod", _pod("p1", message=TAINTED))])
    assert result.passed, result.reason


def test_a_smaller_type_is_judged_against_its_own_gpu_count():
    assert _evaluate([(0, "Node", _node("True", "2", itype="g7.12xlarge"))]).passed
    result = _evaluate([(0, "Node", _node("True", "1", itype="g7.12xlarge"))])
    assert not result.passed and "for 20.00 s" in result.reason


def test_gpu_pods_running_on_a_node_without_gpus_are_reported():
    result = _evaluate([(0, "Node", _node("False", "0")), (1, "Pod", _pod("p1", node=NODE, phase="Running")),
                        (2, "Node", _node("True", "0"))], end=10.0, within=60.0)
    assert not result.passed and "inference/p1 running on a node without GPUs for 8.00 s" in result.reason


def test_an_empty_watch_timeline_is_inconclusive():
    result = _evaluate([])
    assert result.status == "inconclusive" and "saw no node" in result.reason


def test_an_unknown_gpu_instance_type_is_judged_by_what_its_fleet_registered():
    """A size missing from the table: another node of that size registered 4 GPUs, so a Ready one with 0 is short."""
    result = _evaluate([(0, "Node", _node("True", "4", itype="g7.24xlarge-new", name="peer")),
                        (1, "Node", _node("True", "0", itype="g7.24xlarge-new"))], end=20.0)
    assert result.failed and "Ready with fewer GPUs than its type has" in result.reason


def test_a_gpu_node_whose_count_cannot_be_known_is_inconclusive_not_skipped():
    result = _evaluate([(0, "Node", _node("True", "0", itype="g9.metal"))])
    assert result.status == "inconclusive" and "g9.metal" in result.reason
