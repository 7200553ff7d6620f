"""Latency histograms per named time window, exact across processes, plus the load generator's own health.

Why HDR histograms: Locust's buckets read a true p99 of 504 ms as 500 and cannot be merged exactly;
HDR with 3 significant figures bounds the error to 0.1% and merges exactly (bucket counts add up), so N
worker processes give the same figures as one. Values are microseconds.

Why self-monitoring: a saturated load generator inflates TTFT and TBT long before Locust warns, and the
harness must say "measurement degraded" rather than blame the deployment. Two signals: the wake-up
lateness of a probe that sleeps a fixed interval in the client's own event loop, and the process's CPU
share of one core.
"""
from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from pydantic import BaseModel, Field

LOWEST_US = 1
HIGHEST_US = 600_000_000      # 10 minutes: longer values are clamped to it (HDR would drop them)
SIGNIFICANT_FIGURES = 3
HISTOGRAM_NAMES = ("ttft", "tbt", "e2e", "lag", "loop_lag")
DISCARD_PREFIX = "__"          # windows named like this are never reported
FLUSH_SLICE = 256              # pending values recorded between two pauses of a live snapshot (~0.15 ms)
# Quantised µs value -> its index in the counts array of our layout (the same for every histogram here). At most
# one entry per bucket (about 20k): HDR keeps nothing finer.
_COUNTS_INDEX: dict[int, int] = {}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def decode_histogram(encoded: str) -> HdrHistogram:
    """Decode into a histogram with our own range, so decoded ones always add exactly."""
    hist = new_histogram()
    if encoded:
        hist.add(HdrHistogram.decode(encoded))
    return hist


def encode_histogram(hist: HdrHistogram) -> str:
    raw = hist.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else raw


def clamp_us(seconds: float) -> int:
    """Seconds to histogram microseconds: at least 1, at most HIGHEST_US (HDR silently drops the rest)."""
    v = int(seconds * 1e6)
    return 1 if v < 1 else (v if v < HIGHEST_US else HIGHEST_US)


def quantise_us(v: int) -> int:
    """Lower bound of v's bucket in our HDR layout (lowest 1, 3 figures: 2048 sub-buckets)."""
    b = v.bit_length() - 11
    return (v >> b) << b if b > 0 else v


def percentiles_us(hist: HdrHistogram, pcts: Iterable[float]) -> dict[float, int]:
    """`hist.get_value_at_percentile(p)` for each p, from one cumulative sum of the counts.

    The library walks the counts array in Python, index by index, for every percentile: about 7 ms for a p99
    in the tens of milliseconds, and the harness asks for eight of them on every live tick (a third of a core
    in a scenario run, beside the load generator it must not slow). The first index whose running total
    reaches the target count is the same one; the value reported for it is the library's own."""
    counts = np.ctypeslib.as_array(hist.counts)[:min(hist.counts_len, hist.encoder.payload.counts_len)]
    running = np.cumsum(counts, dtype=np.uint64)
    values: dict[float, int] = {}
    for pct in pcts:
        index = int(np.searchsorted(running, hist.get_target_count_at_percentile(pct), side="left"))
        if index >= len(running):
            values[pct] = 0
            continue
        value = hist.get_value_from_index(index)
        values[pct] = hist.get_highest_equivalent_value(value) if pct else hist.get_lowest_equivalent_value(value)
    return values


def percentile_ms(hist: HdrHistogram, pct: float) -> float | None:
    return percentiles_ms(hist, (pct,))[pct]


def percentiles_ms(hist: HdrHistogram, pcts: Iterable[float]) -> dict[float, float | None]:
    """Milliseconds, rounded to the microsecond; None for every percentile of an empty histogram."""
    pcts = tuple(pcts)
    if hist.get_total_count() == 0:
        return dict.fromkeys(pcts)
    return {pct: round(us / 1000.0, 3) for pct, us in percentiles_us(hist, pcts).items()}


class WindowStats:
    """Counts and histograms of one window in one process."""

    __slots__ = ("name", "first_wall", "last_wall", "requests", "errors", "attempts", "retries", "tokens",
                 "canaries", "dropped", "reasons", "ttft", "tbt", "e2e", "lag", "loop_lag", "degraded",
                 "pending_tbt", "pending_lag")

    def __init__(self, name: str) -> None:
        self.name = name
        self.first_wall = time.time()
        self.last_wall = self.first_wall
        self.requests = 0       # logical requests finished (after their retries)
        self.errors = 0         # logical requests that failed after all attempts
        self.attempts = 0       # HTTP attempts
        self.retries = 0        # attempts beyond the first
        self.tokens = 0         # content events received
        self.canaries = 0
        self.dropped = 0        # open loop: arrivals that found every slot busy
        self.reasons: dict[str, int] = {}
        self.ttft = new_histogram()
        self.tbt = new_histogram()
        self.e2e = new_histogram()
        self.lag = new_histogram()       # receive time minus the server's send stamp
        self.loop_lag = new_histogram()  # own event-loop wake-up lateness
        self.degraded: str | None = None
        # Per-token values wait here as {value quantised to its HDR bucket: count}: a dict update costs a
        # fifth of `record_value`, and quantising to the bucket's lower bound loses nothing HDR keeps.
        self.pending_tbt: dict[int, int] = {}
        self.pending_lag: dict[int, int] = {}

    def flush(self, pause: Callable[[], Any] | None = None) -> None:
        """Move pending values into their histograms. `pause`, if given, is called every few hundred values
        (a live report must not hold the event loop for milliseconds: every stream's reads wait on it).

        The counts go straight into the histogram's counts array, at the index the library itself computes
        (`_counts_index_for`), once per distinct value and process: `record_value` computes it in Python on
        every call, 1.6 µs, and at 100 streams the live reports' flushes made a few thousand calls a second. The
        totals, minimum and maximum are committed before every pause, so another snapshot in between (the
        final one) sees every count recorded so far."""
        index_of = _COUNTS_INDEX
        for pending, hist in ((self.pending_tbt, self.tbt), (self.pending_lag, self.lag)):
            if not pending:
                continue
            items = list(pending.items())
            pending.clear()
            counts = hist.counts
            total, lo, hi = 0, hist.min_value, hist.max_value
            for i, (value, count) in enumerate(items, 1):
                if value > HIGHEST_US:
                    value = HIGHEST_US
                j = index_of.get(value)
                if j is None:
                    j = index_of[value] = hist._counts_index_for(value)
                counts[j] += count
                total += count
                if value < lo:
                    lo = value
                if value > hi:
                    hi = value
                if i % FLUSH_SLICE == 0 or i == len(items):
                    hist.total_count += total
                    hist.min_value = min(hist.min_value, lo)
                    hist.max_value = max(hist.max_value, hi)
                    total = 0
                    if pause is not None and i < len(items):
                        pause()
                        lo, hi = hist.min_value, hist.max_value

    def snapshot(self, pause: Callable[[], Any] | None = None) -> dict[str, Any]:
        """Counts and encoded histograms. With `pause` (live reports, from inside the event loop), the work is
        cut into slices of well under a millisecond with `pause()` between them; the figures are the same."""
        self.flush(pause)
        out: dict[str, Any] = {k: getattr(self, k) for k in (
            "name", "first_wall", "last_wall", "requests", "errors", "attempts", "retries", "tokens",
            "canaries", "dropped", "degraded")}
        out["reasons"] = dict(self.reasons)
        hists = {}
        for k in HISTOGRAM_NAMES:
            if pause is not None:
                pause()
            hists[k] = encode_histogram(getattr(self, k))
        out["hist"] = hists
        return out


class Recorder:
    """All windows of one process; the current window is switched by name at runtime.

    Hot path cost: one `record_value` (~1 µs) per content event; nothing else per token.
    """

    def __init__(self, first_window: str = "warmup") -> None:
        self.windows: dict[str, WindowStats] = {}
        self.current = self._window(first_window)

    def _window(self, name: str) -> WindowStats:
        win = self.windows.get(name)
        if win is None:
            win = self.windows[name] = WindowStats(name)
        return win

    def switch(self, name: str) -> None:
        """Later samples go to `name`; returning to an earlier name appends to it."""
        if name != self.current.name:
            self.current.last_wall = time.time()
            self.current = self._window(name)

    @property
    def window_name(self) -> str:
        return self.current.name

    def snapshot(self) -> dict[str, Any]:
        self.current.last_wall = time.time()
        return {"windows": [w.snapshot() for w in self.windows.values() if not w.name.startswith(DISCARD_PREFIX)],
                "current": self.current.name}

    def discard_from_now(self) -> None:
        """Shutting down: samples taken while users are being killed are not part of any window."""
        self.switch(DISCARD_PREFIX + "stopping")


class WindowFigures(BaseModel):
    """Figures of one window over all load processes, as the load generator measured them (attempts, retries,
    failure reasons, lag). The run's result records each as `harness.report.model.WindowMetrics`
    (docs/CONTRACTS.md section 4, `metrics`)."""

    window: str
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    attempts: int = 0
    retries: int = 0
    tokens: int = 0
    canaries: int = 0
    dropped: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    tbt_p50_ms: float | None = None
    tbt_p99_ms: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p99_ms: float | None = None
    lag_p99_ms: float | None = None
    loop_lag_p99_ms: float | None = None
    ttft_count: int = 0
    tbt_count: int = 0
    first_wall: float = 0.0
    last_wall: float = 0.0
    degraded: str | None = None


class MergedWindow:
    """One window merged exactly from per-process snapshots."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: dict[str, int] = {}
        self.reasons: dict[str, int] = {}
        self.hist = {k: new_histogram() for k in HISTOGRAM_NAMES}
        self.first_wall = float("inf")
        self.last_wall = 0.0
        self.degraded: list[str] = []

    def add(self, snap: dict[str, Any]) -> None:
        for key in ("requests", "errors", "attempts", "retries", "tokens", "canaries", "dropped"):
            self.counts[key] = self.counts.get(key, 0) + int(snap.get(key, 0))
        for reason, n in snap.get("reasons", {}).items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n
        for key, enc in snap.get("hist", {}).items():
            if key in self.hist and enc:
                self.hist[key].add(HdrHistogram.decode(enc))
        self.first_wall = min(self.first_wall, snap.get("first_wall", self.first_wall))
        self.last_wall = max(self.last_wall, snap.get("last_wall", 0.0))
        if snap.get("degraded"):
            self.degraded.append(snap["degraded"])

    def metrics(self) -> WindowFigures:
        c = self.counts
        requests = c.get("requests", 0)
        errors = c.get("errors", 0)
        ttft, tbt, e2e = (percentiles_ms(self.hist[name], (50, 99)) for name in ("ttft", "tbt", "e2e"))
        return WindowFigures(
            window=self.name, requests=requests, errors=errors,
            error_rate=round(errors / requests, 6) if requests else 0.0,
            attempts=c.get("attempts", 0), retries=c.get("retries", 0), tokens=c.get("tokens", 0),
            canaries=c.get("canaries", 0), dropped=c.get("dropped", 0), reasons=dict(self.reasons),
            ttft_p50_ms=ttft[50], ttft_p99_ms=ttft[99], tbt_p50_ms=tbt[50], tbt_p99_ms=tbt[99],
            e2e_p50_ms=e2e[50], e2e_p99_ms=e2e[99],
            lag_p99_ms=percentile_ms(self.hist["lag"], 99),
            loop_lag_p99_ms=percentile_ms(self.hist["loop_lag"], 99),
            ttft_count=self.hist["ttft"].get_total_count(), tbt_count=self.hist["tbt"].get_total_count(),
            first_wall=self.first_wall if self.first_wall != float("inf") else 0.0,
            last_wall=self.last_wall, degraded="; ".join(self.degraded) or None)

    def encoded(self) -> dict[str, str]:
        return {k: encode_histogram(h) for k, h in self.hist.items()}


def merge_snapshots(snapshots: Iterable[dict[str, Any]]) -> dict[str, MergedWindow]:
    """Merge `Recorder.snapshot()`s of several processes, window by window, in first-seen order."""
    merged: dict[str, MergedWindow] = {}
    for snap in snapshots:
        for win in snap.get("windows", []):
            merged.setdefault(win["name"], MergedWindow(win["name"])).add(win)
    return merged


class SelfMonitor:
    """Watches this process's own health: event-loop lag and CPU share.

    `probe(sleep)` is the loop a greenlet runs: sleep a fixed interval, measure how late it woke. The
    same lateness delays every stream read in the process, so its p99 over a sliding window is the
    client's own contribution to TTFT/TBT. `degraded` becomes a reason string (sticky per window) when
    the lag p99 or the CPU share crosses the limit. The sliding figures start afresh with each window: a
    window is degraded by what happened in it, never by the end of the window before (the ramp of users, or
    a busy moment just before a fault began).
    """

    def __init__(self, recorder: Recorder, lag_limit_ms: float = 5.0, cpu_limit: float = 0.70,
                 interval_s: float = 0.01, horizon_s: float = 2.0, cpu_hot_s: float = 1.0,
                 grace_s: float = 0.0) -> None:
        self.recorder = recorder
        self.lag_limit_ms = lag_limit_ms
        self.cpu_limit = cpu_limit
        self.interval_s = interval_s
        self.cpu_hot_s = cpu_hot_s
        self._recent: deque[float] = deque(maxlen=max(10, int(horizon_s / interval_s)))
        self.lag_p99_ms = 0.0
        self.cpu_share = 0.0
        self.degraded: str | None = None
        self._cpu_mark = self._cpu_now()
        self._last_eval = time.perf_counter()
        self._cpu_hot_since: float | None = None
        self._lag_hot = 0
        self._grace_until = time.perf_counter() + grace_s
        self._window = recorder.current

    @staticmethod
    def _cpu_now() -> tuple[float, float]:
        t = os.times()
        return t.user + t.system, time.perf_counter()

    def observe(self, lateness_s: float) -> None:
        if self.recorder.current is not self._window:
            self._window = self.recorder.current
            self._recent.clear()
            self._lag_hot = 0
            self._cpu_hot_since = None
            self.lag_p99_ms = 0.0
            self.degraded = None
        self._recent.append(lateness_s)
        self.recorder.current.loop_lag.record_value(clamp_us(lateness_s))
        now = time.perf_counter()
        if now - self._last_eval >= 0.5:
            self._last_eval = now
            self.evaluate()

    def evaluate(self) -> None:
        cpu, wall = self._cpu_now()
        cpu0, wall0 = self._cpu_mark
        if wall - wall0 >= 0.25:      # os.times() ticks at 10 ms: shorter spans are noise
            self.cpu_share = (cpu - cpu0) / (wall - wall0)
            self._cpu_mark = (cpu, wall)
        if len(self._recent) >= 20:
            ordered = sorted(self._recent)
            self.lag_p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000.0
        reason = None
        if wall < self._grace_until:
            self._recent.clear()           # start-up (imports, spawning users) is not the measurement
            return
        # lag must stay high over two evaluations: one scheduler hiccup is not saturation
        self._lag_hot = self._lag_hot + 1 if self.lag_p99_ms > self.lag_limit_ms else 0
        if self._lag_hot >= 2:
            reason = f"load generator event-loop lag p99 {self.lag_p99_ms:.1f} ms > {self.lag_limit_ms:g} ms"
        # CPU must stay hot for a while: one busy sample at start-up is not saturation
        if self.cpu_share > self.cpu_limit:
            self._cpu_hot_since = self._cpu_hot_since or wall
            if wall - self._cpu_hot_since >= self.cpu_hot_s and reason is None:
                reason = f"load generator CPU {self.cpu_share:.0%} of a core > {self.cpu_limit:.0%}"
        else:
            self._cpu_hot_since = None
        self.degraded = reason            # live state; the window keeps the first reason it saw
        if reason:
            if self.recorder.current.degraded is None:
                self.recorder.current.degraded = reason

    def probe(self, sleep: Callable[[float], Any], running: Callable[[], bool]) -> None:
        """Run in the client's event loop (a greenlet) until `running()` is false."""
        interval = self.interval_s
        while running():
            t0 = time.perf_counter()
            sleep(interval)
            self.observe(time.perf_counter() - t0 - interval)
