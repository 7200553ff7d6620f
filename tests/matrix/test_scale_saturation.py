"""Matrix cell of scale-on-saturation on the profile that breaks its prescription.

An I/O stall leaves GPUs idle while requests queue. An autoscaler on GPU utilisation (`gpu-util-autoscaling`)
reads the idle GPUs as spare capacity and removes replicas, so the queue, and TTFT with it, runs away: the cell
fails through `slo` alone, with the TTFT it measured. The `article` cell (the queue-depth autoscaler holds the
fleet and TTFT stays within the SLO) is asserted with every other scenario by test_matrix_article.py, which runs
each shipped scenario on `article` in one game day.
"""
from __future__ import annotations

import json
import re

import pytest

from cellkit import Ran, failing_checks, scenario_run


def ahead_job(test: str, params: dict):
    return scenario_run("scale-on-saturation", "gpu-util-autoscaling")


@pytest.mark.slow
def test_scale_on_saturation_fails_slo_when_replicas_scale_on_gpu_utilisation(ahead_run: Ran) -> None:
    failed = failing_checks(ahead_run, "scale-on-saturation", "gpu-util-autoscaling")
    assert set(failed) == {"slo"}, {n: c.get("reason") for n, c in failed.items()}
    reason = failed["slo"]["reason"]
    ttft = re.search(r"ttft_p99 (\d+(?:\.\d+)?) ms > 500 ms", reason)
    assert ttft, f"slo fails without the TTFT it measured: {reason!r}"
    (result_path,) = ahead_run.report_dir.glob("*-scale-on-saturation/result.json")
    landed = json.loads(result_path.read_text())["faults"][0]["landed_evidence"]
    assert landed["action"] == "aws:ebs:volume-io-latency" and landed["volumes"], landed
