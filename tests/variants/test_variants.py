"""Six drawn scenario variants, each run on its own twin with the verdict the article implies (`make variants`
runs a larger sample). Seed 1's first six cover a zone loss, both composed-fault verdicts, the device-plugin race,
the I/O stall misread by GPU-utilisation autoscaling and a retry storm without idempotency."""
from __future__ import annotations

import sys

import pytest

from ahead import Job, Ran
from variants.generator import ROOT, draw_variants

SEED, COUNT = 1, 6
DRAWN = draw_variants(SEED, COUNT)


def ahead_job(test: str, params: dict) -> Job:
    position = params["position"]
    return Job(f"variant-{SEED}-{position}",
               lambda report: [sys.executable, "-m", "tests.variants", "--seed", str(SEED), "--count", str(COUNT),
                               "--only", str(position), "--workers", "1", "--report-dir", str(report)],
               timeout_s=480, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("position", range(COUNT), ids=[v.name for v in DRAWN])
def test_a_drawn_variant_gets_the_verdict_the_article_implies(position: int, ahead_run: Ran) -> None:
    out = ahead_run.out
    variant = DRAWN[position]
    line = next((text for text in out.stdout.splitlines() if variant.name in text and " on " in text), out.stdout)
    assert out.returncode == 0 and line.startswith("ok"), out.stdout[-3000:] + "\n" + out.stderr[-2000:]


def test_the_draw_is_the_same_for_the_same_seed_and_every_variant_validates(tmp_path):
    from variants.__main__ import validate
    again = draw_variants(SEED, 20)
    assert [v.scenario for v in again[:COUNT]] == [v.scenario for v in DRAWN]
    assert validate(again, tmp_path) == []
    assert any(len(v.base) == 2 for v in again) and any(v.must_fail for v in again)


def test_a_wrong_verdict_is_run_again_only_when_its_measurement_was_degraded(monkeypatch, tmp_path):
    """judge_variant's rule alone (the runs are stand-ins: what a run does is the scenario tests' subject)."""
    import variants.__main__ as runner
    variant = next(v for v in DRAWN if not v.must_fail)
    wrong_degraded = runner.Outcome(variant, "inconclusive", frozenset(), 5, degraded="steady: lag p99 61.5 ms > 5 ms")
    wrong_clean = runner.Outcome(variant, "fail", frozenset({"slo"}), 1)
    right = runner.Outcome(variant, "pass", frozenset(), 0)
    for runs, expected, calls in (([wrong_degraded, right], right, 2), ([wrong_clean, right], wrong_clean, 1),
                                  ([right, wrong_clean], right, 1)):
        queue = list(runs)
        monkeypatch.setattr(runner, "run_variant", lambda *args, queue=queue: queue.pop(0))
        got = runner.judge_variant(variant, tmp_path, 1, 30.0)
        assert got is expected and len(runs) - len(queue) == calls
    assert right.rerun_because == "steady: lag p99 61.5 ms > 5 ms" and wrong_clean.rerun_because is None
