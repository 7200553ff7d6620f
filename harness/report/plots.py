"""Plots for report.html, rendered with matplotlib's Agg canvas into base64 PNGs.

The report must be one self-contained file an SRE can attach to a ticket, so images are embedded as data URIs.
Figures are built with `matplotlib.figure.Figure` and `FigureCanvasAgg` directly, not pyplot: no global state,
no backend switching behind the caller's back, safe from any thread and in CI without a display.
"""
from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report.model import WindowMetrics

if TYPE_CHECKING:
    from harness.report.timeline import RunTimeline

def _bar(value: float | None) -> float:
    """A figure that could not be computed (None, NaN, inf) is drawn as no bar rather than breaking the axes."""
    return value if value is not None and math.isfinite(value) else 0.0


def _png_base64(fig: Figure, tight: bool = True) -> str:
    """`tight` crops to the drawn area, which costs a second draw: a figure laid out by hand skips it."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight" if tight else None)
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
    fig.suptitle("Latency per window (* = measurement degraded)", fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.86, bottom=0.3, wspace=0.25)
    return _png_base64(fig, tight=False)


# ------------------------------------------------------------------------------------------ the run's timeline
LANE_ROWS = {"fault": 3, "node": 2, "pod": 1, "alarm": 0}
MARK_COLOURS = {"fault": "#54a24b", "node": "#4c78a8", "pod": "#9d755d", "alarm": "#e45756"}
MAX_LABELS_PER_ROW = 40
MAX_NODE_SHARES = 16       # more nodes than this and a per-node lane says nothing legible


def _row(kind: str) -> str:
    if kind.startswith("fault") or kind == "stop-condition":
        return "fault"
    if kind.startswith("pod"):
        return "pod"
    if kind in ("alarm", "event", "zonal-shift"):
        return "alarm"
    return "node"


def timeline(tl: "RunTimeline") -> str | None:
    """The run on one axis: client lane (latency, throughput and goodput), traffic lane (share of answers per
    zone), cluster lane (every mark), fault bands across all lanes; x in deployment seconds since the run began,
    wall seconds on the top axis when the target compresses time."""
    import numpy as np

    series, scale = tl.series, tl.result.time_scale or 1.0
    x = series.t * scale
    by_node = series.node_share if 0 < len(series.node_share) <= MAX_NODE_SHARES else {}
    traffic_lanes = [name for name, shares in (("zone", series.zone_share), ("node", by_node)) if shares]
    lanes = 3 + len(traffic_lanes)
    fig = Figure(figsize=(13.0, 2.3 * lanes + 1.2))
    axes = fig.subplots(lanes, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2] + [1.4] * len(traffic_lanes)
                                                             + [2.4]})
    latency, rate = axes[0], axes[1]
    cluster = axes[-1]
    has = lambda values: bool(len(values)) and bool(np.isfinite(values).any())   # noqa: E731
    for values, label, colour, style in ((series.ttft_p50, "TTFT p50", "#4c78a8", "-"),
                                         (series.ttft_p99, "TTFT p99 (from send)", "#f58518", "-"),
                                         (series.sched_ttft_p99, "TTFT p99 (from scheduled arrival)", "#b279a2", "-"),
                                         (series.tbt_p99, "TBT p99 (longest gap per request)", "#72b7b2", "-")):
        if has(values):
            latency.step(x, values, where="post", label=label, color=colour, linestyle=style, linewidth=1.1)
    for line, label in ((tl.result.slo_ttft_ms, "TTFT SLO"), (tl.result.slo_tbt_ms, "TBT SLO")):
        if line is not None:
            latency.axhline(line, color="#e45756", linestyle="--", linewidth=0.8)
            latency.annotate(f"{label} {line:g} ms", (0, line), xycoords=("axes fraction", "data"), fontsize=7,
                             color="#e45756", va="bottom")
    latency.set_ylabel("ms")
    if has(series.ttft_p99) or has(series.tbt_p99):
        latency.set_yscale("log")
    latency.set_title(f"Client lane ({series.bin_s * scale:g} s bins on the scenario's clock)", fontsize=9, loc="left")
    rate.step(x, series.requests, where="post", label="requests/s", color="#4c78a8", linewidth=1.1)
    rate.step(x, series.goodput, where="post", label="goodput/s (met every SLO)", color="#54a24b", linewidth=1.1)
    rate.step(x, series.errors, where="post", label="errors/s", color="#e45756", linewidth=1.1)
    rate.set_ylabel("per wall s")
    for traffic, lane in zip(axes[2:2 + len(traffic_lanes)], traffic_lanes):
        share_of = series.zone_share if lane == "zone" else by_node
        names = sorted(share_of)
        traffic.stackplot(x, *[np.nan_to_num(share_of[n]) for n in names], step="post", alpha=0.8,
                          labels=[n.split(".")[0] for n in names])
        traffic.set_ylim(0, 1)
        traffic.set_ylabel("share")
        traffic.set_title(f"Traffic lane: answers served per {lane}", fontsize=9, loc="left")
        traffic.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    shown = [m for m in tl.marks if m.kind != "pod-placed"]
    per_row: dict[str, int] = {}
    labelled: dict[str, int] = {}
    seen_reasons: set[str] = set()
    xs_of: dict[str, list[float]] = {}
    for m in shown:
        row = _row(m.kind)
        y = LANE_ROWS[row]
        at = tl.deployment_s(m.at)
        xs_of.setdefault(row, []).append(at)
        per_row[row] = per_row.get(row, 0) + 1
        # pods are counted, not named; an Event reason is named once (the table below lists every mark)
        reason = m.label.split(" ", 1)[0] if m.kind == "event" else m.label
        if row == "pod" or reason in seen_reasons or labelled.get(row, 0) >= MAX_LABELS_PER_ROW:
            continue
        seen_reasons.add(reason)
        count = labelled[row] = labelled.get(row, 0) + 1
        cluster.annotate(reason if m.kind == "event" else m.label, (at, y), xytext=(2, 3 + 6 * (count % 4)),
                         textcoords="offset points", fontsize=6, color=MARK_COLOURS[row], clip_on=True)
    for row, xs in xs_of.items():      # one artist a row: a long run has thousands of marks
        cluster.plot(xs, [LANE_ROWS[row]] * len(xs), marker="|", markersize=12, color=MARK_COLOURS[row],
                     linestyle="none")
    pods = per_row.get("pod", 0)
    rows = sorted(LANE_ROWS, key=LANE_ROWS.__getitem__)
    cluster.set_yticks([LANE_ROWS[r] for r in rows])
    cluster.set_yticklabels([{"pod": f"pods ({pods})", "alarm": "alarms, events", "node": "nodes",
                              "fault": "faults"}[r] for r in rows])
    cluster.set_ylim(-0.6, 3.9)
    cluster.set_title("Cluster lane: what the harness saw", fontsize=9, loc="left")
    for span in tl.spans:
        for ax in axes:
            ax.axvspan(tl.deployment_s(span.start), tl.deployment_s(span.end), color="#e45756", alpha=0.08)
        latency.annotate(span.record.name, (tl.deployment_s(span.start), 1.0), xycoords=("data", "axes fraction"),
                         fontsize=7, va="bottom", color="#c62828")
    for m in tl.milestones:
        if m.at is not None and m.index < len(tl.result.faults):
            cluster.axvline(tl.deployment_s(m.at.timestamp()), color="#777", linestyle=":", linewidth=0.6)
    stop = tl.result.stop_condition
    if stop is not None and stop.fired_at is not None:
        for ax in axes:
            ax.axvline(tl.deployment_s(stop.fired_at.timestamp()), color="#ef6c00", linewidth=1.2)
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax in (latency, rate) and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right", ncol=2)
    cluster.set_xlabel("seconds since the run began, scenario clock (deployment time)")
    if scale != 1.0:
        top = latency.secondary_xaxis("top", functions=(lambda d: d / scale, lambda w: w * scale))
        top.set_xlabel("wall seconds", fontsize=8)
        top.tick_params(labelsize=7)
    # laid out by hand: tight_layout and a tight bounding box would each draw the whole figure once more
    fig.subplots_adjust(left=0.1, right=0.86, top=1 - 0.55 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                        hspace=0.32)
    return _png_base64(fig, tight=False)
