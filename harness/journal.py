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
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # re-entrant: the signal handlers write to the journal, and a signal may land while the main thread is
        # inside write() holding the lock (a plain Lock deadlocks the interrupted run right there)
        self._lock = threading.RLock()
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"ts": time.time(), "event": event, **fields}
        line = json.dumps(record, default=str, sort_keys=True)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
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
            if not self._fh.closed:
                self._fh.close()


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
