"""Keeping the garbage collector's full collections from pausing the streams the twin serves.

A full (generation 2) collection walks every tracked object the collector has not been told to leave alone.
The twin's process holds hundreds of thousands of long-lived ones (moto's backends, the seeded fleet's stores,
the audit log), and one such walk stalls the event loop for 100-200 ms on a busy 2-core machine: every stream
in flight gets its next token that much later, all at once, and a scenario's TTFT p99 reads a collection
pause instead of the deployment. The pauses must stay proportional to what the twin allocated recently.
"""
from __future__ import annotations

import gc
from typing import Any


def settle() -> None:
    """Collect once, then move every survivor out of the collector's reach (gc.freeze).

    Called once the fleet is seeded and every server is up, just before the twin says it serves.
    """
    gc.collect()
    gc.freeze()


def _refreeze(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def keep_settled() -> None:
    """After every full collection, freeze what survived it, so the next walks only what came since.

    For the twin's own process (`g7chaos twin up`), which lives for one run or one matrix column: cyclic garbage
    among frozen objects is never reclaimed, a bounded cost there, while a test process that starts and stops
    many twins would keep every stopped twin's cycles.
    """
    if _refreeze not in gc.callbacks:
        gc.callbacks.append(_refreeze)
