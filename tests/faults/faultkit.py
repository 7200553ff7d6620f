"""What the fault modules share: a fresh run context. (Their waits are `support.polling.wait_for`.)"""
from __future__ import annotations

import random
from pathlib import Path

from harness.faults import RunContext
from harness.journal import Journal
from harness.observe import Timeline
from harness.target.target import Target


def run_context(target: Target, tmp_path: Path, seed: int | None = 3, journal: str = "journal.jsonl") -> RunContext:
    return RunContext(target=target, journal=Journal(tmp_path / journal), timeline=Timeline(),
                      rng=random.Random(seed))
