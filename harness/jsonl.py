"""Reading the JSONL files g7chaos appends to: the run journal and the load generator's per-request records.

Both are written one line per record by processes that may die mid-write (a SIGKILL, a node that vanished),
so the last line of a file can be torn. A reader that stopped there would lose the records before it and a
recover would miss an owed revert; so every reader skips a line that is not a whole JSON object, and there is
one reader for all of them.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file in order; a torn or undecodable line, or one that is not an object, is
    skipped."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All the records of a JSONL file (see `iter_records`)."""
    return list(iter_records(path))
