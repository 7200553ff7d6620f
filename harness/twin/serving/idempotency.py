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
    """Keys in arrival order; the oldest are forgotten first when a bound is reached.

    Bounded by key count and by stored bytes: a load generator that sends a key with every streaming
    request would otherwise keep every stream of a game day in memory.
    """

    MAX_KEYS = 50_000
    MAX_BYTES = 128 * 1024 * 1024
    TTL_S = 24 * 3600.0

    def __init__(self) -> None:
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0

    def begin(self, key: str, fp: str) -> tuple[Verdict, Entry | None]:
        """Decide what to do with a request carrying `key`; on "execute" the key is now in flight."""
        entry = self._entries.get(key)
        if entry is not None and time.time() - entry.at > self.TTL_S:
            self._drop(key)
            entry = None
        if entry is None:
            while self._entries and len(self._entries) >= self.MAX_KEYS:
                self._drop(next(iter(self._entries)))
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
            self._bytes += _size(response)
            while self._bytes > self.MAX_BYTES and len(self._entries) > 1:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry.response is not None:
            self._bytes -= _size(entry.response)

    def abandon(self, key: str) -> None:
        """The first attempt failed before completing: forget the key so a retry executes."""
        entry = self._entries.get(key)
        if entry is not None and entry.state == "in_flight":
            self._drop(key)


def _size(response: StoredResponse) -> int:
    return sum(len(c) for c in response.chunks)
