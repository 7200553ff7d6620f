"""Helpers the fault modules share: a fresh run context, and waits that end on the condition, not a clock."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.faults import RunContext
from harness.journal import Journal
from harness.observe import Timeline
from harness.target.target import Target


def run_context(target: Target, tmp_path: Path, seed: int | None = 3, journal: str = "journal.jsonl") -> RunContext:
    return RunContext(target=target, journal=Journal(tmp_path / journal), timeline=Timeline(),
                      rng=random.Random(seed))


def until(predicate: Callable[[], Any], seconds: float, what: str) -> Any:
    """predicate()'s first truthy value, polled every 0.1 s; an AssertionError naming `what` after `seconds`."""
    try:
        return Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.1), retry=retry_if_result(lambda v: not v),
                        reraise=True)(predicate)
    except Exception as exc:   # tenacity's RetryError: say what never happened
        raise AssertionError(f"{what} within {seconds} s") from exc
