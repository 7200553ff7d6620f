"""What the twin benchmarks share: a twin in its own process reached only through its endpoints file, the
twin's audit log as the server-side clock, and one percentile rule.

The twin runs as `g7chaos twin up` in a child process, as a game day starts it, so the harness's clients
and the twin's loop do not share one interpreter's lock: a reaction measured in one process would time
the GIL, not the watch.
"""
from __future__ import annotations

import math
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.builtin_target import TwinProcess
from harness.target.target import Target
from harness.twin.kube.auditlog import read_audit


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile: with 100 values p99 is the 99th smallest, never an interpolated value."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    """p50/p99/max in ms of a list of durations in seconds, with the count they come from."""
    ms = [s * 1000.0 for s in seconds]
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)
    return {"count": len(ms), "p50_ms": rounded(percentile(ms, 50)), "p99_ms": rounded(percentile(ms, 99)),
            "max_ms": rounded(max(ms) if ms else None)}


@contextmanager
def twin_target(nodes_per_az: int = 2, profile: str = "article", start_timeout_s: float = 120.0
                ) -> Iterator[tuple[Target, TwinProcess, float]]:
    """A twin in a child process and the Target on its endpoints; yields (target, process, start seconds).

    Start seconds run from spawning the process to the twin answering on its inference URL, the moment a
    game day would begin its first scenario."""
    out = Path(tempfile.mkdtemp(prefix="g7bench-twin-"))
    twin = TwinProcess(profile=profile, nodes_per_az=nodes_per_az, out_dir=out)
    started = time.monotonic()
    try:
        endpoints = twin.start(timeout_s=start_timeout_s)
        took = time.monotonic() - started
        yield Target.from_twin_endpoints(endpoints), twin, took
    finally:
        twin.stop()
        shutil.rmtree(out, ignore_errors=True)


class AuditClock:
    """The twin's own time of each call it served (`GET /_twin/audit`), read after a mark."""

    def __init__(self, kube_url: str) -> None:
        self.kube_url = kube_url
        self.mark = int(read_audit(kube_url, since=1 << 62)["mark"])

    def take(self, match: Callable[[dict[str, Any]], bool]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The first call after the mark that `match`es, and every call after the mark; moves the mark."""
        data = read_audit(self.kube_url, since=self.mark)
        self.mark = int(data["mark"])
        calls = data["calls"]
        return next((c for c in calls if match(c)), None), calls
