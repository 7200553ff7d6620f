"""The stop_when grammar: a fixed metric set, a hand-written tokenizer, nothing ever evaluated."""
from __future__ import annotations

import pytest

from harness.scenario.stopwhen import StopWhenError, parse_stop_condition


@pytest.mark.parametrize("text,metric,op,threshold,for_s", [
    ("error_rate > 20% for 30s", "error_rate", ">", 0.2, 30.0),
    ("error_rate>=0.05", "error_rate", ">=", 0.05, 0.0),
    ("ttft_p99 > 800ms for 1m", "ttft_p99", ">", 0.8, 60.0),
    ("tbt_p99 >= 0.2s", "tbt_p99", ">=", 0.2, 0.0),
    ("  tbt_p99 < 1s  ", "tbt_p99", "<", 1.0, 0.0),
    ("error_rate <= 1.5% for 500ms", "error_rate", "<=", 0.015, 0.5),
])
def test_accepts(text, metric, op, threshold, for_s):
    condition = parse_stop_condition(text)
    assert (condition.metric, condition.op, condition.for_s) == (metric, op, for_s)
    assert condition.threshold == pytest.approx(threshold)
    assert condition.text == text.strip()


@pytest.mark.parametrize("text,alarm,for_s", [
    ("alarm:g7-use2a-gpu-ecc-dbe", "g7-use2a-gpu-ecc-dbe", 0.0),
    ("alarm:g7-use2a-efa-errors == ALARM for 30s", "g7-use2a-efa-errors", 30.0),
])
def test_alarm_conditions(text, alarm, for_s):
    condition = parse_stop_condition(text)
    assert (condition.metric, condition.alarm, condition.for_s) == ("alarm", alarm, for_s)
    assert condition.breached(True) and not condition.breached(False)


@pytest.mark.parametrize("text,column", [
    ("__import__('os').system('x') > 1", 1),   # not a metric; never evaluated
    ("error_rate > 20", 14),                    # 20 is more than 100% as a fraction
    ("error_rate > 20ms", 14),
    ("ttft_p99 > 800", 12),                     # a latency needs a unit
    ("ttft_p99 > 5%", 12),
    ("ttft_p99 == 1s", 10),
    ("ttft_p99 > ", 12),
    ("gpu_util > 5%", 1),
    ("error_rate > 5% for", 20),
    ("error_rate > 5% for 1d", 21),
    ("error_rate > 5% and ttft_p99 > 1s", 17),
    ("error_rate > 5%; rm -rf /", 16),
    ("alarm:", 7),
    ("alarm:x != ALARM", 9),
    ("", 1),
])
def test_rejects_with_column(text, column):
    with pytest.raises(StopWhenError) as info:
        parse_stop_condition(text)
    assert info.value.column == column


def test_long_conditions_are_refused_without_parsing():
    with pytest.raises(StopWhenError, match="longer than"):
        parse_stop_condition("error_rate > 5% " + "x" * 10_000)


def test_breached_compares_with_the_operator():
    condition = parse_stop_condition("error_rate > 20%")
    assert condition.breached(0.21) and not condition.breached(0.2)
    assert parse_stop_condition("ttft_p99 <= 1s").breached(1.0)
