"""Locust's own response-time bucketing and percentiles, in a process of its own.

`python -m bench._locust_buckets VALUES.npz PERCENTILES_JSON`: VALUES.npz holds `values_ms` and `counts`
(distinct values and how often each occurs) and `chunk_ms` (raw values, for the cost per value). Prints one
JSON line. Why a process of its own: importing Locust monkey-patches the standard library through gevent,
which the benchmark process (threads, asyncio servers of the other benchmarks) must never suffer.
"""
import locust  # noqa: F401  isort: skip

import json
import sys
import time

import numpy as np
from locust.stats import bucket_response_time, calculate_response_time_percentile


def main() -> int:
    data = np.load(sys.argv[1])
    percentiles = json.loads(sys.argv[2])
    buckets: dict[int, int] = {}
    for v, c in zip(data["values_ms"].tolist(), data["counts"].tolist()):
        key = bucket_response_time(v)
        buckets[key] = buckets.get(key, 0) + c
    total = int(data["counts"].sum())
    chunk = data["chunk_ms"].tolist()
    probe: dict[int, int] = {}
    t0 = time.perf_counter()
    for v in chunk:
        key = bucket_response_time(v)
        probe[key] = probe.get(key, 0) + 1
    per_value_us = (time.perf_counter() - t0) / max(1, len(chunk)) * 1e6
    size = sys.getsizeof(buckets) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in buckets.items())
    print(json.dumps({"percentiles_ms": [calculate_response_time_percentile(buckets, total, p / 100.0)
                                         for p in percentiles],
                      "buckets": len(buckets), "memory_bytes": size, "cost_us_per_value": per_value_us}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
