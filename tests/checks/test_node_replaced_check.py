"""node-replaced judges the first new node of the fault node's nodegroup and the moment it was Ready."""
from __future__ import annotations

from harness.checks.node_replaced import NodeReplaced, NodeReplacedParams
from harness.faults.base import NodeRef
from tests.checks.test_capacity_restored_support import NODEGROUP, Clock, FakeFault, evidence, fleet, node

OLD = "ip-10-0-16-4"


def _fault() -> FakeFault:
    return FakeFault(nodes=[NodeRef(context="g7-use2a", name=OLD, nodegroup=NODEGROUP)])


def _check(within_s: float = 300) -> NodeReplaced:
    return NodeReplaced(NodeReplacedParams(within=within_s))


def test_replacement_ready_in_time_passes_with_its_time():
    clock = Clock()
    fleet(clock, [OLD, "ip-10-0-32-4"])
    clock.see(14, node(OLD), "DELETED")
    clock.see(13, node("ip-10-0-16-5", ready=False), "ADDED")
    clock.see(15.2, node("ip-10-0-16-5"))
    result = _check().evaluate(evidence(clock.timeline, [_fault()]))
    assert result.passed, result.reason
    assert result.evidence["nodes"][OLD]["replacement"] == "ip-10-0-16-5"
    assert abs(result.evidence["nodes"][OLD]["ready_after_s"] - 5.0) < 1e-6
    assert "5.00 s" in result.reason


def test_replacement_too_slow_fails_with_numbers():
    clock = Clock()
    fleet(clock, [OLD])
    clock.see(13, node("ip-10-0-16-5", ready=False), "ADDED")
    clock.see(25, node("ip-10-0-16-5"))
    result = _check(within_s=300).evaluate(evidence(clock.timeline, [_fault()]))   # 300 s at 30x = 10 s wall
    assert not result.passed
    assert "Ready after 14.80 s" in result.reason and "10.00 s" in result.reason


def test_node_of_another_nodegroup_or_never_ready_is_no_replacement():
    clock = Clock()
    fleet(clock, [OLD])
    clock.see(12, node("ip-10-0-16-9", nodegroup="g7-use2a-70b-tp"), "ADDED")
    clock.see(13, node("ip-10-0-16-5", ready=False), "ADDED")
    result = _check().evaluate(evidence(clock.timeline, [_fault()]))
    assert not result.passed
    assert "ip-10-0-16-5 joined" in result.reason and "not Ready" in result.reason


def test_a_node_that_existed_before_the_fault_does_not_count():
    clock = Clock()
    fleet(clock, [OLD, "ip-10-0-16-7"])
    clock.see(12, node("ip-10-0-16-7"))          # an old node's status update after the fault
    result = _check().evaluate(evidence(clock.timeline, [_fault()]))
    assert not result.passed and "no new node joined" in result.reason
