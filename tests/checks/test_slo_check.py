"""slo judged on the load's own per-window figures; a saturated load generator is never blamed on the deployment."""
from types import SimpleNamespace

from harness.checks.base import Evidence
from harness.checks.slo import Slo, SloParams
from harness.load.recorder import WindowFigures



def _evidence(*windows: WindowFigures, whole: WindowFigures | None = None) -> Evidence:
    load = SimpleNamespace(windows=list(windows), whole=whole or windows[0])
    return Evidence(target=None, timeline=None, faults=[], load=load)


def test_passes_within_limits():
    w = WindowFigures(window="whole", requests=300, errors=1, error_rate=1 / 300, ttft_p99_ms=80, tbt_p99_ms=22)
    result = Slo(SloParams()).evaluate(_evidence(w))
    assert result.passed and "TBT p99 22.0 ms" in result.reason


def test_fails_with_numbers_on_tbt_breach():
    w = WindowFigures(window="whole", requests=300, ttft_p99_ms=80, tbt_p99_ms=73.4)
    result = Slo(SloParams()).evaluate(_evidence(w))
    assert not result.passed and "tbt_p99 73.4 ms > 50 ms" in result.reason


def test_fails_on_error_rate_even_when_the_load_generator_lagged():
    w = WindowFigures(window="whole", requests=100, errors=5, error_rate=0.05, ttft_p99_ms=80, tbt_p99_ms=22,
                      loop_lag_p99_ms=30, degraded="event-loop lag p99 30 ms > 5 ms")
    assert not Slo(SloParams()).evaluate(_evidence(w)).passed


def test_a_breach_within_the_load_generators_own_lag_is_not_blamed_on_the_deployment():
    w = WindowFigures(window="whole", requests=300, ttft_p99_ms=80, tbt_p99_ms=57.2, loop_lag_p99_ms=16.4,
                      degraded="event-loop lag p99 16.4 ms > 5 ms")
    result = Slo(SloParams()).evaluate(_evidence(w))
    assert result.passed and "not judged against the deployment" in result.reason
    far = WindowFigures(window="whole", requests=300, ttft_p99_ms=80, tbt_p99_ms=120.0, loop_lag_p99_ms=16.4,
                        degraded="event-loop lag p99 16.4 ms > 5 ms")
    assert not Slo(SloParams()).evaluate(_evidence(far)).passed


def test_each_window_is_judged_on_its_own():
    ok = WindowFigures(window="steady", requests=100, ttft_p99_ms=60, tbt_p99_ms=20)
    bad = WindowFigures(window="fault:efa-saturation", requests=100, ttft_p99_ms=900, tbt_p99_ms=20)
    result = Slo(SloParams(window="each")).evaluate(_evidence(ok, bad))
    assert not result.passed and "fault:efa-saturation ttft_p99 900.0 ms > 500 ms" in result.reason


def test_the_whole_run_owes_its_tail_to_the_largest_lag_of_its_windows():
    """A steady window whose load generator lagged 43 ms, a whole run whose merged lag p99 is 12 ms: a whole TBT p99
    of 63 ms may be the load generator's own (each window's excuse is its own lag; the whole's is their largest).
    Beyond that largest lag, it is the deployment's."""
    steady = WindowFigures(window="steady", requests=200, ttft_p99_ms=90, tbt_p99_ms=80.0, loop_lag_p99_ms=43.2,
                           degraded="event-loop lag p99 43.2 ms > 5 ms")
    fault = WindowFigures(window="fault:spot-interruption", requests=200, ttft_p99_ms=90, tbt_p99_ms=30.0,
                          loop_lag_p99_ms=8.9, degraded="event-loop lag p99 8.9 ms > 5 ms")
    whole = WindowFigures(window="whole", requests=400, ttft_p99_ms=90, tbt_p99_ms=63.4, loop_lag_p99_ms=12.2,
                          degraded="event-loop lag p99 12.2 ms > 5 ms")
    result = Slo(SloParams()).evaluate(_evidence(steady, fault, whole=whole))
    assert result.passed and "own lag 43.2 ms" in result.reason
    beyond = whole.model_copy(update={"tbt_p99_ms": 95.0})
    result = Slo(SloParams()).evaluate(_evidence(steady, fault, whole=beyond))
    assert not result.passed and "beyond the load generator's own lag 43.2 ms" in result.reason
    clean = steady.model_copy(update={"degraded": None})   # a window that did not lag excuses nothing
    result = Slo(SloParams()).evaluate(_evidence(clean, fault, whole=whole))
    assert not result.passed and "own lag 12.2 ms" in result.reason
