"""What every compared client shares: the request body and the measurement window's bookkeeping."""
from __future__ import annotations

import json
import os
import time
from typing import Any

PROMPT = "the model streams tokens to many clients while the cluster keeps serving under faults"


def body_for(tokens: int) -> str:
    return json.dumps({"model": "bench-llm", "prompt": PROMPT, "max_tokens": tokens, "temperature": 0.7,
                       "stream": True})


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


class Window:
    """Tokens and lags (receive time minus the server's send stamp) seen inside [start, end) epoch seconds."""

    def __init__(self, warmup_s: float, measure_s: float, slice_s: float = 0.5) -> None:
        self.t_start = time.time() + warmup_s
        self.t_end = self.t_start + measure_s
        self.slice_s = slice_s
        self.tokens = 0
        self.lags: list[float] = []
        self.times: list[float] = []
        self.cpu: list[tuple[float, float]] = []

    def token(self, now: float, lag: float) -> None:
        if self.t_start <= now < self.t_end:
            self.tokens += 1
            self.lags.append(lag)
            self.times.append(now)

    def watch(self, sleep=time.sleep) -> None:
        """CPU of this process at the window's start and end (run in the client's own event loop)."""
        for mark in (self.t_start, self.t_end):
            delay = mark - time.time()
            if delay > 0:
                sleep(delay)
            self.cpu.append((_cpu(), time.time()))

    def result(self, **extra: Any) -> dict[str, Any]:
        lags = sorted(self.lags)
        span = self.t_end - self.t_start

        def pct(p: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(len(lags) * p / 100.0))] * 1000.0, 3) if lags else None

        slices: dict[int, list[float]] = {}
        for t, lag in zip(self.times, self.lags):
            slices.setdefault(int((t - self.t_start) / self.slice_s), []).append(lag)
        slice_p99 = [p99_ms(v) for _, v in sorted(slices.items())]
        cpu = None
        if len(self.cpu) == 2:
            (c0, w0), (c1, w1) = self.cpu
            cpu = round((c1 - c0) / max(1e-9, w1 - w0), 3)
        return dict(extra, tokens=self.tokens, tokens_per_s=round(self.tokens / span, 1),
                    lag_p50_ms=pct(50), lag_p99_ms=pct(99), lag_p99_slices_ms=slice_p99,
                    lag_p99_held_ms=held_p99(slice_p99), cpu_share=cpu)


def p99_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000.0, 3)


def held_p99(slice_p99: list[float | None]) -> float | None:
    """The lag p99 a client held over the window: the highest of its half-second slices' p99 but the single
    worst. One stall of the shared machine (another process holding the core) is forgiven; a client whose lag
    passes the limit second after second, or in bursts, is not (a median of slices let a client through whose
    whole-window p99 was ten times the limit, and the accuracy measured at half its "sustained" load failed)."""
    values = sorted(v for v in slice_p99 if v is not None)
    return (values[-2] if len(values) >= 2 else values[-1]) if values else None
