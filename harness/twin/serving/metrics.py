"""Prometheus text for the gateway's /metrics, with Triton's metric names.

Why Triton's names: checks and dashboards written for a real deployment scrape Triton's :8002/metrics
(nv_inference_request_success, nv_inference_request_failure{reason}, nv_inference_count,
nv_inference_queue_duration_us, ...); the twin answers under the same names so nothing in the harness
needs to know it is talking to the twin. Gateway-only counters (executions and idempotent replays) use
a g7_gateway_ prefix, since Triton has no such thing.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

LabelSet = tuple[tuple[str, str], ...]

# First-response histogram buckets (ms), as Triton's opt-in nv_inference_first_response_histogram_ms.
FIRST_RESPONSE_BUCKETS_MS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

HELP: dict[str, tuple[str, str]] = {
    "nv_inference_request_success": ("counter", "Number of successful inference requests, all batch sizes"),
    "nv_inference_request_failure": ("counter", "Number of failed inference requests, all batch sizes"),
    "nv_inference_count": ("counter", "Number of inferences performed (does not include cached requests)"),
    "nv_inference_exec_count": ("counter", "Number of model executions performed (does not include cached requests)"),
    "nv_inference_request_duration_us": ("counter", "Cumulative inference request duration in microseconds (includes cached requests)"),
    "nv_inference_queue_duration_us": ("counter", "Cumulative inference queuing duration in microseconds (includes cached requests)"),
    "nv_inference_compute_infer_duration_us": ("counter", "Cumulative compute inference duration in microseconds"),
    "nv_inference_pending_request_count": ("gauge", "Instantaneous number of pending requests awaiting execution per-model"),
    "nv_inference_first_response_histogram_ms": ("histogram", "Duration from request to first response in milliseconds"),
    "nv_gpu_utilization": ("gauge", "GPU utilization rate [0.0 - 1.0)"),
    "g7_gateway_executions_total": ("counter", "Requests the gateway sent to a replica (retries included unless replayed)"),
    "g7_gateway_idempotent_replays_total": ("counter", "Requests answered from the idempotency ledger without executing"),
    "g7_gateway_idempotency_rejections_total": ("counter", "Requests rejected by the idempotency ledger (409 in flight, 422 mismatch)"),
    "g7_gateway_streams_cut_total": ("counter", "Streams closed without [DONE] (node lost, pod killed)"),
    "g7_gateway_canary_pulls_total": ("counter", "Replicas pulled from routing because their canary answer differed"),
}


def labels(**kv: str) -> LabelSet:
    return tuple(sorted(kv.items()))


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, dict[LabelSet, float]] = defaultdict(lambda: defaultdict(float))
        self.first_response: dict[LabelSet, list[float]] = {}   # cumulative bucket counts + sum + count

    def inc(self, name: str, value: float = 1.0, **kv: str) -> None:
        self.counters[name][labels(**kv)] += value

    def get(self, name: str, **kv: str) -> float:
        return self.counters.get(name, {}).get(labels(**kv), 0.0)

    def total(self, name: str) -> float:
        return sum(self.counters.get(name, {}).values())

    def observe_first_response(self, ms: float, **kv: str) -> None:
        key = labels(**kv)
        row = self.first_response.setdefault(key, [0.0] * (len(FIRST_RESPONSE_BUCKETS_MS) + 2))
        for i, bound in enumerate(FIRST_RESPONSE_BUCKETS_MS):
            if ms <= bound:
                row[i] += 1
        row[-2] += ms
        row[-1] += 1

    def render(self, gauges: Iterable[tuple[str, LabelSet, float]] = ()) -> str:
        out: list[str] = []
        rows: dict[str, list[tuple[LabelSet, float]]] = defaultdict(list)
        for name, series in self.counters.items():
            rows[name].extend(series.items())
        for name, key, value in gauges:
            rows[name].append((key, value))
        for name in sorted(rows):
            kind, text = HELP.get(name, ("untyped", name))
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")
            for key, value in sorted(rows[name]):
                out.append(f"{name}{_fmt(key)} {_num(value)}")
        if self.first_response:
            name = "nv_inference_first_response_histogram_ms"
            out.append(f"# HELP {name} {HELP[name][1]}")
            out.append(f"# TYPE {name} histogram")
            for key, row in sorted(self.first_response.items()):
                for i, bound in enumerate(FIRST_RESPONSE_BUCKETS_MS):
                    out.append(f"{name}_bucket{_fmt(key + (('le', str(bound)),))} {_num(row[i])}")
                out.append(f"{name}_bucket{_fmt(key + (('le', '+Inf'),))} {_num(row[-1])}")
                out.append(f"{name}_sum{_fmt(key)} {_num(row[-2])}")
                out.append(f"{name}_count{_fmt(key)} {_num(row[-1])}")
        return "\n".join(out) + "\n"


def _fmt(key: LabelSet) -> str:
    if not key:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in key) + "}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
