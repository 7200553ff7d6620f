"""traffic-failover judged on per-attempt records as the load process writes them: when the lost zone stopped
being sent traffic, the failover error budget, and traffic coming back after the revert."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from harness.checks import CHECKS, Evidence
from harness.checks.traffic_failover import TrafficFailoverParams
from harness.faults import FaultTimes
from harness.observe import Timeline


T0 = 1_800_000_000.0
SCALE = 30.0         # 40 s deployment time -> 1.33 s wall


def _target():
    return SimpleNamespace(served_by_headers=["x-served-by-pod", "x-served-by-node", "x-served-by-az"],
                           wall_seconds=lambda s: s / SCALE)


def _attempt(at: float, az: str | None, error: str | None = None, key: str | None = None, attempt: int = 1,
             status: int | None = None) -> dict:
    return {"key": key or f"k{at}-{az}-{attempt}", "attempt": attempt,
            "status": status if status is not None else (0 if az is None else 200),
            "served_by": {"x-served-by-az": az} if az else {}, "t_start": T0 + at, "t_end": T0 + at + 0.5,
            "error": error, "window": "fault:az-loss"}


def _steady(start: float, end: float, step: float = 0.1) -> list[dict]:
    out, t = [], start
    while t < end:
        out.append(_attempt(t, "us-east-2b"))
        t += step
    return out


def _evaluate(tmp_path: Path, records: list[dict], *, reverted: float | None = 8.0, end: float = 12.0,
              zone: str | None = "us-east-2a", **params):
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    fault = SimpleNamespace(name="az-loss", params=SimpleNamespace(zone=zone), injected_at=T0 + 0.05,
                            times=FaultTimes(lost_at=T0 if zone else None,
                                             revert_started_at=None if reverted is None else T0 + reverted),
                            reverted_at=None if reverted is None else T0 + reverted + 0.1,
                            landed_at=T0 + 1.0)
    evidence = Evidence(target=_target(), timeline=Timeline(), faults=[fault],
                        load=SimpleNamespace(records_path=path), run_started=T0 - 5, run_ended=T0 + end)
    check = CHECKS["traffic-failover"](TrafficFailoverParams(**{"within": 40.0, "error_budget": 0.05, **params}))
    return check.evaluate(evidence)


def _failover(left_after: float, hung: bool = False) -> list[dict]:
    records = _steady(-2, 12)
    t = 0.0
    while t < left_after:
        records.append(_attempt(t, None, "timeout") if hung else _attempt(t, "us-east-2a"))
        t += 0.2
    records += [_attempt(t, "us-east-2a") for t in (8.5, 9.0, 10.0)]     # back after the revert
    return records


def test_traffic_that_leaves_the_zone_within_the_limit_passes(tmp_path: Path):
    # one that began just before the revert was answered by the zone after it came back: not held against it
    result = _evaluate(tmp_path, _failover(1.0) + [_attempt(7.95, "us-east-2a")])
    assert result.passed, result.reason
    zone = result.evidence["zones"]["us-east-2a"]
    assert zone["late_attempts"] == 0 and 0.7 < zone["last_sent_after_s"] < 1.0
    assert zone["returned_after_s"] == 0.5 and "traffic left us-east-2a after" in result.reason


def test_traffic_still_served_by_the_zone_after_the_limit_fails_with_numbers(tmp_path: Path):
    result = _evaluate(tmp_path, _failover(2.0))
    assert not result.passed
    assert "us-east-2a still sent 4/" in result.reason and "the last 2.00 s after" in result.reason


def test_requests_hanging_without_an_answer_count_as_sent_to_the_dead_zone(tmp_path: Path):
    result = _evaluate(tmp_path, _failover(2.0, hung=True))
    assert not result.passed and "still sent" in result.reason


def test_failed_requests_during_failover_break_the_error_budget(tmp_path: Path):
    records = _failover(0.5)
    records += [_attempt(0.3 + i / 100, "us-east-2b", "truncated", key=f"bad{i}") for i in range(6)]
    result = _evaluate(tmp_path, records)
    assert not result.passed and "failed during failover, budget 5%" in result.reason
    # a retry that succeeded makes the logical request good again
    records = _failover(0.5)
    records += [_attempt(0.3, None, "timeout", key="r", attempt=1), _attempt(1.0, "us-east-2b", key="r", attempt=2)]
    assert _evaluate(tmp_path, records).passed


def test_traffic_that_never_returns_after_the_revert_fails(tmp_path: Path):
    records = [r for r in _failover(1.0) if r["t_start"] < T0 + 8]
    result = _evaluate(tmp_path, records)
    assert not result.passed and "no traffic back to us-east-2a" in result.reason
    # too short a recovery to judge the return: not held against the deployment
    assert _evaluate(tmp_path, records, end=8.5).passed


def test_an_az_loss_that_names_no_zone_fails(tmp_path: Path):
    result = _evaluate(tmp_path, _steady(0, 3), zone=None)
    assert result.failed and "took no zone away" in result.reason


def test_a_fault_that_takes_no_zone_away_is_not_judged(tmp_path: Path):
    """traffic-failover has a rule for az-loss only: a spot interruption in the same run is not applicable."""
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _steady(0, 3)))
    spot = SimpleNamespace(name="spot-interruption", params=SimpleNamespace(), injected_at=T0, times=FaultTimes(),
                           landed_at=T0 + 0.1, nodes=[])
    evidence = Evidence(target=_target(), timeline=Timeline(), faults=[spot],
                        load=SimpleNamespace(records_path=str(path)), run_ended=T0 + 3)
    result = CHECKS["traffic-failover"](TrafficFailoverParams()).evaluate(evidence)
    assert result.status == "not-applicable" and "no rule for spot-interruption" in result.reason


def test_no_request_while_the_zone_was_lost_is_inconclusive(tmp_path: Path):
    """Load that stopped before the loss: no attempt in the failover window is no 0 % error rate."""
    result = _evaluate(tmp_path, _steady(-2, -0.5), reverted=None)
    assert result.status == "inconclusive" and "too few to judge a failover" in result.reason
