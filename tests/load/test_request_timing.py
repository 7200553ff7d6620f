"""What each record says about a request's timing beyond TTFT: its longest gap between tokens. Real load
processes against the paced SSE server on loopback, each run a few seconds.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from harness.load.process import LoadProcess, read_records

from support.polling import wait_for

from .sse_server import SSEServer
from .test_load_process import SERVED_BY, spec

pytestmark = pytest.mark.quiet   # a longest gap near a 20 ms pace


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
