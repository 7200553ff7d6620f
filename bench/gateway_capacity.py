"""The twin gateway's capacity on one core: concurrent streams and tokens/s it sustains while adding at most
1 ms at p99 to the model's token timings (measured from the server's own due/send stamps per event).

Every latency verdict the harness gives on the twin assumes the twin adds nothing measurable; this is the
number that says up to which load that holds.
"""
from __future__ import annotations

from typing import Any

from harness.twin.serving.capacity import BUDGET_MS, find_capacity, measure

NAME = "gateway-capacity"
ORDER = 90   # the twin's own headroom, after the harness's figures


def run(tiny: bool = False) -> dict[str, Any]:
    if tiny:
        report = measure(streams=8, max_tokens=16, ramp_s=0.2)
        return {"name": "gateway-capacity", "tiny": True, "levels": [report.model_dump()], "capacity_streams": None}
    held, reports = find_capacity(levels=(100, 200, 300, 400))
    return {"name": "gateway-capacity", "budget_ms_p99": BUDGET_MS, "capacity_streams": held,
            "levels": [r.model_dump() for r in reports]}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for level in result["levels"]:
        out.append((f"gateway @ {level['streams']} streams",
                    f"{level['tokens_per_s']:.0f} tokens/s; adds p50 {level['server_added_p50_ms']:.2f} ms, "
                    f"p99 {level['server_added_p99_ms']:.2f} ms; observed TBT p99 {level['observed_tbt_p99_ms']:.1f} ms "
                    f"(model {level['model_tbt_p50_ms']:.1f} ms); gateway CPU {level['server_cpu_percent']:.0f}%",
                    "within 1 ms budget" if level["within_budget"] else
                    ("degraded machine" if level["degraded"] else "over budget")))
    if result.get("capacity_streams") is not None:
        out.append(("gateway capacity", f"{result['capacity_streams']} concurrent streams within "
                                         f"{result['budget_ms_p99']} ms p99", ""))
    return out
