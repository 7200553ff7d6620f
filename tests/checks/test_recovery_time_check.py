"""recovery-time: from the fault's end (a spot notice's end, else the revert) to steady state again."""
from __future__ import annotations

from harness.checks.recovery_time import RecoveryTime, RecoveryTimeParams
from harness.faults.base import FaultTimes, NodeRef
from tests.checks.test_capacity_restored_support import T0, Clock, FakeFault, evidence, fleet, node, pod

OLD, OTHER, NEW = "ip-10-0-16-4", "ip-10-0-32-4", "ip-10-0-16-5"


def _story(replicas_ready_at: float) -> Clock:
    clock = Clock()
    fleet(clock, [OLD, OTHER])
    clock.see(10.5, node(OLD, cordoned=True))
    for g in range(8):
        clock.see(13, pod(f"{OLD}-p{g}", OLD), "DELETED")
    clock.see(14, node(OLD), "DELETED")
    clock.see(15, node(NEW), "ADDED")
    for g in range(8):
        clock.see(15.1, pod(f"{NEW}-p{g}", NEW, ready=False), "ADDED")
        clock.see(replicas_ready_at, pod(f"{NEW}-p{g}", NEW))
    return clock


def _fault() -> FakeFault:
    return FakeFault(nodes=[NodeRef(context="g7-use2a", name=OLD)], times=FaultTimes(notice_end_at=T0 + 14),
                     reverted_at=T0 + 26)


def _check(within_s: float) -> RecoveryTime:
    return RecoveryTime(RecoveryTimeParams(within=within_s))


def test_whole_before_the_revert_counts_from_the_notice_end():
    clock = _story(replicas_ready_at=15.5)
    ev = evidence(clock.timeline, [_fault()], recovery_started_at=T0 + 26, recovered_at=T0 + 28)
    result = _check(within_s=120).evaluate(ev)             # 4 s wall
    assert result.passed, result.reason
    assert abs(result.evidence["recovery_s"] - 1.5) < 1e-6


def test_still_loading_at_the_revert_uses_the_runners_moment():
    clock = _story(replicas_ready_at=35.0)
    ev = evidence(clock.timeline, [_fault()], recovery_started_at=T0 + 26, recovered_at=T0 + 35.2)
    result = _check(within_s=240).evaluate(ev)             # 8 s wall
    assert not result.passed
    assert "21.20 s after the fault ended" in result.reason and "8.00 s" in result.reason


def test_runner_never_saw_steady_state_fails():
    clock = _story(replicas_ready_at=40.0)
    ev = evidence(clock.timeline, [_fault()], recovery_started_at=T0 + 26, recovered_at=None)
    result = _check(within_s=240).evaluate(ev)
    assert not result.passed and "not steady again" in result.reason
