"""Plots for report.html, rendered with matplotlib's Agg canvas into base64 PNGs.

The report must be one self-contained file an SRE can attach to a ticket, so images are embedded as data URIs.
Figures are built with `matplotlib.figure.Figure` and `FigureCanvasAgg` directly, not pyplot: no global state,
no backend switching behind the caller's back, safe from any thread and in CI without a display.
"""
from __future__ import annotations

import base64
import io
import math
from datetime import datetime
from pathlib import Path
from typing import Iterable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report.model import FaultRecord, WindowMetrics
from harness.report.records import bin_per_second, read_request_points

MAX_BINS = 600


def _bar(value: float | None) -> float:
    """A figure that could not be computed (None, NaN, inf) is drawn as no bar rather than breaking the axes."""
    return value if value is not None and math.isfinite(value) else 0.0


def _png_base64(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def latency_per_window(windows: list[WindowMetrics], slo_ttft_ms: float | None = None,
                       slo_tbt_ms: float | None = None) -> str | None:
    """TTFT and TBT p50/p99 per window as grouped bars (two panels); None when no window has latency."""
    rows = [w for w in windows if any(v is not None for v in (w.ttft_p50_ms, w.ttft_p99_ms, w.tbt_p50_ms,
                                                              w.tbt_p99_ms))]
    if not rows:
        return None
    names = [w.window + (" *" if w.degraded else "") for w in rows]
    fig = Figure(figsize=(max(6.0, 1.3 * len(rows) + 2), 3.4))
    for column, (title, p50, p99, slo) in enumerate((
            ("TTFT (ms)", [w.ttft_p50_ms for w in rows], [w.ttft_p99_ms for w in rows], slo_ttft_ms),
            ("TBT (ms)", [w.tbt_p50_ms for w in rows], [w.tbt_p99_ms for w in rows], slo_tbt_ms))):
        ax = fig.add_subplot(1, 2, column + 1)
        xs = list(range(len(rows)))
        ax.bar([x - 0.2 for x in xs], [_bar(v) for v in p50], width=0.4, label="p50", color="#4c78a8")
        ax.bar([x + 0.2 for x in xs], [_bar(v) for v in p99], width=0.4, label="p99", color="#f58518")
        if slo is not None:
            ax.axhline(slo, color="#e45756", linestyle="--", linewidth=1, label=f"SLO {slo:g} ms")
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Latency per window (* = measurement degraded)", fontsize=10, y=1.04)
    return _png_base64(fig)


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def requests_over_time(records: str | Path | Iterable[str | Path], faults: list[FaultRecord]) -> str | None:
    """Requests and errors per second from the load's per-request records, with fault markers."""
    points = read_request_points(records)
    if not points:
        return None
    span = points[-1].at - points[0].at
    bin_s = max(1.0, span / MAX_BINS)
    starts, requests, errors = bin_per_second(points, bin_s)
    origin = points[0].at
    fig = Figure(figsize=(9.0, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(starts, [r / bin_s for r in requests], label="requests/s", color="#4c78a8", linewidth=1.2)
    ax.plot(starts, [e / bin_s for e in errors], label="errors/s", color="#e45756", linewidth=1.2)
    for fault in faults:
        for when, style, what in ((_ts(fault.injected_at), "-", "injected"), (_ts(fault.landed_at), ":", "landed"),
                                  (_ts(fault.reverted_at), "--", "reverted")):
            if when is not None:
                ax.axvline(when - origin, color="#54a24b", linestyle=style, linewidth=1,
                           label=f"{fault.name} {what}")
    ax.set_xlabel("seconds since first request")
    ax.set_title(f"Request rate and errors ({bin_s:g} s bins)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return _png_base64(fig)
