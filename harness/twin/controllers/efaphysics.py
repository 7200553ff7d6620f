"""EFA fabric physics: traffic on the fabric moves its byte and packet counters; a congested fabric
retransmits and drops, and the error counters show it.

Counters grow per real-world second (the control-plane clock) under the names of
`/sys/class/infiniband/<dev>/ports/<port>/hw_counters` (FIDELITY EFA-2): `tx_bytes`/`rx_bytes`/`*_pkts`
with the competing traffic's share of the fabric (`node.efa_load`, set only by collectives that span nodes,
FIDELITY EFA-3), and `retrans_pkts`, `rx_drops`, ... with the share above the congestion point. The
CloudWatch agent side (aws/alarms.py) publishes their increments as `efa_*` metrics in `CWAgent`.
"""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.controllers.base import Controller

CONGESTION_POINT = 0.7
# counter -> events per real-world second at a fully saturated fabric
RATES = {"retrans_pkts": 400.0, "rx_drops": 120.0, "retrans_timeout_events": 8.0, "unresponsive_remote_events": 1.0}
PACKET_BYTES = 8192              # assumed: SRD's maximum transfer unit on EFA (about 8 KiB)


class EfaPhysics(Controller):
    name = "efa-physics"

    def __init__(self, fleet):
        super().__init__(fleet)
        self._last: float | None = None
        self._carry: dict[tuple[str, str], float] = {}

    def _add(self, node, counters: dict[str, int], counter: str, amount: float) -> None:
        key = (node.name, counter)
        total = self._carry.get(key, 0.0) + amount
        whole = int(total)
        self._carry[key] = total - whole
        if whole:
            counters[counter] = counters.get(counter, 0) + whole

    def reconcile(self, now: float) -> None:
        dt_wall = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        real_seconds = dt_wall * self.world.clock.time_scale
        for node in list(self.world.nodes.values()):
            if node.efa_load <= 0 or node.power != "running":
                continue
            moved = node.efa_load * hardware.EFA_GBPS * 1e9 * real_seconds
            for counter, amount in (("tx_bytes", moved), ("rx_bytes", moved),
                                    ("tx_pkts", moved / PACKET_BYTES), ("rx_pkts", moved / PACKET_BYTES)):
                self._add(node, node.efa_traffic, counter, amount)
            excess = (node.efa_load - CONGESTION_POINT) / (1.0 - CONGESTION_POINT)
            if excess <= 0:
                continue
            for counter, rate in RATES.items():
                self._add(node, node.efa_counters, counter, rate * excess * real_seconds)
