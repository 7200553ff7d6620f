"""capacity-restored: GPUs on Ready schedulable nodes, Ready nodes and Ready replicas back to the baseline."""
from __future__ import annotations

from harness.checks.capacity_restored import CapacityRestored, CapacityRestoredParams
from harness.faults.base import NodeRef
from tests.checks.test_capacity_restored_support import Clock, FakeFault, evidence, fleet, node, pod

OLD, OTHER, NEW = "ip-10-0-16-4", "ip-10-0-32-4", "ip-10-0-16-5"


def _spot_story(clock: Clock, replicas_ready_at: float) -> None:
    """Cordon at 10.5, pods gone at 13, node gone at 14, new node Ready at 15, replicas Ready later."""
    fleet(clock, [OLD, OTHER])
    clock.see(10.5, node(OLD, cordoned=True))
    for g in range(8):
        clock.see(13, pod(f"{OLD}-p{g}", OLD), "DELETED")
    clock.see(14, node(OLD), "DELETED")
    clock.see(14.5, node(NEW, ready=False, gpus=0), "ADDED")
    clock.see(15, node(NEW, gpus=8))
    for g in range(8):
        clock.see(15.1, pod(f"{NEW}-p{g}", NEW, ready=False), "ADDED")
        clock.see(replicas_ready_at, pod(f"{NEW}-p{g}", NEW))


def _run(replicas_ready_at: float, within_s: float = 360):
    clock = Clock()
    _spot_story(clock, replicas_ready_at)
    fault = FakeFault(nodes=[NodeRef(context="g7-use2a", name=OLD)])
    return CapacityRestored(CapacityRestoredParams(within=within_s)).evaluate(evidence(clock.timeline, [fault]))


def test_restored_when_the_last_replica_is_ready():
    result = _run(replicas_ready_at=15.6)            # NVMe: half a second of model load
    assert result.passed, result.reason
    assert abs(result.evidence["restored_after_s"] - 5.4) < 1e-6
    assert result.evidence["lowest"]["gpus"] == 8 and result.evidence["baseline"]["serving"] == 16


def test_gpus_back_but_replicas_still_loading_is_not_capacity():
    result = _run(replicas_ready_at=35.0)            # S3: twenty seconds of model load at 30x
    assert not result.passed
    assert "24.80 s" in result.reason and "12.00 s" in result.reason
    assert "replicas Ready" in result.reason


def test_never_restored_names_what_is_missing():
    clock = Clock()
    fleet(clock, [OLD, OTHER])
    clock.see(11, node(OLD, gpus=0))                 # GPUs vanish and never return
    fault = FakeFault(nodes=[NodeRef(context="g7-use2a", name=OLD)])
    result = CapacityRestored(CapacityRestoredParams(within=360)).evaluate(evidence(clock.timeline, [fault]))
    assert not result.passed
    assert "never back to 16 GPUs" in result.reason and "8/16 GPUs" in result.reason


def test_no_dip_passes_and_says_so_when_the_fault_was_seen_acting():
    """A replacement Ready before the old node left (a rebalance done right): no shortfall, but the fault's node
    visibly went, so the unbroken capacity is the deployment's doing."""
    clock = Clock()
    fleet(clock, [OLD, OTHER])
    fleet(clock, ["ip-10-0-16-77"], at=11)            # the replacement first, Ready with its replicas
    clock.see(12, node(OLD), "DELETED")
    for g in range(8):
        clock.see(12, pod(f"{OLD}-p{g}", OLD), "DELETED")
    fault = FakeFault(nodes=[NodeRef(context="g7-use2a", name=OLD)])
    result = CapacityRestored(CapacityRestoredParams(within=360)).evaluate(evidence(clock.timeline, [fault]))
    assert result.passed and f"never fell short ({OLD} left)" in result.reason


def test_a_fault_with_no_visible_effect_is_inconclusive():
    clock = Clock()
    fleet(clock, [OLD, OTHER])
    fault = FakeFault(nodes=[NodeRef(context="g7-use2a", name=OLD)])
    result = CapacityRestored(CapacityRestoredParams(within=360)).evaluate(evidence(clock.timeline, [fault]))
    assert result.status == "inconclusive" and "no effect the watches saw" in result.reason
