"""One run on one time axis: what clients saw (the load's records), what the cluster did (cluster.jsonl), and
each fault's milestones and the run's score computed from both (definitions: docs/REPORTS.md).

Everything here is read from the run's folder (result.json, load/records.jsonl, load/dropped.jsonl,
cluster.jsonl), never from a live cluster, so `g7chaos report RUN_DIR` rebuilds the same page a year later and
the tests build reports from recorded runs. A report of a long run stays bounded: records are read once into
numpy arrays (a million records in a few seconds, well under a gigabyte) and binned into at most `MAX_BINS` bins.

Clocks: every stamp in the files is wall time (Unix seconds). The scenario states its limits in deployment
time; a target that compresses time (the twin) runs `time_scale` deployment seconds per wall second. Milestones
carry both (`after_s` on the scenario's clock, `wall_after_s` beside it).
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import logging
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from harness.load.process import CanaryOutcome, analyse_canaries
from harness.report.marks import CLUSTER_JSONL, DETECT_KINDS, ISOLATE_KINDS, ClusterMark, read_marks
from harness.report.model import (MILESTONES, CheckLimit, FaultRecord, Milestone, MilestoneName, RunResult, Score,
                                  limit_within)

log = logging.getLogger(__name__)

MAX_BINS = 600
PARALLEL_FROM_BYTES = 64 << 20     # records.jsonl larger than this is decoded on every core
MIN_BIN_S = 0.25                 # wall seconds: a compressed run still gets a few requests per bin
SUSTAINED_S = 30.0               # deployment seconds goodput must hold to count as restored
SUSTAINED_MIN_BINS = 3
GOODPUT_TOLERANCE = 0.05         # restored: within 5 points of the steady state's goodput
STEADY_WINDOW = "steady"
LEARN_WINDOW = "steady"          # the canaries' golden answers (LoadSpec.canary.learn_window's default)

# the correctness checks that gate the score: a deployment that answers wrongly, runs a retried request twice or
# hid its fault scores 0, however fast it was (docs/REPORTS.md)
GATING_CHECKS = ("no-corrupted-responses", "idempotent-retries", "fault-landed")
# which scenario check bounds which milestone (its `within`)
MILESTONE_LIMITS: dict[MilestoneName, tuple[str, ...]] = {
    "detect": ("alarm-fired",), "isolate": ("traffic-failover",), "drain": ("node-drained",),
    "replace": ("node-replaced", "capacity-restored"), "slo-restored": ("recovery-time",)}
ZONE_WORDS = ("az", "zone")
NODE_WORDS = ("node", "instance", "host")


@dataclass
class LoadRecords:
    """The load's attempts (one row each) and logical requests (one row per idempotency key).

    A logical request's client-side TTFT runs from its first attempt's send to the first token of the attempt
    that answered (retries included); `sched_ttft_ms` runs from when an open-loop request was due
    (`t_arrival`), so time spent waiting for a free user counts (NaN for closed-loop load). A request that no
    attempt answered is a miss, never missing data."""

    # attempts
    start: np.ndarray
    end: np.ndarray
    ttft_ms: np.ndarray            # NaN: no first token
    tbt_max_ms: np.ndarray         # NaN: fewer than two tokens, or not recorded
    tpot_ms: np.ndarray            # mean time per output token after the first; NaN: fewer than two tokens
    failed: np.ndarray             # bool
    zone: np.ndarray               # int code into `zones`, -1 unknown
    node: np.ndarray               # int code into `nodes`
    request: np.ndarray            # row of the logical request
    # logical requests
    r_start: np.ndarray            # first attempt's send (or the arrival, when open loop)
    r_arrival: np.ndarray          # NaN for closed loop
    r_ttft_ms: np.ndarray          # from the first send; NaN when never answered
    r_sched_ttft_ms: np.ndarray    # from the arrival; NaN for closed loop or never answered
    r_tbt_max_ms: np.ndarray
    r_tpot_ms: np.ndarray
    r_end: np.ndarray              # when the answering attempt ended (NaN: never answered)
    r_settled: np.ndarray          # when its client knew the outcome: its last attempt's end
    r_ok: np.ndarray               # answered in the end
    r_keys: list[str]
    dropped: np.ndarray            # open-loop arrivals that found no room: misses
    zones: list[str]
    nodes: list[str]
    canary: CanaryOutcome
    attempt_keys: list[str] = field(default_factory=list)
    # corrupted() and good() per SLO lines, computed once: the series and the milestones both ask (read only)
    _memo: dict[Any, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return len(self.start) == 0

    def corrupted(self) -> np.ndarray:
        """Which logical requests a canary caught answering differently from its golden answer."""
        if "corrupted" not in self._memo:
            wrong = {answer.key for answer in self.canary.mismatches}
            self._memo["corrupted"] = (np.fromiter((key in wrong for key in self.r_keys), dtype=bool,
                                                   count=len(self.r_keys))
                                       if wrong else np.zeros(len(self.r_keys), dtype=bool))
        return self._memo["corrupted"]

    def client_ttft_ms(self) -> np.ndarray:
        """Each logical request's TTFT as its client saw it: from the scheduled arrival for open-loop load, else
        from its first send (retries included)."""
        return np.where(np.isnan(self.r_sched_ttft_ms), self.r_ttft_ms, self.r_sched_ttft_ms)

    def good(self, ttft_ms: float | None, tbt_ms: float | None) -> np.ndarray:
        """Which logical requests met every SLO: answered, not corrupted, first token within the TTFT line (from
        the arrival when the load is open loop), and time per output token within the TBT line (goodput as vLLM's
        benchmark and DistServe define it: a per-request TPOT, since "no gap over the p99 line" would fail most
        healthy long answers; a stall past the load's stall_timeout already failed the request)."""
        key = ("good", ttft_ms, tbt_ms)
        if key not in self._memo:
            good = self.r_ok & ~self.corrupted()
            ttft = self.client_ttft_ms()
            if ttft_ms is not None:
                good &= ~np.isnan(ttft) & (ttft <= ttft_ms)
            if tbt_ms is not None:
                good &= np.isnan(self.r_tpot_ms) | (self.r_tpot_ms <= tbt_ms)
            self._memo[key] = good
        return self._memo[key]


def _role(header: str) -> int:
    """What a served-by header names: 1 a zone, 2 a node, 0 neither (decided once per header name)."""
    name = header.lower()
    if any(w in name for w in ZONE_WORDS):
        return 1
    return 2 if any(w in name for w in NODE_WORDS) else 0


@dataclass
class _Chunk:
    """The columns of one byte range of records.jsonl, with its own codes for keys, zones and nodes."""

    times: np.ndarray               # (n, 6): t_start, t_end, ttft_ms, tbt_max_ms, t_arrival, tokens (NaN: absent)
    codes: np.ndarray               # (n, 4): failed, zone, node, logical request (local codes, -1 unknown)
    keys: list[Any]
    zones: list[str]
    nodes: list[str]
    canaries: list[dict[str, Any]]


def _parse(path: str, begin: int, end: int) -> _Chunk:
    """The records whose line starts in [begin, end) of the file (a line that starts before `begin` belongs to
    the range before). The loop is the report's hot path: one decode, two tuple appends and a few dictionary
    lookups per record; everything else is numpy over the columns afterwards."""
    times: list[tuple[Any, Any, Any, Any, Any, Any]] = []
    codes: list[tuple[bool, int, int, int]] = []
    rows: dict[Any, int] = {}
    zones: dict[str, int] = {}
    nodes: dict[str, int] = {}
    roles: dict[str, int] = {}
    canaries: list[dict[str, Any]] = []
    loads = json.loads
    with open(path, "rb") as fh:
        fh.seek(begin)
        position = begin
        if begin:
            fh.seek(begin - 1)
            position = begin - 1 + len(fh.readline())     # to the start of the first line of this range
        for line in fh:
            if position >= end:
                break
            position += len(line)
            try:
                r = loads(line)
                get = r.get
                start = get("t_start")
            except (ValueError, AttributeError):          # a torn line (a crash mid-write), or not a record
                continue
            if start is None:
                continue
            status = get("status")
            failed = bool(get("error")) or not (isinstance(status, int) and 200 <= status < 400)
            zone = node = -1
            served = get("served_by")
            if served:
                for header, value in served.items():
                    role = roles.get(header)
                    if role is None:
                        role = roles[header] = _role(header)
                    if role == 1:
                        zone = zones.setdefault(str(value), len(zones))
                    elif role == 2:
                        node = nodes.setdefault(str(value), len(nodes))
            key = get("key") or f"#{begin}:{len(codes)}"
            times.append((start, get("t_end"), get("ttft_ms"), get("tbt_max_ms"), get("t_arrival"), get("tokens")))
            codes.append((failed, zone, node, rows.setdefault(key, len(rows))))
            if get("canary") is not None:
                canaries.append(r)
    return _Chunk(times=np.array(times, dtype=float).reshape(-1, 6), codes=np.array(codes, dtype=np.int64).reshape(-1, 4),
                  keys=list(rows), zones=list(zones), nodes=list(nodes), canaries=canaries)


def _recode(local: np.ndarray, names: list[Any], merged: dict[Any, int]) -> np.ndarray:
    """Local codes (-1 unknown) as codes into `merged`, which learns the names it did not know."""
    mapping = np.array([merged.setdefault(name, len(merged)) for name in names] + [-1], dtype=np.int64)
    return mapping[local]          # -1 indexes the trailing -1


def _chunks(path: Path) -> list[_Chunk]:
    """One chunk per core for a large file (the decode is CPU-bound and the records are independent lines),
    one for a small one, where starting processes would cost more than it saves."""
    size = path.stat().st_size
    workers = min(os.cpu_count() or 1, 4)
    if size < PARALLEL_FROM_BYTES or workers < 2:
        return [_parse(str(path), 0, size)]
    bounds = [size * k // workers for k in range(workers + 1)]
    try:
        # spawn: the report may be built inside a run whose watch threads a fork would copy mid-lock
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_parse, [str(path)] * workers, bounds[:-1], bounds[1:]))
    except (OSError, RuntimeError, BrokenProcessPool) as exc:   # no processes to be had: one core it is
        log.warning("records decoded in one process (%s)", exc)
        return [_parse(str(path), 0, size)]


def read_load(records_path: str | Path | None, dropped_path: str | Path | None = None) -> LoadRecords:
    """Parse the records once; keep only what the report needs (torn lines, a crash mid-write, are skipped)."""
    path = Path(records_path) if records_path else None
    chunks = _chunks(path) if path is not None and path.exists() else []
    keys: dict[Any, int] = {}
    zones: dict[str, int] = {}
    nodes: dict[str, int] = {}
    times, coded, canaries = [np.zeros((0, 6))], [np.zeros((0, 4), dtype=np.int64)], []
    for chunk in chunks:
        codes = chunk.codes.copy()
        codes[:, 1] = _recode(codes[:, 1], chunk.zones, zones)
        codes[:, 2] = _recode(codes[:, 2], chunk.nodes, nodes)
        codes[:, 3] = _recode(codes[:, 3], chunk.keys, keys)
        times.append(chunk.times)
        coded.append(codes)
        canaries.extend(chunk.canaries)
    columns, codes = np.concatenate(times), np.concatenate(coded)
    start, end, ttft, tbt, arrivals, tokens = (columns[:, k].copy() for k in range(6))
    with np.errstate(invalid="ignore", divide="ignore"):
        # the stream after its first token, per token after the first (t_end is when the stream ended)
        tpot = np.where(tokens >= 2, ((end - start) * 1000.0 - ttft) / (tokens - 1), math.nan)
    failed, request = codes[:, 0].astype(bool), codes[:, 3]
    n = len(keys)
    # per logical request: its first attempt (earliest send), the last attempt that answered, its arrival
    first = np.full(n, -1, dtype=np.int64)
    if len(start):
        order = np.lexsort((start, request))
        heads = np.ones(len(order), dtype=bool)
        heads[1:] = request[order][1:] != request[order][:-1]
        first[request[order][heads]] = order[heads]
    answer = np.full(n, -1, dtype=np.int64)
    answered = np.flatnonzero(~failed)
    np.maximum.at(answer, request[answered], answered)
    arrival = np.full(n, math.nan)
    np.fmax.at(arrival, request, arrivals)
    ok = answer >= 0
    safe = np.where(ok, answer, 0)
    key_names = list(keys)
    r_ttft = r_tbt = r_sched = r_tpot = r_end = np.full(n, math.nan)
    settled = np.full(n, math.nan)
    np.fmax.at(settled, request, end)
    r_start = np.fmin(start[first], arrival) if n else np.full(0, math.nan)
    if n:
        answered_at_ms = start[safe] * 1000.0 + ttft[safe]        # first token of the attempt that answered
        r_ttft = np.where(ok, answered_at_ms - start[first] * 1000.0, math.nan)
        r_sched = np.where(ok, answered_at_ms - arrival * 1000.0, math.nan)    # NaN where no arrival
        r_tbt = np.where(ok, tbt[safe], math.nan)
        r_tpot = np.where(ok, tpot[safe], math.nan)
        r_end = np.where(ok, end[safe], math.nan)
    dropped: list[float] = []
    if dropped_path and Path(dropped_path).exists():
        with Path(dropped_path).open("rb") as fh:
            for line in fh:
                try:
                    dropped.append(float(json.loads(line)["t_arrival"]))
                except (ValueError, KeyError, TypeError):
                    continue
    return LoadRecords(
        start=start, end=end, ttft_ms=ttft, tbt_max_ms=tbt, tpot_ms=tpot, failed=failed, zone=codes[:, 1].astype(np.int16),
        node=codes[:, 2].astype(np.int32), request=request, r_start=r_start, r_arrival=arrival, r_ttft_ms=r_ttft,
        r_sched_ttft_ms=r_sched, r_tbt_max_ms=r_tbt, r_tpot_ms=r_tpot, r_end=r_end, r_settled=settled, r_ok=ok, r_keys=key_names,
        dropped=np.sort(np.asarray(dropped, dtype=float)), zones=list(zones), nodes=list(nodes),
        canary=analyse_canaries(canaries, LEARN_WINDOW))


# ------------------------------------------------------------------------------------------ the series
@dataclass
class Series:
    """Per-bin figures on the run's axis: `t` is each bin's start in wall seconds since `origin`."""

    origin: float
    bin_s: float
    t: np.ndarray
    requests: np.ndarray           # attempts sent per second
    errors: np.ndarray             # attempts failed per second (by when they ended)
    goodput: np.ndarray            # logical requests per second that met every SLO (by when they began)
    goodput_share: np.ndarray      # that share of the requests that began (dropped arrivals count), NaN: none
    ttft_p50: np.ndarray
    ttft_p99: np.ndarray
    sched_ttft_p99: np.ndarray     # NaN for closed-loop load
    tbt_p99: np.ndarray            # p99 over the bin's attempts of each attempt's longest gap
    zone_share: dict[str, np.ndarray]
    node_share: dict[str, np.ndarray]      # where the target names the node that answered


def _bin_size(span: float) -> float:
    """The smallest of 0.25, 0.5, 1, 2, 5, 10... wall seconds that keeps the run within MAX_BINS bins."""
    raw = max(MIN_BIN_S, span / MAX_BINS)
    for step in (0.25, 0.5):
        if raw <= step:
            return step
    magnitude = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * magnitude:
            return float(mult * magnitude)
    return float(10 * magnitude)


def _percentile_by_bin(index: np.ndarray, values: np.ndarray, n: int, q: float) -> np.ndarray:
    out = np.full(n, math.nan)
    keep = ~np.isnan(values) & (index >= 0) & (index < n)
    if not keep.any():
        return out
    index, values = index[keep], values[keep]
    order = np.lexsort((values, index))
    index, values = index[order], values[order]
    bounds = np.searchsorted(index, np.arange(n + 1))
    for b in range(n):
        lo, hi = bounds[b], bounds[b + 1]
        if hi > lo:
            # nearest rank, as the HDR histograms report it
            out[b] = values[lo + max(0, math.ceil(q / 100.0 * (hi - lo)) - 1)]
    return out


def build_series(load: LoadRecords, origin: float, end: float, ttft_ms: float | None,
                 tbt_ms: float | None) -> Series:
    span = max(end - origin, MIN_BIN_S)
    bin_s = _bin_size(span)
    n = int(math.ceil(span / bin_s))

    def index(times: np.ndarray) -> np.ndarray:
        return np.floor((times - origin) / bin_s).astype(np.int64)

    def count(times: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        idx = index(times if mask is None else times[mask])
        idx = idx[(idx >= 0) & (idx < n)]
        return np.bincount(idx, minlength=n)[:n].astype(float)

    a_idx = index(load.start)
    good = load.good(ttft_ms, tbt_ms)
    began = count(load.r_start) + count(load.dropped)
    good_n = count(load.r_start, good)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(began > 0, good_n / began, math.nan)
    def shares(codes: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Each name's share of the answers that named one, per bin (NaN where none did)."""
        served = (~load.failed) & (codes >= 0)
        total = count(load.start, served)
        out = {}
        for code, name in enumerate(names):
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(total > 0, count(load.start, served & (codes == code)) / total, math.nan)
        return out

    sched = np.full(len(load.start), math.nan)
    if len(load.start):
        sched = load.r_sched_ttft_ms[load.request]
    return Series(origin=origin, bin_s=bin_s, t=np.arange(n) * bin_s,
                  requests=count(load.start) / bin_s, errors=count(load.end, load.failed) / bin_s,
                  goodput=good_n / bin_s, goodput_share=share,
                  ttft_p50=_percentile_by_bin(a_idx, load.ttft_ms, n, 50), ttft_p99=_percentile_by_bin(a_idx, load.ttft_ms, n, 99),
                  sched_ttft_p99=_percentile_by_bin(a_idx, sched, n, 99),
                  tbt_p99=_percentile_by_bin(a_idx, load.tbt_max_ms, n, 99),
                  zone_share=shares(load.zone, load.zones), node_share=shares(load.node, load.nodes))


# ------------------------------------------------------------------------------------------ milestones
def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None


@dataclass
class FaultSpan:
    """A fault on the axis: from when service may have suffered (the loss, else the injection) to its revert."""

    record: FaultRecord
    start: float
    end: float
    zone: str | None

    @classmethod
    def of(cls, fault: FaultRecord, run_end: float) -> "FaultSpan | None":
        injected = _ts(fault.injected_at)
        if injected is None:
            return None
        start = _ts(fault.lost_at) or _ts(fault.injection_started_at) or injected
        zone = fault.params.get("zone") if isinstance(fault.params.get("zone"), str) else None
        return cls(record=fault, start=start, end=_ts(fault.reverted_at) or run_end, zone=zone)

    def mine(self, mark: ClusterMark) -> bool:
        """Is the mark about this fault's nodes (or its zone)?"""
        if mark.node is not None and mark.node in self.record.nodes:
            return True
        return self.zone is not None and mark.zone == self.zone


class MilestoneFinder:
    """Each fault's milestones from the records and the marks (definitions: docs/REPORTS.md, "Milestones")."""

    def __init__(self, result: RunResult, load: LoadRecords, marks: list[ClusterMark], run_end: float):
        self.result = result
        self.load = load
        self.marks = marks
        self.run_end = run_end
        self.scale = result.time_scale or 1.0
        self.ttft_ms, self.tbt_ms = result.slo_ttft_ms, result.slo_tbt_ms
        self.good = load.good(self.ttft_ms, self.tbt_ms)
        self.steady_goodput = steady_goodput(result, load, self.good)

    def all(self) -> list[Milestone]:
        out: list[Milestone] = []
        for fault in self.result.faults:
            span = FaultSpan.of(fault, self.run_end)
            if span is None:
                out.extend(Milestone(fault=fault.name, index=fault.index, name=name,
                                     absent="the fault was never injected") for name in MILESTONES)
                continue
            out.extend(self.of(span))
        return out

    def milestone(self, span: FaultSpan, name: MilestoneName, at: float | None, source: str,
                   absent: str | None = None) -> Milestone:
        wall = None if at is None else at - span.start
        return Milestone(fault=span.record.name, index=span.record.index, name=name, at=_dt(at),
                         wall_after_s=None if wall is None else round(wall, 3),
                         after_s=None if wall is None else round(wall * self.scale, 3),
                         limit_s=limit_for(self.result.limits, name, span.record),
                         source=source if at is not None else "", absent=None if at is not None else absent)

    def of(self, span: FaultSpan) -> list[Milestone]:
        impact = self.impact(span)
        marks_after = [m for m in self.marks if m.at >= span.start and m.kind not in ("pod-placed",)
                       and not m.kind.startswith("fault-")]
        detect = next((m for m in marks_after if m.kind in DETECT_KINDS and (m.kind == "alarm" and "ALARM" in m.label
                                                                               or span.mine(m))), None)
        isolate = self.isolate(span, marks_after)
        drain = self.drain(span)
        replace = self.replace(span, drain)
        restored = self.restored(span, impact[0])
        return [
            self.milestone(span, "impact", impact[0], impact[1],
                            "no late, failed or corrupted answer after the fault began"),
            self.milestone(span, "detect", detect.at if detect else None,
                            f"cluster.jsonl: {detect.label}" if detect else "",
                            "no node condition, Ready change, Kubernetes Event on the fault's nodes or alarm "
                            "entering ALARM was seen after the fault began"),
            self.milestone(span, "isolate", isolate[0], isolate[1], isolate[2]),
            self.milestone(span, "drain", drain[0], drain[1], drain[2]),
            self.milestone(span, "replace", replace[0], replace[1], replace[2]),
            self.milestone(span, "slo-restored", restored[0], restored[1], restored[2]),
        ]

    # -- each milestone
    def impact(self, span: FaultSpan) -> tuple[float | None, str]:
        """The first moment after the fault began that a client saw something bad: an attempt failed (at its
        end), a request's first token became late (at its start plus the TTFT line, from the scheduled arrival
        for open-loop load), an answer came slower than the TBT line per token (at its end), an arrival was
        dropped, or a canary answered differently from its golden answer (at its end)."""
        load = self.load
        candidates: list[tuple[float, str]] = []

        def first(at: np.ndarray, mask: np.ndarray, why: Callable[[int], str]) -> None:
            mask = mask & (at >= span.start)
            if mask.any():
                i = int(np.flatnonzero(mask)[np.argmin(at[mask])])
                candidates.append((float(at[i]), why(i)))

        if not load.empty:
            first(load.end, load.failed, lambda i: f"records.jsonl: request {load.r_keys[load.request[i]]} attempt "
                                                   f"failed")
            ttft = load.client_ttft_ms()
            if self.ttft_ms is not None:
                first(load.r_start + self.ttft_ms / 1000.0, load.r_ok & (ttft > self.ttft_ms),
                      lambda i: f"records.jsonl: request {load.r_keys[i]} first token after {ttft[i]:.0f} ms")
            if self.tbt_ms is not None:
                first(load.r_end, load.r_ok & (load.r_tpot_ms > self.tbt_ms),
                      lambda i: f"records.jsonl: request {load.r_keys[i]} {load.r_tpot_ms[i]:.0f} ms per output token")
        first(load.dropped, np.ones(len(load.dropped), dtype=bool), lambda i: "dropped.jsonl: an arrival found no room")
        wrong = [a for a in load.canary.mismatches if a.t_end >= span.start]
        if wrong:
            candidates.append((wrong[0].t_end, f"records.jsonl: canary {wrong[0].key} answered differently from "
                                               f"its golden answer (corrupted)"))
        if not candidates:
            return None, ""
        return min(candidates)

    def isolate(self, span: FaultSpan, marks: list[ClusterMark]) -> tuple[float | None, str, str]:
        """The first cordon, replica pulled from service or zonal shift on the fault's nodes; for a lost zone,
        also the moment clients stopped being sent there (the last attempt the zone got)."""
        candidates = [(m.at, f"cluster.jsonl: {m.label}") for m in marks if m.kind in ISOLATE_KINDS and span.mine(m)]
        if span.zone is not None and not self.load.empty and span.zone in self.load.zones:
            code = self.load.zones.index(span.zone)
            sent = (self.load.zone == code) & (self.load.start >= span.start) & (self.load.start < span.end)
            last = float(self.load.start[sent].max()) if sent.any() else span.start
            candidates.append((last, f"records.jsonl: no request was sent to {span.zone} after this"
                                     if sent.any() else f"records.jsonl: no request went to {span.zone} after the loss"))
        if not candidates:
            return None, "", "no cordon, replica pulled from service or zonal shift on the fault's nodes"
        at, source = min(candidates)
        return at, source, ""

    def _pods_at(self, span: FaultSpan) -> dict[str, float | None]:
        """The pods on the fault's nodes when it began (and any placed there later), each with when it left."""
        pods: dict[str, float | None] = {}
        for m in self.marks:
            if m.node not in span.record.nodes:
                continue
            if m.kind == "pod-placed":
                if m.at <= span.start or m.subject not in pods:
                    pods[m.subject] = None
            elif m.kind in ("pod-evicted", "pod-deleted") and m.subject in pods:
                if m.at < span.start:
                    pods.pop(m.subject, None)
                elif pods[m.subject] is None:
                    pods[m.subject] = m.at
        return pods

    def drain(self, span: FaultSpan) -> tuple[float | None, str, str]:
        if not span.record.nodes:
            return None, "", "the fault touched no node"
        pods = self._pods_at(span)
        if not pods:
            return None, "", "no pod was seen on the fault's nodes"
        left = [name for name, gone in pods.items() if gone is None]
        if left:
            taken = any(m.kind in ("cordon", "node-deleted") and span.mine(m) and m.at >= span.start
                        for m in self.marks)
            return None, "", (f"{len(left)} of {len(pods)} pod(s) never left the fault's nodes within the run" if taken
                              else "the fault's nodes were never cordoned: nothing was drained")
        last = max(pods, key=lambda name: pods[name] or 0.0)
        return pods[last], f"cluster.jsonl: pod {last} left, the last of {len(pods)}", ""

    def replace(self, span: FaultSpan, drain: tuple[float | None, str, str]) -> tuple[float | None, str, str]:
        """The first node that joined after the fault began and became Ready."""
        known = {m.subject for m in self.marks if m.kind.startswith("node") and m.at < span.start}
        known |= {m.node for m in self.marks if m.kind == "pod-placed" and m.at < span.start and m.node}
        joined = [m for m in self.marks if m.kind == "node-ready" and m.at >= span.start and m.subject not in known
                  and m.subject not in span.record.nodes]
        if joined:
            return joined[0].at, f"cluster.jsonl: {joined[0].label}", ""
        taken = any(m.kind in ("cordon", "node-deleted") and span.mine(m) and m.at >= span.start for m in self.marks)
        return None, "", ("no new node became Ready within the run" if taken else
                          "no node was taken out of service, so none had to be replaced")

    def restored(self, span: FaultSpan, impact: float | None) -> tuple[float | None, str, str]:
        """When goodput was back within GOODPUT_TOLERANCE of the steady state's and held for SUSTAINED_S."""
        if impact is None:
            return None, "", "service never suffered: nothing to restore"
        steady = self.steady_goodput
        if steady is None:
            return None, "", "no steady-state goodput to compare with (no steady window in the records)"
        bin_s = _bin_size(max(self.run_end - impact, MIN_BIN_S))
        need = max(SUSTAINED_MIN_BINS, math.ceil(SUSTAINED_S / self.scale / bin_s))
        # each request counts when its client knew the outcome (a corrupted or failed answer at its end), so
        # an answer that went bad after the impact began is inside the windows judged
        began = np.concatenate([self.load.r_settled, self.load.dropped])
        good = np.concatenate([self.good, np.zeros(len(self.load.dropped), dtype=bool)])
        bad = np.concatenate([self.load.corrupted(), np.zeros(len(self.load.dropped), dtype=bool)])
        n = int(math.ceil((self.run_end - impact) / bin_s))
        idx = np.floor((began - impact) / bin_s).astype(np.int64)
        keep = (idx >= 0) & (idx < n)
        total = np.bincount(idx[keep], minlength=n)[:n]
        ok = np.bincount(idx[keep], weights=good[keep].astype(float), minlength=n)[:n]
        corrupted = np.bincount(idx[keep], weights=bad[keep].astype(float), minlength=n)[:n]
        # judged over each sustained window as a whole (a quiet bin with no request is no evidence either way);
        # a corrupted answer is never "restored" service, however small a share of the goodput it costs: service
        # is restored only from a window after which no corrupted answer came
        totals, oks, wrongs = (np.concatenate([[0.0], np.cumsum(v)]) for v in (total, ok, corrupted))
        for b in range(0, n - need + 1):
            requests, met = totals[b + need] - totals[b], oks[b + need] - oks[b]
            if requests > 0 and met >= (steady - GOODPUT_TOLERANCE) * requests and wrongs[n] == wrongs[b]:
                return impact + b * bin_s, (f"records.jsonl: goodput {100 * met / requests:.1f} % from here for "
                                            f"{need * bin_s * self.scale:.0f} s (steady {100 * steady:.1f} %)"), ""
        return None, "", (f"goodput never held within {100 * GOODPUT_TOLERANCE:.0f} points of the steady state's "
                          f"{100 * steady:.1f} %, with no corrupted answer, for {SUSTAINED_S:.0f} s within the run")


def limit_for(limits: list[CheckLimit], name: MilestoneName, fault: FaultRecord) -> float | None:
    """The `within` of the first scenario check that bounds this milestone and judges this fault."""
    return next((within for check in MILESTONE_LIMITS.get(name, ())
                 if (within := limit_within(limits, check, fault.name, fault.index)) is not None), None)


def _window(result: RunResult, name: str) -> tuple[float, float] | None:
    for w in result.metrics.windows:
        if w.window == name and w.started_at is not None:
            return w.started_at.timestamp(), (w.ended_at.timestamp() if w.ended_at else math.inf)
    return None


def steady_goodput(result: RunResult, load: LoadRecords, good: np.ndarray) -> float | None:
    """The share of requests that met every SLO in the steady-state window (None: no such window or request)."""
    window = _window(result, STEADY_WINDOW)
    if window is None or load.empty:
        return None
    began = (load.r_start >= window[0]) & (load.r_start < window[1])
    dropped = int(((load.dropped >= window[0]) & (load.dropped < window[1])).sum())
    total = int(began.sum()) + dropped
    return float(good[began].sum()) / total if total else None


def fault_goodput(spans: Iterable[FaultSpan], load: LoadRecords, good: np.ndarray) -> float | None:
    """The share of requests that met every SLO among those that began while any fault was in place."""
    inside = np.zeros(len(load.r_start), dtype=bool)
    dropped = np.zeros(len(load.dropped), dtype=bool)
    for span in spans:
        inside |= (load.r_start >= span.start) & (load.r_start < span.end)
        dropped |= (load.dropped >= span.start) & (load.dropped < span.end)
    total = int(inside.sum()) + int(dropped.sum())
    return float(good[inside].sum()) / total if total else None


# ------------------------------------------------------------------------------------------ the score
def score(result: RunResult, milestones: list[Milestone], goodput_steady: float | None,
          goodput_fault: float | None) -> Score:
    """0-100, docs/REPORTS.md "The score": gated to 0 by a failed correctness check or a fault that did not
    land; else the mean of the goodput part (fault goodput over steady, at most 1) and the milestone part (each
    bounded milestone: 1 within its limit, limit/actual beyond it, 0 when it never came)."""
    gated = [c.name for c in result.checks if c.name in GATING_CHECKS and c.status == "fail"]
    gated += [f"fault {f.name} did not land" for f in result.faults if not f.did_land]
    goodput_part = None
    if goodput_steady is not None and goodput_fault is not None:
        goodput_part = 1.0 if goodput_steady <= 0 else min(1.0, goodput_fault / goodput_steady)
    parts = []
    for m in milestones:
        if m.limit_s is None:
            continue
        if m.after_s is not None:
            parts.append(1.0 if m.after_s <= m.limit_s else m.limit_s / m.after_s)
        elif m.name == "slo-restored" and m.absent and m.absent.startswith("service never suffered"):
            parts.append(1.0)
        elif m.name == "replace" and m.absent and m.absent.startswith("no node was taken out"):
            continue
        else:
            parts.append(0.0)
    milestone_part = sum(parts) / len(parts) if parts else None
    used = [p for p in (goodput_part, milestone_part) if p is not None]
    value = 0.0 if gated else round(100.0 * sum(used) / len(used), 1) if used else 0.0
    if gated:
        detail = "gated: " + "; ".join(gated)
    elif not used:
        detail = "no goodput or bounded milestone to score"
    else:
        pieces = []
        if goodput_part is not None:
            pieces.append(f"goodput {100 * goodput_fault:.1f} % during faults vs {100 * goodput_steady:.1f} % steady")
        if milestone_part is not None:
            pieces.append(f"milestones {100 * milestone_part:.0f} % of their limits' worth ({len(parts)} bounded)")
        detail = "; ".join(pieces)
    return Score(value=value, gated_by=gated, goodput_steady=goodput_steady, goodput_fault=goodput_fault,
                 goodput_part=None if goodput_part is None else round(goodput_part, 4),
                 milestone_part=None if milestone_part is None else round(milestone_part, 4), detail=detail)


# ------------------------------------------------------------------------------------------ one run
@dataclass
class RunTimeline:
    """Everything the report draws and judges, read from one run folder."""

    result: RunResult
    load: LoadRecords
    marks: list[ClusterMark]
    origin: float
    end: float
    series: Series
    spans: list[FaultSpan]
    milestones: list[Milestone]
    score: Score

    @classmethod
    def build(cls, result: RunResult, run_dir: str | Path, records: str | Path | None = None) -> "RunTimeline":
        run_dir = Path(run_dir)
        records_path = Path(records) if records else run_dir / "load" / "records.jsonl"
        load = read_load(records_path, records_path.with_name("dropped.jsonl"))
        marks = read_marks(run_dir / CLUSTER_JSONL)
        origin = result.started_at.timestamp()
        ends = [result.ended_at.timestamp()] if result.ended_at else []
        if not load.empty:
            ends.append(float(np.nanmax(load.end)))
        end = max(ends + [origin + MIN_BIN_S])
        finder = MilestoneFinder(result, load, marks, end)
        milestones = finder.all()
        spans = [s for s in (FaultSpan.of(f, end) for f in result.faults) if s is not None]
        the_score = score(result, milestones, finder.steady_goodput, fault_goodput(spans, load, finder.good))
        series = build_series(load, origin, end, result.slo_ttft_ms, result.slo_tbt_ms)
        return cls(result=result, load=load, marks=marks, origin=origin, end=end, series=series, spans=spans,
                   milestones=milestones, score=the_score)

    def deployment_s(self, at: float) -> float:
        """Seconds since the run began on the scenario's clock."""
        return (at - self.origin) * (self.result.time_scale or 1.0)

    def ttft_figures(self) -> dict[str, float | None]:
        """Whole-run TTFT p50/p99 from the send and, for open-loop load, from the scheduled arrival."""
        def pct(values: np.ndarray, q: float) -> float | None:
            values = values[~np.isnan(values)]
            return round(float(np.percentile(values, q, method="inverted_cdf")), 3) if len(values) else None
        return {"send_p50_ms": pct(self.load.ttft_ms, 50), "send_p99_ms": pct(self.load.ttft_ms, 99),
                "arrival_p50_ms": pct(self.load.r_sched_ttft_ms, 50),
                "arrival_p99_ms": pct(self.load.r_sched_ttft_ms, 99),
                "dropped_arrivals": float(len(self.load.dropped))}
