"""The verdict and exit-code contract (docs/CONTRACTS.md section 3), and result models round-tripping through JSON."""
from __future__ import annotations

import pytest

from harness.report.model import (CheckResult, ExitCode, FaultRecord, GamedayResult, RunResult, StopRecord,
                                  gameday_exit_code, verdict_and_exit_code)

from report_factory import T0, make_run

OK = CheckResult(name="slo", passed=True, reason="ttft p99 310 ms < 500 ms")
BAD = CheckResult(name="node-drained", passed=False, reason="not cordoned after 120 s")
LANDED = FaultRecord(name="ecc-double-bit-error", injected_at=T0, landed=True, landed_at=T0 + 1)
NOT_LANDED = FaultRecord(name="ecc-double-bit-error", injected_at=T0, landed=False)
UNPROVEN = FaultRecord(name="ecc-double-bit-error", injected_at=T0, landed=None)
NOT_INJECTED = FaultRecord(name="ecc-double-bit-error", injected_at=None)
REVERT_FAILED = FaultRecord(name="ecc-double-bit-error", injected_at=T0, landed=True, landed_at=T0 + 1,
                            revert_error="ApiException: 503")
NA = CheckResult(name="session-continuity", passed=False, status="not-applicable", reason="no rule for it")
UNSURE = CheckResult(name="idempotent-retries", passed=False, status="inconclusive", reason="0 retried keys")
STOP = StopRecord(condition="error_rate > 20% for 30s", observed=0.34, threshold=0.2, held_for_s=30.4,
                  reason="error_rate 34.0% > 20% for 30.4 s")


@pytest.mark.parametrize("checks, faults, kwargs, expected", [
    ([OK], [LANDED], {}, ("pass", 0)),
    ([], [], {}, ("inconclusive", 5)),             # no check judged anything: no evidence, no pass
    ([NA], [LANDED], {}, ("inconclusive", 5)),     # every check not applicable: nothing was judged either
    ([OK, NA], [LANDED], {}, ("pass", 0)),
    ([OK, UNSURE], [LANDED], {}, ("inconclusive", 5)),
    ([BAD, UNSURE], [LANDED], {}, ("fail", 1)),    # a proven failure outranks missing evidence
    ([OK], [LANDED], {"missing_evidence": ["load process 1 left no final figures"]}, ("inconclusive", 5)),
    ([OK], [REVERT_FAILED], {}, ("error", 4)),     # a fault that may still be in place is never a pass
    ([OK, BAD], [LANDED], {}, ("fail", 1)),
    ([OK], [NOT_LANDED], {}, ("error", 4)),
    ([OK], [UNPROVEN], {}, ("error", 4)),           # never proven landed is not a pass
    ([OK], [NOT_INJECTED], {}, ("error", 4)),
    ([BAD], [NOT_LANDED], {}, ("error", 4)),        # a failed check does not hide a fault that did not land
    ([OK], [LANDED], {"unreachable": True}, ("error", 4)),
    ([OK], [LANDED], {"error": "kube API refused"}, ("error", 4)),
    ([OK], [LANDED], {"aborted": True}, ("aborted", 3)),
    ([BAD], [NOT_LANDED], {"stop_condition": STOP}, ("aborted", 3)),
    ([], [], {"invalid_input": True, "aborted": True}, ("error", 2)),
])
def test_verdict_and_exit_code(checks, faults, kwargs, expected):
    verdict, code = verdict_and_exit_code(checks, faults, **kwargs)
    assert (verdict, int(code)) == expected
    assert isinstance(code, ExitCode)


def test_build_explains_a_fault_that_did_not_land():
    run = make_run(landed=False)
    assert (run.verdict, run.exit_code) == ("error", 4)
    assert "did not land" in run.error and "ip-10-0-1-12" in run.error
    assert "did not land" in run.summary()


def test_summary_names_failed_checks(failing_run):
    assert failing_run.verdict == "fail" and failing_run.exit_code == 1
    assert failing_run.summary() == "ecc-double-bit-error: fail (node-drained, no-corrupted-responses)"
    assert [c.name for c in failing_run.failed_checks] == ["node-drained", "no-corrupted-responses"]


def test_round_trip_through_json(failing_run):
    text = failing_run.model_dump_json()
    back = RunResult.model_validate_json(text)
    assert back == failing_run
    assert back.checks[1].detail == back.checks[1].reason
    assert back.duration_s == 240.0
    assert back.faults[0].injected_at.timestamp() == T0 + 60


@pytest.mark.parametrize("codes, aborted, expected", [
    ([0, 0], False, 0),
    ([0, 1], False, 1),
    ([1, 4], False, 4),
    ([4, 2, 1], False, 2),
    ([0, 3, 2], False, 3),
    ([0, 0], True, 3),
    ([], False, 0),
    ([0, 5], False, 5),
    ([5, 1], False, 1),
])
def test_gameday_exit_code_is_its_worst_run(codes, aborted, expected):
    verdict_of = {0: "pass", 1: "fail", 2: "error", 3: "aborted", 4: "error", 5: "inconclusive"}
    runs = [RunResult(scenario=f"s{i}", verdict=verdict_of[c], exit_code=c) for i, c in enumerate(codes)]
    assert int(gameday_exit_code(runs, aborted=aborted)) == expected
    day = GamedayResult.from_runs(runs, aborted=aborted)
    assert day.exit_code == expected
    assert day.verdict == verdict_of[expected]
    assert sum(day.counts.values()) == len(runs)


def test_window_metrics_accept_the_load_recorders_degraded_reason():
    from harness.report.model import WindowMetrics

    load_window = {"window": "fault:x", "requests": 10, "errors": 1, "error_rate": 0.1, "ttft_p99_ms": 400.0,
                   "degraded": "loop lag p99 6.1 ms > 5 ms", "attempts": 12, "retries": 2, "first_wall": 1.0}
    window = WindowMetrics.model_validate(load_window)
    assert window.degraded is True and window.degraded_reason == "loop lag p99 6.1 ms > 5 ms"
    assert window.model_dump()["retries"] == 2      # the recorder's extra figures are kept in result.json
    assert WindowMetrics.model_validate({**load_window, "degraded": None}).degraded is False


def test_a_run_without_judged_checks_names_the_missing_evidence():
    run = RunResult.build(scenario="s", checks=[], faults=[LANDED])
    assert (run.verdict, run.exit_code) == ("inconclusive", 5)
    assert run.missing_evidence == ["no check judged anything: none was evaluated"]
    assert "inconclusive (no check judged anything" in run.summary()


def test_a_failed_revert_is_an_error_that_says_to_recover():
    run = RunResult.build(scenario="s", checks=[OK], faults=[REVERT_FAILED])
    assert (run.verdict, run.exit_code) == ("error", 4)
    assert "revert of ecc-double-bit-error failed" in run.error and "g7chaos recover" in run.error
