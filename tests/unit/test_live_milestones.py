"""The live impact milestone implies the report's: only what makes a request not good in the report (a failure, a
TTFT over the line) announces an impact while the run goes on (harness/run/livemilestones.py)."""
from harness.load.process import LiveFigures
from harness.observe import Timeline
from harness.run.events import RunEvents
from harness.run.livemilestones import LiveMilestones

WINDOW = "fault:ecc-double-bit-error"


def live() -> LiveMilestones:
    return LiveMilestones(RunEvents(), Timeline(), [], scenario="ecc-double-bit-error", time_scale=30.0,
                          slo_ttft_ms=500.0, slo_tbt_ms=50.0, limits=[])


def test_a_failed_request_or_a_late_first_token_is_an_impact() -> None:
    assert live()._impact(LiveFigures(window=WINDOW, requests=40, errors=1), "ecc-double-bit-error")
    assert "TTFT p99 612 ms" in live()._why(LiveFigures(window=WINDOW, requests=40, ttft_p99_ms=612.0))


def test_a_slow_gap_between_tokens_is_not_an_impact_the_report_would_deny() -> None:
    """TBT p99 over the line with every request's TTFT in time: the report judges pace by time per output token,
    so a live impact here would be one the report then calls absent."""
    figures = LiveFigures(window=WINDOW, requests=40, ttft_p99_ms=80.0, tbt_p99_ms=135.0)
    assert not live()._impact(figures, "ecc-double-bit-error")


def test_figures_of_another_window_say_nothing_of_this_fault() -> None:
    assert not live()._impact(LiveFigures(window="steady", requests=40, errors=3), "ecc-double-bit-error")
