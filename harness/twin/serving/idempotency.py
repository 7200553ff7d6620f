"""The gateway's idempotency ledger, after the IETF Idempotency-Key header draft.

Why at the gateway: Triton has no notion of a retried request, and a client that times out on a stalled
stream and retries would otherwise pay for (and be billed, and maybe act on) two generations. The draft's
rules: a completed request's key replays the stored response; a key whose first request is still in
flight answers 409 Conflict; the same key with a different payload answers 422 Unprocessable Content.
A request that never completed (its stream was cut) leaves no record, so a retry executes.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal


def fingerprint(body: dict) -> str:
    """A stable hash of the request payload (key order and whitespace do not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class StoredResponse:
    status: int
    headers: dict[str, str]
    media_type: str
    chunks: list[bytes]             # the body as sent: one chunk per SSE event, or the whole JSON


@dataclass
class Entry:
    fingerprint: str
    state: Literal["in_flight", "done"] = "in_flight"
    response: StoredResponse | None = None
    at: float = field(default_factory=time.time)


Verdict = Literal["execute", "replay", "conflict", "mismatch"]


class Ledger:
    MAX_KEYS = 50_000
    TTL_S = 24 * 3600.0

    def __init__(self) -> None:
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def begin(self, key: str, fp: str) -> tuple[Verdict, Entry | None]:
        """Decide what to do with a request carrying `key`; on "execute" the key is now in flight."""
        entry = self._entries.get(key)
        if entry is not None and time.time() - entry.at > self.TTL_S:
            del self._entries[key]
            entry = None
        if entry is None:
            if len(self._entries) >= self.MAX_KEYS:
                self._entries.popitem(last=False)
            self._entries[key] = Entry(fp)
            return "execute", None
        if entry.fingerprint != fp:
            return "mismatch", entry
        if entry.state == "in_flight":
            return "conflict", entry
        return "replay", entry

    def complete(self, key: str, response: StoredResponse) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.state, entry.response = "done", response

    def abandon(self, key: str) -> None:
        """The first attempt failed before completing: forget the key so a retry executes."""
        entry = self._entries.get(key)
        if entry is not None and entry.state == "in_flight":
            del self._entries[key]
