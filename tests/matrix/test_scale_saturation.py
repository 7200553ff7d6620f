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
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "scale-on-saturation.yaml"


@pytest.mark.slow
def test_scale_on_saturation_fails_slo_when_replicas_scale_on_gpu_utilisation(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness", "run", str(SCENARIO), "--profile", "gpu-util-autoscaling",
                          "--report-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-2000:]
    (result_path,) = tmp_path.glob("*-scale-on-saturation/result.json")
    result = json.loads(result_path.read_text())
    assert result["verdict"] == "fail" and result["profile"] == "gpu-util-autoscaling"
    failed = {c["name"]: c for c in result["checks"] if c["status"] == "fail"}
    assert set(failed) == {"slo"}, {n: c.get("reason") for n, c in failed.items()}
    reason = failed["slo"]["reason"]
    ttft = re.search(r"ttft_p99 (\d+(?:\.\d+)?) ms > 500 ms", reason)
    assert ttft, f"slo fails without the TTFT it measured: {reason!r}"
    landed = result["faults"][0]["landed_evidence"]
    assert landed["action"] == "aws:ebs:volume-io-latency" and landed["volumes"], landed
