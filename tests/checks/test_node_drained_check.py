"""node-drained judges the pods that were on the faulty node when the fault landed, and those scheduled there after.

A replica count that moves before the fault (an autoscaler's scale-in) changes which pods the drain must remove;
it must neither fail the drain for pods already gone nor let a pod that stayed go unjudged.
"""
from __future__ import annotations

from harness.checks.node_drained import NodeDrained, NodeDrainedParams
from harness.faults.base import NodeRef
from tests.checks.test_capacity_restored_support import NODEGROUP, Clock, FakeFault, evidence, fleet, node, pod

OLD = "ip-10-0-16-4"


def _fault() -> FakeFault:
    return FakeFault(name="ecc-double-bit-error", nodes=[NodeRef(context="g7-use2a", name=OLD, nodegroup=NODEGROUP)])


def _check(within_s: float = 120) -> NodeDrained:      # 120 s at 30x = 4 s wall
    return NodeDrained(NodeDrainedParams(within=within_s))


def _drain(clock: Clock, at: float, names: list[str]) -> None:
    clock.see(at, node(OLD, cordoned=True))
    for name in names:
        clock.see(at + 0.5, pod(name, OLD, terminating=True))
        clock.see(at + 1.0, pod(name, OLD), "DELETED")


def test_pods_scaled_in_before_the_fault_are_not_the_drains_to_remove():
    clock = Clock()
    fleet(clock, [OLD, "ip-10-0-32-4"])
    scaled_in = [f"{OLD}-p{g}" for g in range(4)]
    for name in scaled_in:                              # the autoscaler's scale-in, seconds before the fault
        clock.see(6, pod(name, OLD, terminating=True))
        clock.see(7, pod(name, OLD), "DELETED")
    _drain(clock, 11, [f"{OLD}-p{g}" for g in range(4, 8)])
    result = _check().evaluate(evidence(clock.timeline, [_fault()]))
    assert result.passed, result.reason
    assert abs(result.evidence["nodes"][OLD]["drained_after_s"] - 1.3) < 1e-6


def test_a_pod_left_on_the_node_still_fails_the_drain_with_its_name():
    clock = Clock()
    fleet(clock, [OLD])
    for g in range(4):
        clock.see(6, pod(f"{OLD}-p{g}", OLD), "DELETED")
    _drain(clock, 11, [f"{OLD}-p{g}" for g in range(4, 7)])   # p7 never goes
    result = _check().evaluate(evidence(clock.timeline, [_fault()]))
    assert not result.passed
    assert result.evidence["nodes"][OLD]["pods_left"] == [f"{OLD}-p7"]
    assert "1 GPU pod(s) still there" in result.reason


def test_a_pod_scheduled_on_the_node_after_the_fault_must_go_too():
    clock = Clock()
    fleet(clock, [OLD])
    clock.see(10.5, pod("late", OLD), "ADDED")          # bound before the cordon
    _drain(clock, 11, [f"{OLD}-p{g}" for g in range(8)])
    result = _check().evaluate(evidence(clock.timeline, [_fault()]))
    assert not result.passed
    assert result.evidence["nodes"][OLD]["pods_left"] == ["late"]


def test_a_drain_slower_than_the_limit_fails_with_its_time():
    clock = Clock()
    fleet(clock, [OLD])
    _drain(clock, 16, [f"{OLD}-p{g}" for g in range(8)])
    result = _check().evaluate(evidence(clock.timeline, [_fault()]))
    assert not result.passed
    assert "drained 6.30 s" in result.reason and "4.00 s" in result.reason


def test_a_node_no_pod_was_ever_seen_on_is_inconclusive_not_drained_in_no_time():
    clock = Clock()
    fleet(clock, ["ip-10-0-16-9"])      # the watch saw pods, but none on the fault's node
    clock.see(12, node(OLD, cordoned=True))
    result = _check().evaluate(evidence(clock.timeline, [_fault()]))
    assert result.status == "inconclusive" and f"no pod was ever seen on {OLD}" in result.reason
