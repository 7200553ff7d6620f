"""session-continuity compares moved follow-ups (deep in a conversation) with follow-ups that paid no
re-prefill: before the fault, and of unmoved conversations meanwhile."""
from __future__ import annotations

from typing import Any

from harness.checks.session_continuity import SessionContinuity, SessionContinuityParams
from harness.faults.base import NodeRef
from tests.checks.test_capacity_restored_support import T0, Clock, FakeFault, evidence

SPOT, OTHER = "ip-10-0-16-4", "ip-10-0-32-4"


def rec(session: str, turn: int, at: float, node: str, ttft: float, **extra: Any) -> dict[str, Any]:
    return {"session": session, "turn": turn, "t_start": T0 + at, "t_end": T0 + at + 0.5, "ttft_ms": ttft,
            "served_by": {"x-served-by-node": node}, "error": None, "canary": None, **extra}


def _records(moved_ttft: float, unmoved_ttft: float = 41.0) -> list[dict[str, Any]]:
    out = []
    for s in range(7):                                   # conversations on the spot node, then moved
        node = SPOT if s < 4 else OTHER
        for turn in range(4):
            out.append(rec(f"s{s}", turn, 2 + 2 * turn, node, 60.0 if turn == 0 else 40.0))
        out.append(rec(f"s{s}", 4, 12, OTHER, moved_ttft if s < 4 else unmoved_ttft))
    out.append(rec("late", 1, 12, OTHER, 500.0))          # a short history that moved: not judged
    out.append(rec("late", 0, 6, SPOT, 50.0))
    out.append(rec("s0", 5, 13, OTHER, 900.0, error="timeout"))
    return out


def _evaluate(tmp_path, records, cap: float = 2.0):
    fault = FakeFault(nodes=[NodeRef(context="g7-use2a", name=SPOT)])
    ev = evidence(Clock().timeline, [fault], records=records, tmp=tmp_path)
    return SessionContinuity(SessionContinuityParams(max_ttft_ratio=cap)).evaluate(ev)


def test_restored_caches_pass(tmp_path):
    result = _evaluate(tmp_path, _records(moved_ttft=48.0))
    assert result.passed, result.reason
    figures = result.judgements[0].evidence
    assert figures["judged"] == 4 and figures["ratio"] == 1.171 and figures["concurrent_follow_ups"] == 3
    assert "1.17x" in result.reason


def test_full_reprefill_fails_with_the_ratio(tmp_path):
    result = _evaluate(tmp_path, _records(moved_ttft=130.0))
    assert not result.passed
    assert "4 moved follow-up(s)" in result.reason and "130.0 ms vs 41.0 ms" in result.reason and "3.17x" in result.reason


def test_a_fleet_slow_for_everyone_after_the_fault_is_not_lost_context(tmp_path):
    """Moved and unmoved follow-ups alike at 3x the pre-fault TTFT (a smaller fleet, a busy machine): no
    conversation paid more than the others, so nothing was re-prefilled."""
    result = _evaluate(tmp_path, _records(moved_ttft=125.0, unmoved_ttft=120.0))
    assert result.passed, result.reason
    assert "120.0 ms (of 3 unmoved follow-ups meanwhile) = 1.04x" in result.reason


def test_a_reprefill_shows_against_a_slow_fleet_too(tmp_path):
    result = _evaluate(tmp_path, _records(moved_ttft=400.0, unmoved_ttft=120.0))
    assert not result.passed
    assert "400.0 ms vs 120.0 ms (of 3 unmoved follow-ups meanwhile) = 3.33x > 2x" in result.reason


def test_without_conversations_the_check_says_how_to_fix_the_scenario(tmp_path):
    records = [{"t_start": T0 + 1, "t_end": T0 + 2, "ttft_ms": 30.0, "error": None, "served_by": {}}]
    result = _evaluate(tmp_path, records)
    assert not result.passed and "load.conversations" in result.reason


def test_no_conversation_moved_is_not_a_pass(tmp_path):
    records = [rec("a", t, 2 + 2 * t, OTHER, 40.0) for t in range(6)]
    result = _evaluate(tmp_path, records)
    assert not result.passed and "moved off" in result.reason


def _evaluate_faults(tmp_path, run_faults, records, **params):
    ev = evidence(Clock().timeline, run_faults, records=records, tmp=tmp_path)
    return SessionContinuity(SessionContinuityParams(max_ttft_ratio=2.0, **params)).evaluate(ev)


def test_a_double_bit_error_is_not_judged_by_the_spot_rule(tmp_path):
    """After a DBE a re-prefill is right (the GPU's KV cache cannot be trusted): the check has no rule for it."""
    ecc = FakeFault(name="ecc-double-bit-error", nodes=[NodeRef(context="g7-use2a", name=SPOT)])
    result = _evaluate_faults(tmp_path, [ecc], _records(moved_ttft=130.0))
    assert result.status == "not-applicable" and not result.passed and not result.failed
    assert "no rule for ecc-double-bit-error" in result.reason


def test_each_fault_is_judged_by_its_own_rule_when_composed(tmp_path):
    """An ECC fault and a spot fault in one run: only the spot fault is judged, and it passes on its own."""
    ecc = FakeFault(name="ecc-double-bit-error", nodes=[NodeRef(context="g7-use2a", name="ip-10-0-16-9")])
    spot = FakeFault(nodes=[NodeRef(context="g7-use2a", name=SPOT)])
    spot.index, ecc.index = 1, 0
    result = _evaluate_faults(tmp_path, [ecc, spot], _records(moved_ttft=48.0))
    assert result.status == "pass", result.reason
    assert [(j.index, j.fault, j.status) for j in result.judgements] == [
        (0, "ecc-double-bit-error", "not-applicable"), (1, "spot-interruption", "pass")]


def test_a_scope_that_leaves_the_spot_fault_out_judges_nothing(tmp_path):
    spot = FakeFault(nodes=[NodeRef(context="g7-use2a", name=SPOT)])
    result = _evaluate_faults(tmp_path, [spot], _records(moved_ttft=130.0), faults=[3])
    assert result.status == "not-applicable" and "scope" in result.reason
    scoped_in = _evaluate_faults(tmp_path, [spot], _records(moved_ttft=130.0), faults=["spot-interruption"])
    assert scoped_in.failed
