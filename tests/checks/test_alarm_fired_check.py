"""alarm-fired judged from the samples its poller took: an entry into ALARM counts from the fault's injection on,
also when it came before the harness confirmed the fault had landed; an alarm that was in ALARM before the fault
counts only if it left and entered again; one that never entered, or entered too late, fails with the numbers.

The samples are fed to `observe` directly (the poller's only input); the end-to-end pass and fail are the
matrix's efa-saturation, ECC and thermal cells."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from harness.checks.alarm_fired import AlarmFired, AlarmFiredParams
from harness.checks.base import Evidence


INJECTED, LANDED = 1000.0, 1001.2       # an all_reduce_perf run confirms the fault 1.2 s after it began:
                                        # an ALARM seen at 1000.1 came more than a second before that
NAME = "g7-use2a-efa-errors"


def _check(*samples: tuple[float, str, float | None]) -> AlarmFired:
    check = AlarmFired(AlarmFiredParams(metric="EFA/ErrorCount", within=180))
    check.entered, check.last_state, check.known = {}, {}, set()
    for seen_at, state, updated in samples:
        stamp = dt.datetime.fromtimestamp(updated, dt.timezone.utc) if updated is not None else None
        check.observe({"AlarmName": NAME, "StateValue": state, "StateUpdatedTimestamp": stamp}, seen_at)
    return check


def _evidence() -> Evidence:
    fault = SimpleNamespace(injected_at=INJECTED, landed_at=LANDED, unobservable={})
    target = SimpleNamespace(wall_seconds=lambda seconds: seconds / 30.0)      # the twin's time scale
    return Evidence(target=target, timeline=None, faults=[fault], load=None)


def test_an_alarm_that_fired_between_injection_and_confirmation_counts():
    check = _check((999.0, "OK", 990.0), (1000.1, "ALARM", 1000.05), (1001.5, "ALARM", 1000.05))
    result = check.evaluate(_evidence())
    assert result.passed, result.reason
    assert "in ALARM 0.00 s after the fault landed" in result.reason


def test_an_alarm_in_alarm_before_the_fault_does_not_count_until_it_enters_again():
    stale = _check((999.0, "ALARM", 900.0), (1002.0, "ALARM", 900.0))
    result = stale.evaluate(_evidence())
    assert not result.passed and "never went to ALARM within 6.00 s" in result.reason
    again = _check((999.0, "ALARM", 900.0), (1001.0, "OK", 1000.9), (1003.0, "ALARM", 1002.9))
    result = again.evaluate(_evidence())
    assert result.passed and "1.80 s after the fault landed" in result.reason


def test_an_alarm_that_never_fired_or_fired_late_fails_with_the_numbers():
    never = _check((999.0, "OK", 990.0), (1005.0, "OK", 990.0))
    assert not never.evaluate(_evidence()).passed
    late = _check((999.0, "OK", 990.0), (1009.2, "ALARM", 1009.1))
    result = late.evaluate(_evidence())
    assert not result.passed and "went to ALARM only after 8.00 s (limit 6.00 s)" in result.reason


def test_an_alarm_metric_the_exporter_cannot_show_is_reported_unobservable_not_silent():
    """A DCGM injection the node's dcgm-exporter cannot see (embedded hostengine) never reaches CloudWatch: the
    verdict says the metric was unobservable with this exporter, naming why, instead of blaming the alarm."""
    check = AlarmFired(AlarmFiredParams(metric="DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", within=180))
    check.entered, check.last_state, check.known = {}, {}, {"g7-use2a-gpu-ecc-dbe"}
    blind = {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": {"node-a": "dcgm-exporter x: it runs an embedded hostengine"}}
    fault = SimpleNamespace(injected_at=INJECTED, landed_at=LANDED, unobservable=blind)
    target = SimpleNamespace(wall_seconds=lambda seconds: seconds / 30.0)
    result = check.evaluate(Evidence(target=target, timeline=None, faults=[fault], load=None))
    assert not result.passed and result.evidence["observable"] is False
    assert "not observable with this dcgm-exporter configuration" in result.reason and "node-a" in result.reason
    # the same run where the exporter could see it: judged on the alarm as usual
    seen = _check((999.0, "OK", 990.0), (1000.1, "ALARM", 1000.05))
    seen.params = AlarmFiredParams(metric="DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", within=180)
    fault.unobservable = {}
    assert seen.evaluate(Evidence(target=target, timeline=None, faults=[fault], load=None)).passed
