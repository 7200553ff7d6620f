"""EFA fabric physics: a congested fabric retransmits and drops, and the hardware counters show it.

Counters grow with the share of fabric load above the congestion point, per real-world second (the
control-plane clock), under the names of `/sys/class/infiniband/*/ports/*/hw_counters`; the CloudWatch
agent side publishes their increments as `EFA/ErrorCount`, which the EFA alarm watches.
"""
from __future__ import annotations

from harness.twin.controllers.base import Controller

CONGESTION_POINT = 0.7
# counter -> events per real-world second at a fully saturated fabric
RATES = {"retrans_pkts": 400.0, "rx_drops": 120.0, "retrans_timeout_events": 8.0, "unresponsive_remote_events": 1.0}


class EfaPhysics(Controller):
    name = "efa-physics"

    def __init__(self, fleet):
        super().__init__(fleet)
        self._last: float | None = None
        self._carry: dict[tuple[str, str], float] = {}

    def reconcile(self, now: float) -> None:
        dt_wall = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        real_seconds = dt_wall * self.world.clock.time_scale
        for node in list(self.world.nodes.values()):
            excess = (node.efa_load - CONGESTION_POINT) / (1.0 - CONGESTION_POINT)
            if excess <= 0 or node.power != "running":
                continue
            for counter, rate in RATES.items():
                key = (node.name, counter)
                total = self._carry.get(key, 0.0) + rate * excess * real_seconds
                whole = int(total)
                self._carry[key] = total - whole
                if whole:
                    node.efa_counters[counter] = node.efa_counters.get(counter, 0) + whole
