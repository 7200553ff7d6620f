"""A replica's step timeline is the GPU's, not the twin process's: a twin that waits for a CPU emits late and
catches up, and only a wait longer than RESYNC_S starts a new timeline (harness/twin/serving/replica.py)."""
from __future__ import annotations

import asyncio
import time

from harness.twin import hardware
from harness.twin.serving import replica as engine
from harness.twin.serving.textgen import WordStream

M13 = hardware.MODEL_13B_FP8


def _dues_with_a_stall(stall_s: float, tokens: int = 40, at: int = 10) -> list[float]:
    """One stream on one replica; after `at` tokens the whole process stops for `stall_s` (as a process that
    waits for a CPU does); the due time of every token."""
    async def main() -> list[float]:
        r = engine.Replica("k", M13, "c", ["pod"], ["node"], [("node", 0)])
        seq = engine.Sequence(prompt="p", prefill_tokens=256, context_tokens=256, max_tokens=tokens,
                              stream=WordStream(M13.name, "p"))
        r.submit(seq)
        dues: list[float] = []
        while True:
            kind, _text, due = await seq.queue.get()
            dues.append(due)
            if len(dues) == at:
                time.sleep(stall_s)             # the loop itself stops, engine included
            if kind == "last":
                r.kill("done")
                return dues
    return asyncio.run(main())


def _gaps(dues: list[float]) -> list[float]:
    return [b - a for a, b in zip(dues[1:], dues[2:])]        # after the first token (its step is the prefill)


def test_a_starved_twin_keeps_the_gpus_schedule_and_catches_up():
    gaps = _gaps(_dues_with_a_stall(0.08))
    # a batch of one decodes in ~16.6 ms a token, growing a little with the context: no gap holds the stall
    assert max(gaps) < 1.2 * min(gaps), [round(g * 1e3, 1) for g in gaps]


def test_a_wait_longer_than_resync_starts_a_new_timeline():
    stall = engine.RESYNC_S + 0.1
    gaps = _gaps(_dues_with_a_stall(stall))
    assert max(gaps) >= stall, [round(g * 1e3, 1) for g in gaps]
    assert sorted(gaps)[-2] < 1.2 * min(gaps)                   # the stall moved the timeline once
