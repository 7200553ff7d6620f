"""Compressed control-plane time.

Control-plane timings (spot notice, node boot, repair, health-check intervals) are stated in
real-world seconds and shrunk by `time_scale`, so a game day takes minutes; inference latency is
never scaled, because the SLOs are judged on it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TwinClock:
    time_scale: float = 30.0

    def wall(self, real_world_seconds: float) -> float:
        """Wall seconds the twin takes for something that lasts `real_world_seconds` on AWS."""
        return real_world_seconds / self.time_scale

    @staticmethod
    def now() -> float:
        return time.time()
