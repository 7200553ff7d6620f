"""What each record says about a request's timing beyond TTFT: when it was due (open loop) and its longest gap
between tokens. Real load processes against the paced SSE server on loopback, each run a few seconds.
"""
from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

import pytest

from harness.load.process import LoadProcess, read_records

from support.polling import wait_for

from .sse_server import SSEServer
from .test_load_process import SERVED_BY, spec

pytestmark = pytest.mark.quiet   # a longest gap near a 20 ms pace, and queue waits to 50 ms

RATE = 20.0          # arrivals per second: 5 times what one user at ~0.23 s per request can serve


def test_open_loop_arrivals_queue_with_their_scheduled_time_and_drops_are_kept(server: SSEServer,
                                                                               tmp_path: Path) -> None:
    """One user, arrivals five times faster than it serves: each request waits for the one before, at most one
    waits, the rest are dropped into dropped.jsonl; and every arrival time is the seeded schedule's own, so the
    report's TTFT from the scheduled arrival includes the queue."""
    load = LoadProcess()
    s = spec(users=1, arrival="poisson", rate=RATE, max_requests=6, duration_s=15, seed=3)
    w0 = time.time()
    load.start(server.url, s, tmp_path, SERVED_BY, first_window="open")
    try:
        wait_for(lambda: not load.alive(), 25, "the load to stop at its request bound")
    finally:
        result = load.stop()
    w1 = time.time()
    assert result.complete, result.problems
    assert server.max_in_flight <= 1
    records = read_records(result.records_path)
    assert result.whole.requests == 6 and result.whole.errors == 0
    first = {}
    for r in records:
        assert r["t_arrival"] <= r["t_start"] + 0.005, r        # due before it was sent, never after
        first.setdefault(r["key"], r)
    served = sorted(first.values(), key=lambda r: r["t_arrival"])
    assert len(served) == 6
    assert [r["key"] for r in served] == [r["key"] for r in sorted(served, key=lambda r: r["t_start"])]  # FIFO

    # Queued requests were due well before they were sent: latency from the scheduled arrival exceeds TTFT.
    waits = [r["t_start"] - r["t_arrival"] for r in served]
    queued = [r for r, wait in zip(served, waits) if wait > 0.05]
    assert len(queued) >= 3, waits
    for r in queued:
        assert r["ttft_ms"] + (r["t_start"] - r["t_arrival"]) * 1000 > r["ttft_ms"] + 50
    # The queue holds at most `users` (1) arrivals: none was admitted while another was still waiting
    # (50 ms of slack for this loop waking late: the admission is at or after the scheduled time).
    for a in served[1:]:
        waiting = [b["key"] for b in served if b["t_arrival"] < a["t_arrival"] and b["t_start"] > a["t_arrival"] + 0.05]
        assert not waiting, (a, waiting)

    assert result.dropped_path is not None
    dropped = [json.loads(line) for line in Path(result.dropped_path).read_text().splitlines()]
    assert dropped and len(dropped) == result.whole.dropped
    for d in dropped:
        assert w0 < d["t_arrival"] < w1 and d["window"] == "open" and d["worker"] == 0, d
        # dropped only when the queue was full: an earlier arrival was still waiting for the user
        assert any(b["t_arrival"] < d["t_arrival"] < b["t_start"] for b in served), d

    # Every arrival, sent or dropped, is where the seeded schedule put it, to the microsecond: stamped from the
    # schedule, not from when the loop got round to it (which is late by a busy event loop's lag).
    arrivals = sorted([r["t_arrival"] for r in served] + [d["t_arrival"] for d in dropped])
    rng = random.Random(s.seed * 1009 + 0)                      # LoadState.poisson_arrivals' stream, process 0
    draws = [rng.expovariate(RATE) for _ in arrivals]
    errors = [abs((b - a) - gap) for a, b, gap in zip(arrivals, arrivals[1:], draws[1:])]
    assert max(errors) < 5e-6, max(errors)


def test_each_record_keeps_its_longest_gap_between_tokens(server: SSEServer, tmp_path: Path) -> None:
    """Streams paced at 20 ms report a longest gap near 20 ms; streams with one 250 ms pause report at least it."""
    gap_ms, pause_ms = server.gap_s * 1000, server.pause_s * 1000
    load = LoadProcess()
    load.start(server.url, spec(users=2, stall_timeout_s=1.0), tmp_path, SERVED_BY, first_window="even")
    try:
        wait_for(lambda: sum(1 for x in server.served if x.mode == "ok") >= 6, 20, "6 evenly paced requests")
        server.mode = "pause"
        wait_for(lambda: sum(1 for x in server.served if x.mode == "pause" and len(x.sends) == 10) >= 4, 20,
                 "4 paused streams sent")
        time.sleep(0.1)                  # their last tokens reach the client
    finally:
        result = load.stop()
        server.mode = "ok"
    served = {(x.key, x.attempt): x for x in server.served}
    even, paused = [], []
    for r in read_records(result.records_path):
        x = served.get((r["key"], r["attempt"]))
        if x is None or r["error"] is not None or r["tokens"] != 10:
            continue                     # cut short by stop()
        (paused if x.mode == "pause" else even).append(r["tbt_max_ms"])
    assert len(even) >= 4 and len(paused) >= 3, (even, paused)
    assert all(v >= pause_ms for v in paused), paused
    assert all(v < pause_ms / 2 for v in even), even
    assert gap_ms - 5 <= statistics.median(even) <= gap_ms + 10, even
