"""The gateway under the demo load: 32 concurrent streams keep a believable TBT, and the server adds little."""
from __future__ import annotations

from harness.twin.serving import capacity


def test_demo_load_keeps_tbt_and_the_probe_reports():
    report = capacity.measure(streams=32, max_tokens=48, ramp_s=0.3, timeout_s=20, jitter_s=0.2)
    assert report.completed == 32 and report.failed == 0
    assert report.tokens == 32 * 48
    assert report.observed_tbt_p99_ms < 50.0                  # the article's TBT SLO at the demo load
    assert 15.0 < report.model_tbt_p50_ms < 20.0              # 13B FP8 decode at small batch
    assert report.server_added_p50_ms < 1.0                   # the median token leaves on its due time
    assert report.server_cpu_percent > 0
