"""A flaky control plane: the twin's Kubernetes and AWS APIs fail a given fraction of client calls.

A chaos harness is itself a client of the control plane it stresses, and real control planes answer
500s, throttle (429 with Retry-After, AWS `Throttling`), time out and cut watch streams, most of all
while a fault is in progress. This mode lets a run prove the harness still reaches the right verdict
when that happens. Only the client-facing APIs fail: the twin's own controllers write the store and
moto's backends directly, and the inference gateway is the deployment under test, not its control plane.

One `FlakyApi` is shared by every wrapped API of a twin: it draws from one seeded RNG (a run with the
same seed sees the same sequence of decisions, up to the order in which concurrent requests arrive)
and counts every failure it injects, by API surface and kind, for tests to read in-process.
"""
from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Failure = Literal["error", "throttle", "timeout", "drop", "expire"]
"""error: a 500 (AWS: InternalError); throttle: 429 + Retry-After (AWS: a throttling error code botocore
retries); timeout: the answer is held, then a 504; drop: a watch stream closed mid-stream; expire: a watch
resumed from a resourceVersion answered 410 Gone (the client must list again)."""

ONE_SHOT_KINDS: tuple[tuple[Failure, float], ...] = (("error", 0.45), ("throttle", 0.4), ("timeout", 0.15))
WATCH_START_KINDS: tuple[tuple[Failure, float], ...] = (("error", 0.4), ("throttle", 0.3), ("expire", 0.3))


@dataclass(frozen=True)
class FlakyConfig:
    """How the control plane misbehaves. `rate` 0 turns the mode off."""

    rate: float = 0.0                 # fraction of calls that fail
    seed: int = 7
    hold_s: float = 1.5               # a timed-out call is answered (504) after this long: bounded, never a hang
    retry_after_s: int = 1            # Retry-After on a 429, as the API server's priority and fairness sends
    watch_lifetime_s: tuple[float, float] = (1.0, 6.0)   # a watch stream is cut after a time drawn from this range

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"the flaky-API rate must be in [0, 1), not {self.rate}")
        if self.hold_s < 0 or self.retry_after_s < 0:
            raise ValueError("hold and Retry-After must be >= 0")
        low, high = self.watch_lifetime_s
        if not 0 < low <= high:
            raise ValueError("watch lifetime range must be positive and ordered")

    @property
    def enabled(self) -> bool:
        return self.rate > 0


@dataclass
class FlakyApi:
    """Decides which calls fail and counts what it injected (thread-safe: moto serves from threads)."""

    config: FlakyConfig
    counts: Counter = field(default_factory=Counter)      # (surface, failure kind) -> calls failed that way
    calls: Counter = field(default_factory=Counter)       # surface -> calls seen
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.config.seed)

    def decide(self, surface: str, kinds: tuple[tuple[Failure, float], ...] = ONE_SHOT_KINDS) -> Failure | None:
        """The failure this call gets, or None: it is served normally. Counts the call either way."""
        with self._lock:
            self.calls[surface] += 1
            if not self.config.enabled or self._rng.random() >= self.config.rate:
                return None
            kind = self._rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
            self.counts[(surface, kind)] += 1
            return kind

    def watch_lifetime(self) -> float:
        """Seconds a watch stream lives before it is cut."""
        with self._lock:
            return self._rng.uniform(*self.config.watch_lifetime_s)

    def count_drop(self, surface: str) -> None:
        with self._lock:
            self.counts[(surface, "drop")] += 1

    def injected(self, surface_prefix: str = "", kind: Failure | None = None) -> int:
        """How many failures were injected on surfaces starting with `surface_prefix` (of one kind, if given)."""
        with self._lock:
            return sum(n for (surface, k), n in self.counts.items()
                       if surface.startswith(surface_prefix) and (kind is None or k == kind))

    def summary(self) -> dict[str, dict[str, int]]:
        """{surface: {kind: count, "calls": n}}, for logs and tests."""
        with self._lock:
            out: dict[str, dict[str, int]] = {s: {"calls": n} for s, n in self.calls.items()}
            for (surface, kind), n in self.counts.items():
                out.setdefault(surface, {"calls": 0})[kind] = n
            return out
