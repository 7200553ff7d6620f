"""Recorder, self-monitor, spec and the stream parser's helpers, without processes."""
from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harness.load.recorder import (HIGHEST_US, MergedWindow, Recorder, SelfMonitor, clamp_us, decode_histogram,
                                   encode_histogram, merge_snapshots, new_histogram, percentiles_ms, percentiles_us)
from harness.load.spec import LoadSpec
from harness.load.stream import _string_end


def test_windows_split_samples_by_name_and_return_appends() -> None:
    rec = Recorder("steady")
    rec.current.ttft.record_value(50_000)
    rec.switch("fault:ecc")
    rec.current.ttft.record_value(400_000)
    rec.current.ttft.record_value(410_000)
    rec.switch("steady")
    rec.current.ttft.record_value(51_000)
    names = [w["name"] for w in rec.snapshot()["windows"]]
    assert names == ["steady", "fault:ecc"]
    merged = merge_snapshots([rec.snapshot()])
    assert merged["steady"].hist["ttft"].get_total_count() == 2
    assert merged["fault:ecc"].metrics().ttft_p50_ms == pytest.approx(400.0, rel=2e-3)


def test_merge_across_processes_is_exact() -> None:
    rng = random.Random(1)
    recs = [Recorder("w") for _ in range(3)]
    single = new_histogram()
    for rec in recs:
        for _ in range(5000):
            v = int(rng.lognormvariate(10, 1)) + 1
            rec.current.tbt.record_value(v)
            single.record_value(v)
        rec.current.requests += 7
        rec.current.errors += 1
    merged = merge_snapshots(r.snapshot() for r in recs)["w"]
    m = merged.metrics()
    assert m.requests == 21 and m.errors == 3 and m.error_rate == pytest.approx(3 / 21, abs=1e-6)
    assert merged.hist["tbt"].get_total_count() == single.get_total_count() == 15000
    for pct in (50, 90, 99, 99.9):
        assert merged.hist["tbt"].get_value_at_percentile(pct) == single.get_value_at_percentile(pct)
    again = decode_histogram(merged.encoded()["tbt"])
    assert again.get_value_at_percentile(99) == single.get_value_at_percentile(99)


def test_hdr_p99_is_not_bucketed() -> None:
    hist = new_histogram()
    for _ in range(99):
        hist.record_value(20_000)
    hist.record_value(504_000)
    hist.record_value(504_000)
    window = MergedWindow("x")
    window.hist["ttft"] = hist
    assert window.metrics().ttft_p99_ms == pytest.approx(504.0, rel=1e-3)   # Locust would say 500


def test_self_monitor_flags_lag_and_cpu() -> None:
    rec = Recorder("steady")
    mon = SelfMonitor(rec, lag_limit_ms=3.0, cpu_limit=0.7)
    for _ in range(200):
        mon.observe(0.0002)
    mon.evaluate()
    assert mon.degraded is None and rec.current.degraded is None
    for _ in range(100):
        mon.observe(0.012)
    mon.evaluate()
    assert mon.degraded is None, "one high evaluation is a hiccup, not saturation"
    mon.evaluate()
    assert mon.degraded and "lag p99" in mon.degraded
    assert rec.current.degraded == mon.degraded
    assert rec.snapshot()["windows"][0]["degraded"]


def test_a_window_is_degraded_only_by_lag_inside_it() -> None:
    """The ramp's lag ends with its window: the window after it starts clean (and is degraded when its own
    lag stays high)."""
    rec = Recorder("warmup")
    mon = SelfMonitor(rec, lag_limit_ms=3.0, cpu_limit=0.7)
    for _ in range(200):
        mon.observe(0.020)
    mon.evaluate()
    mon.evaluate()
    assert rec.current.degraded and mon.degraded
    rec.switch("steady")
    for _ in range(200):
        mon.observe(0.0002)
        mon.evaluate()
    assert rec.current.degraded is None and mon.degraded is None and mon.lag_p99_ms < 1
    for _ in range(200):
        mon.observe(0.020)
    mon.evaluate()
    mon.evaluate()
    assert rec.current.degraded and "lag p99 20.0 ms" in rec.current.degraded
    assert rec.windows["warmup"].degraded and rec.windows["steady"].degraded


def test_self_monitor_cpu_must_stay_hot() -> None:
    rec = Recorder("w")
    mon = SelfMonitor(rec, lag_limit_ms=1000, cpu_limit=0.05, cpu_hot_s=0.5)
    import time
    end = time.perf_counter() + 1.3
    next_eval = time.perf_counter() + 0.3
    while time.perf_counter() < end:     # burn CPU: this process is now at ~100% of a core
        sum(range(2000))
        if time.perf_counter() >= next_eval:
            mon.evaluate()
            next_eval += 0.3
    assert mon.degraded and "CPU" in mon.degraded


def test_spec_rules() -> None:
    with pytest.raises(ValidationError):
        LoadSpec(arrival="poisson")
    with pytest.raises(ValidationError):
        LoadSpec(userz=3)
    spec = LoadSpec(chat=True)
    assert spec.path == "/v1/chat/completions"
    assert LoadSpec().retries.on == ["timeout", "5xx"]
    assert LoadSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize("raw,expected", [
    (b'"abc" rest', 4), (b'"a\\"b" x', 5), (b'"a\\\\" x', 4), (b'"\\\\\\"q"', 6)])
def test_string_end_handles_escapes(raw: bytes, expected: int) -> None:
    assert _string_end(raw, 1) == expected


def test_quantised_pending_values_land_in_the_same_buckets() -> None:
    from harness.load.recorder import WindowStats, quantise_us
    rng = random.Random(5)
    values = [rng.randrange(1, 50_000_000) for _ in range(20000)] + list(range(1, 5000))
    direct = new_histogram()
    win = WindowStats("w")
    for v in values:
        direct.record_value(v)
        q = quantise_us(v)
        win.pending_tbt[q] = win.pending_tbt.get(q, 0) + 1
    win.flush()
    assert win.tbt.get_total_count() == direct.get_total_count()
    assert list(win.tbt.counts) == list(direct.counts)
    assert (win.tbt.get_min_value(), win.tbt.get_max_value()) == (direct.get_min_value(), direct.get_max_value())
    assert encode_histogram(win.tbt) == encode_histogram(direct)


def test_a_snapshot_taken_during_a_paused_flush_sees_every_count_so_far() -> None:
    """A live snapshot flushes in slices; the final snapshot may run in one of its pauses."""
    from harness.load.recorder import FLUSH_SLICE, WindowStats
    win = WindowStats("w")
    for v in range(1000, 1000 + 3 * FLUSH_SLICE):
        win.pending_lag[v] = 2
    seen: list[int] = []

    def pause() -> None:
        win.pending_lag[7] = 1                      # a token read in the pause
        seen.append(win.lag.get_total_count())
        win.flush()                                 # the final snapshot, in the pause
    win.flush(pause)
    assert seen == [2 * FLUSH_SLICE, 4 * FLUSH_SLICE + 1]
    assert win.lag.get_total_count() == 6 * FLUSH_SLICE + 2
    assert win.lag.get_min_value() == 7 and win.lag.get_max_value() == 1000 + 3 * FLUSH_SLICE - 1


def test_values_beyond_range_are_clamped_not_dropped() -> None:
    from harness.load.recorder import HIGHEST_US, WindowStats, clamp_us
    win = WindowStats("w")
    win.pending_lag[HIGHEST_US * 5] = 2
    win.flush()
    assert win.lag.get_total_count() == 2
    assert clamp_us(-0.5) == 1 and clamp_us(1e9) == HIGHEST_US


def test_canary_analysis_learns_the_mode_of_the_steady_window_only(tmp_path) -> None:
    import json as _json

    from harness.load.process import analyse_canaries
    rows = [
        {"canary": 0, "error": None, "digest": "a", "window": "steady", "t_end": 1.0, "text": "A"},
        {"canary": 0, "error": None, "digest": "a", "window": "steady", "t_end": 2.0, "text": "A"},
        {"canary": 0, "error": None, "digest": "x", "window": "steady", "t_end": 3.0, "text": "X"},
        {"canary": 0, "error": "stall", "digest": None, "window": "fault", "t_end": 4.0},
        {"canary": 0, "error": None, "digest": "b", "window": "fault", "t_end": 5.0, "text": "B",
         "served_by": {"x-served-by-node": "n1"}},
        {"canary": None, "error": None, "digest": "z", "window": "fault", "t_end": 5.5},
        {"canary": 0, "error": None, "digest": "a", "window": "recovery", "t_end": 6.0, "text": "A"},
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(_json.dumps(r) + "\n" for r in rows) + '{"cut short')
    out = analyse_canaries(path, "steady")
    assert out.learn_window == "steady" and out.learned
    assert out.golden[0].digest == "a" and out.learn_disagreements == 1
    assert out.checked == 2 and out.checked_at == [5.0, 6.0] and out.errored_at == [4.0]
    assert [(m.window, m.digest, m.served_by) for m in out.mismatches] == [("fault", "b", {"x-served-by-node": "n1"})]
    # nothing answered in the steady window: nothing is learned from the fault's answers instead
    path.write_text("".join(_json.dumps({**r, "window": "fault" if r["window"] == "steady" else r["window"]}) + "\n"
                            for r in rows))
    assert not analyse_canaries(path, "steady").learned


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(min_value=1, max_value=HIGHEST_US * 2), min_size=0, max_size=300),
       pcts=st.lists(st.floats(min_value=0.0, max_value=100.0), min_size=1, max_size=6))
def test_percentiles_from_one_sum_are_the_librarys_own(values: list[int], pcts: list[float]) -> None:
    """`percentiles_us` answers exactly what `get_value_at_percentile` answers, for any counts and any percentile,
    on histograms recorded here and on decoded ones (whose counts array may be shorter)."""
    hist = new_histogram()
    for v in values:
        hist.record_value(clamp_us(v / 1e6))
    for h in (hist, decode_histogram(encode_histogram(hist)), HdrHistogram.decode(encode_histogram(hist))):
        ours = percentiles_us(h, pcts)
        assert ours == {p: h.get_value_at_percentile(p) for p in pcts}
        assert percentiles_ms(h, pcts) == {p: (round(h.get_value_at_percentile(p) / 1000.0, 3) if values else None)
                                           for p in pcts}
