"""Reading the load generator's per-request records for the report's time-series plots.

The load process appends one JSON object per request to a JSONL file per worker (key, attempt, status,
served-by, TTFT, tokens, text digest, window, t_start, t_end, error). The report only needs when each request
started and whether it failed, so this reader is deliberately forgiving: it accepts a file, a directory of
`*.jsonl` files or a list of either, skips torn lines (a crash mid-write) and tolerates a few spellings of the
time field. It is bounded: a report never loads more than `MAX_RECORDS` records.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from harness.jsonl import iter_records

MAX_RECORDS = 2_000_000
_TIME_KEYS = ("t_start", "ts", "t", "started_at", "start", "sent_at", "at")


@dataclass(frozen=True)
class RequestPoint:
    at: float        # Unix seconds when the request started
    failed: bool


def _paths(source: str | Path | Iterable[str | Path]) -> list[Path]:
    items = [source] if isinstance(source, (str, Path)) else list(source)
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            out.extend(sorted(path.glob("*.jsonl")))
        elif path.is_file():
            out.append(path)
    return out


def _time(record: dict[str, Any]) -> float | None:
    for key in _TIME_KEYS:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _failed(record: dict[str, Any]) -> bool:
    if record.get("error"):
        return True
    if record.get("ok") is False or record.get("failed") is True:
        return True
    status = record.get("status")
    return isinstance(status, int) and not isinstance(status, bool) and (status >= 400 or status == 0)


def read_request_points(source: str | Path | Iterable[str | Path]) -> list[RequestPoint]:
    """Request start times and outcomes from records file(s), sorted by time."""
    points: list[RequestPoint] = []
    for path in _paths(source):
        for record in iter_records(path):
            if len(points) >= MAX_RECORDS:
                break
            at = _time(record)
            if at is not None:
                points.append(RequestPoint(at=at, failed=_failed(record)))
    points.sort(key=lambda p: p.at)
    return points


def bin_per_second(points: list[RequestPoint], bin_s: float = 1.0) -> tuple[list[float], list[int], list[int]]:
    """(bin start offsets from the first request, requests per bin, errors per bin)."""
    if not points:
        return [], [], []
    start = points[0].at
    n_bins = int((points[-1].at - start) // bin_s) + 1
    requests = [0] * n_bins
    errors = [0] * n_bins
    for point in points:
        index = int((point.at - start) // bin_s)
        requests[index] += 1
        if point.failed:
            errors[index] += 1
    return [i * bin_s for i in range(n_bins)], requests, errors
