"""The twin process keeps its full garbage collections small: whatever survives one is frozen out of the next.

Run in a child interpreter, so this test process's own collector is left as it was."""
from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from harness.twin import heap
heap.settle()
settled = gc.get_freeze_count()
heap.keep_settled(); heap.keep_settled()
kept = [[i] for i in range(50_000)]          # long-lived, tracked: what a running twin accumulates
gc.collect(1)
assert gc.get_freeze_count() == settled, "a young collection freezes nothing"
gc.collect()
frozen = gc.get_freeze_count()
assert frozen >= settled + 50_000, (settled, frozen)
assert len(gc.get_objects(2)) < 1_000, len(gc.get_objects(2))     # the next full collection walks almost nothing
assert gc.callbacks.count(heap._refreeze) == 1
print("ok")
"""


def test_survivors_of_a_full_collection_are_frozen_out_of_the_next() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
