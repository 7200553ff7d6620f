"""Percentile error and memory of g7chaos's latency recorder vs Locust's response-time buckets.

Why it matters: the SLO verdicts (TBT p99 < 50 ms, TTFT p99 < 500 ms) and the tail of a stall cluster are
read from these histograms. Samples: 99.5% lognormal gaps around 20 ms plus a 0.5% cluster of stalls at 2-5 s,
the shape a replica freeze leaves (at exactly 1% the p99 would sit on the cluster's edge, where any value
between the body's tail and the first stall is a correct p99). Truth is the exact nearest-rank percentile of the sorted samples.
g7chaos: the recorder's own path (values quantised to their HDR bucket, then an HDR histogram with 3
significant figures, microseconds). Locust: `locust.stats.bucket_response_time` on milliseconds and Locust's
own `calculate_response_time_percentile`.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.load.recorder import new_histogram, quantise_us

NAME = "histogram-accuracy"
ORDER = 30
PERCENTILES = (50.0, 99.0, 99.9, 99.99)


def samples_us(n: int, seed: int = 11) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stalls = n // 200
    body = rng.lognormal(mean=np.log(20_000.0), sigma=0.25, size=n - stalls)
    cluster = rng.uniform(2_000_000.0, 5_000_000.0, size=stalls)
    values = np.concatenate([body, cluster])
    rng.shuffle(values)
    return np.maximum(1, values.astype(np.int64))


def exact_us(sorted_values: np.ndarray, pct: float) -> int:
    rank = max(1, int(np.ceil(pct / 100.0 * sorted_values.size)))
    return int(sorted_values[rank - 1])


def g7chaos_recorder(values: np.ndarray) -> tuple[Any, float]:
    hist = new_histogram()
    quantised = np.fromiter((quantise_us(int(v)) for v in np.unique(values)), dtype=np.int64)
    uniq, counts = np.unique(values, return_counts=True)
    buckets: dict[int, int] = {}
    for q, c in zip(quantised.tolist(), counts.tolist()):
        buckets[q] = buckets.get(q, 0) + c
    for q, c in buckets.items():
        hist.record_value(q, c)
    # cost per value of the recorder's per-token path (quantise + pending-dict update), on a slice
    pending: dict[int, int] = {}
    chunk = values[:200_000].tolist()
    t0 = time.perf_counter()
    for v in chunk:
        b = v.bit_length() - 11
        if b > 0:
            v = (v >> b) << b
        pending[v] = pending.get(v, 0) + 1
    per_value_us = (time.perf_counter() - t0) / len(chunk) * 1e6
    return hist, per_value_us


def locust_buckets(values: np.ndarray) -> dict[str, Any]:
    """Locust's buckets and percentiles, computed by Locust's own code in a child process (see
    `bench._locust_buckets`: importing Locust here would monkey-patch this process)."""
    uniq, counts = np.unique(values, return_counts=True)
    with tempfile.TemporaryDirectory(prefix="bench-hist-") as tmp:
        path = Path(tmp) / "values.npz"
        np.savez(path, values_ms=uniq / 1000.0, counts=counts, chunk_ms=values[:200_000] / 1000.0)  # Locust takes ms
        proc = subprocess.run([sys.executable, "-W", "ignore", "-m", "bench._locust_buckets", str(path),
                               json.dumps(list(PERCENTILES))], capture_output=True, text=True, timeout=120,
                              cwd=str(Path(__file__).resolve().parents[1]))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"Locust bucketing failed ({proc.returncode}): {proc.stderr[-800:]}")
    return json.loads(lines[-1])


def run(tiny: bool = False) -> dict[str, Any]:
    n = 100_000 if tiny else 10_000_000
    values = samples_us(n)
    ordered = np.sort(values)
    hist, hdr_cost = g7chaos_recorder(values)
    locust = locust_buckets(values)
    rows_out = []
    for pct, theirs_ms in zip(PERCENTILES, locust["percentiles_ms"]):
        truth = exact_us(ordered, pct)
        ours = int(hist.get_value_at_percentile(pct))
        theirs = theirs_ms * 1000
        rows_out.append({"percentile": pct, "exact_ms": truth / 1000.0, "g7chaos_ms": ours / 1000.0,
                         "locust_ms": theirs / 1000.0,
                         "g7chaos_error_pct": round(100.0 * (ours - truth) / truth, 3),
                         "locust_error_pct": round(100.0 * (theirs - truth) / truth, 3)})
    hdr_bytes = int(hist.counts_len * hist.word_size)
    return {"name": NAME, "tiny": tiny, "samples": n, "shape": "99.5% lognormal median 20 ms sigma 0.25 + 0.5% uniform 2-5 s",
            "percentiles": rows_out,
            "g7chaos_worst_error_pct": max(abs(r["g7chaos_error_pct"]) for r in rows_out),
            "locust_worst_error_pct": max(abs(r["locust_error_pct"]) for r in rows_out),
            "g7chaos_memory_bytes": hdr_bytes, "locust_memory_bytes": locust["memory_bytes"],
            "locust_buckets": locust["buckets"], "g7chaos_cost_us_per_value": round(hdr_cost, 3),
            "locust_cost_us_per_value": round(locust["cost_us_per_value"], 3)}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for r in result["percentiles"]:
        out.append((f"histogram p{r['percentile']:g} ({result['samples']:,} samples, stall cluster)",
                    f"exact {r['exact_ms']:.3f} ms; g7chaos {r['g7chaos_ms']:.3f} ms ({r['g7chaos_error_pct']:+.3f}%); "
                    f"Locust {r['locust_ms']:.3f} ms ({r['locust_error_pct']:+.3f}%)",
                    "g7chaos closer" if abs(r["g7chaos_error_pct"]) < abs(r["locust_error_pct"]) else
                    ("equal" if abs(r["g7chaos_error_pct"]) == abs(r["locust_error_pct"]) else "Locust closer")))
    out.append(("histogram memory and cost per value",
                f"g7chaos HDR {result['g7chaos_memory_bytes'] / 1024:.0f} KiB, {result['g7chaos_cost_us_per_value']:.2f} µs/value; "
                f"Locust {result['locust_buckets']} buckets {result['locust_memory_bytes'] / 1024:.1f} KiB, "
                f"{result['locust_cost_us_per_value']:.2f} µs/value",
                f"worst error g7chaos {result['g7chaos_worst_error_pct']:.3f}% vs Locust {result['locust_worst_error_pct']:.3f}%"))
    return out
