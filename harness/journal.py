"""The run journal: an append-only JSONL file, flushed and fsynced line by line.

A chaos tool must never leave a fault behind. Every fault writes how to undo itself here *before* it
changes anything, and writes again once it has undone it; so after a crash (even SIGKILL) the journal
holds exactly the reverts still owed, and `g7chaos recover` can finish them from a fresh process.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.jsonl import read_records


class OwedRevert(BaseModel):
    """A revert registered by a fault and not yet confirmed done."""

    revert_id: str
    fault: str
    args: dict[str, Any]
    journal: Path


class Journal:
    """Each record is one `os.write` of a whole line on an O_APPEND descriptor, then fsynced: a crash or an
    interrupt leaves a line written or not, never half of one. Writers are the run's threads (its main path,
    the live milestones); signal handlers never write here (harness/run/signals.py)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"ts": time.time(), "event": event, **fields}
        data = (json.dumps(record, default=str, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise ValueError(f"journal {self.path} is closed")
            written = os.write(self._fd, data)
            while written < len(data):          # a regular file takes it whole; a short write is finished here
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        return record

    def register_revert(self, fault: str, args: dict[str, Any]) -> str:
        """Record how to undo a change; call before making it."""
        revert_id = uuid.uuid4().hex[:12]
        self.write("revert-registered", revert_id=revert_id, fault=fault, args=args)
        return revert_id

    def reverted(self, revert_id: str, **fields: Any) -> None:
        self.write("reverted", revert_id=revert_id, **fields)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def owed_reverts(path: Path) -> list[OwedRevert]:
    registered: dict[str, OwedRevert] = {}
    for record in read_records(path):
        if record.get("event") == "revert-registered":
            registered[record["revert_id"]] = OwedRevert(revert_id=record["revert_id"], fault=record["fault"],
                                                         args=record.get("args", {}), journal=path)
        elif record.get("event") == "reverted":
            registered.pop(record.get("revert_id"), None)
    return list(registered.values())


def find_journals(reports_dir: Path) -> list[Path]:
    return sorted(Path(reports_dir).glob("*/journal.jsonl"))
