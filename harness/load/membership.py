"""Who may join a run's load, and how a worker's clock relates to its master's: the rules, free of Locust.

Kept apart from harness/load/wire.py (which runs them inside Locust's master and worker) because importing
Locust patches the standard library through gevent: these rules are tested, and may be read, without it.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any


def proof(token: str, client_id: str) -> str:
    """What a worker shows for the token: HMAC-SHA256 of its client id, keyed by the token."""
    return hmac.new(token.encode(), client_id.encode(), hashlib.sha256).hexdigest()


@dataclass
class Member:
    """A worker the master admitted: its index among the measuring processes and the name it gave."""

    client_id: str
    index: int
    name: str
    joined_at: float


@dataclass
class Gate:
    """The master's admission rule: the run's token, the expected count, nobody once the load has started."""

    token: str
    expected: int
    members: dict[str, Member] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)       # "<name> (<client id>): <reason>", for the log
    started: bool = False

    def admit(self, client_id: str, shown: Any, name: str) -> str | None:
        """None when the worker may join (and it is then a member), else why not."""
        if not isinstance(shown, str) or not hmac.compare_digest(shown, proof(self.token, client_id)):
            why = "wrong or missing run token"
        elif self.started:
            why = "the load has already started (a late worker would change the load mid-run)"
        elif len(self.members) >= self.expected:
            why = f"all {self.expected} expected workers have joined"
        else:
            self.members[client_id] = Member(client_id, len(self.members), name, time.time())
            return None
        self.refused.append(f"{name} ({client_id}): {why}")
        return why

    def index(self, client_id: str) -> int | None:
        member = self.members.get(client_id)
        return member.index if member is not None else None


CLOCK_FIRST = 5        # probes a worker sends at once on joining
CLOCK_KEEP = 8         # the latest probes the estimate chooses from


@dataclass
class ClockOffset:
    """A worker's estimate of its master's wall clock minus its own, from probe round trips (NTP's rule):
    offset = t_master - (t0 + t1) / 2, uncertain by half the round trip t1 - t0; of the last CLOCK_KEEP probes
    the one with the shortest round trip wins (a queued probe only widens its own bound). Latencies are
    measured on the worker's clock and need none of this; only wall-clock stamps (records, windows) are moved
    onto the master's clock before they leave the worker."""

    samples: list[tuple[float, float]] = field(default_factory=list)     # (uncertainty, offset)

    def add(self, t0: float, t_master: float, t1: float) -> None:
        if t1 < t0:
            return
        self.samples = [*self.samples[-(CLOCK_KEEP - 1):], ((t1 - t0) / 2, t_master - (t0 + t1) / 2)]

    @property
    def offset_s(self) -> float:
        return min(self.samples)[1] if self.samples else 0.0

    @property
    def uncertainty_s(self) -> float | None:
        return min(self.samples)[0] if self.samples else None

    def figures(self) -> dict[str, Any]:
        u = self.uncertainty_s
        return {"offset_ms": round(self.offset_s * 1e3, 3), "uncertainty_ms": None if u is None else round(u * 1e3, 3),
                "probes": len(self.samples)}
