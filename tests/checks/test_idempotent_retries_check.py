"""idempotent-retries: a key executed twice fails; a run with nothing retried, or whose server counters went
unread, is inconclusive rather than a pass."""
from __future__ import annotations

from typing import Any

from harness.checks.idempotent_retries import IdempotentRetries, IdempotentRetriesParams
from tests.checks.test_capacity_restored_support import T0, Clock, FakeFault, evidence


def rec(key: str, at: float, *, ok: bool = True, replayed: bool = False, digest: str = "d1") -> dict[str, Any]:
    return {"key": key, "t_start": T0 + at, "t_end": T0 + at + 0.5, "status": 200 if ok else 0,
            "error": None if ok else "timeout", "tokens": 12 if ok else 0, "digest": digest,
            "served_by": {"idempotent-replayed": "true"} if replayed else {}}


def _check(tmp_path, records, *, samples=None, exposed=None, **params):
    check = IdempotentRetries(IdempotentRetriesParams(**params))
    check.samples, check.exposed, check.failed_reads = list(samples or []), exposed, 0
    return check.evaluate(evidence(Clock().timeline, [FakeFault()], records=records, tmp=tmp_path))


RETRIED_ONCE = [rec("a", 1, ok=False), rec("a", 3, replayed=True), rec("b", 2)]


def test_retries_answered_once_pass(tmp_path):
    result = _check(tmp_path, RETRIED_ONCE)
    assert result.status == "pass" and "1 retried key(s), none executed twice" in result.reason
    assert "client evidence only" in result.reason


def test_a_key_answered_twice_fails(tmp_path):
    result = _check(tmp_path, [rec("a", 1), rec("a", 3), rec("b", 2)])
    assert result.failed and "1 of 1 retried key(s) answered twice" in result.reason


def test_nothing_retried_is_inconclusive_unless_the_scenario_allows_it(tmp_path):
    records = [rec("a", 1), rec("b", 2)]
    result = _check(tmp_path, records)
    assert result.status == "inconclusive" and "0 retried key(s), fewer than the 1" in result.reason
    assert _check(tmp_path, records, min_retried_keys=0).status == "pass"


def test_server_counters_read_once_then_lost_are_inconclusive(tmp_path):
    result = _check(tmp_path, RETRIED_ONCE, samples=[(T0, 10.0)], exposed=True)
    assert result.status == "inconclusive" and "sampled 1 time(s)" in result.reason


def test_server_executions_clients_never_received_fail(tmp_path):
    # 10 completions on the server between the samples, 2 delivered to clients: retried keys ran again
    result = _check(tmp_path, RETRIED_ONCE, samples=[(T0, 0.0), (T0 + 2.0, 10.0)], exposed=True)
    assert result.failed and "ran again" in result.reason
