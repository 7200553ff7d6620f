"""The spot interruption handler: cordon on a rebalance recommendation, drain on the two-minute notice.

Like the AWS Node Termination Handler with rebalance monitoring on (`enableRebalanceMonitoring`), it reads the
instance's IMDS signals (the twin's IMDS and the World show the same ones): a rebalance recommendation gets
the node a `RebalanceRecommendation` Event and a cordon, so nothing new lands on an instance at risk; the
interruption notice gets a `SpotInterruption` Event and a drain by eviction, forcing what the PDBs still hold a
margin before the termination time so no replica is serving when the instance disappears. FIS sends the
recommendation when its action starts and the notice two minutes before the interruption, so with a
`durationBeforeInterruption` of PT2M both arrive together and the handler acts on both at once.
"""
from __future__ import annotations

from harness.twin.controllers.base import Controller
from harness.twin.controllers.disruption import Drainer, cordon

ACTOR = "aws-node-termination-handler"
DRAIN_MARGIN_S = 30.0           # real-world seconds before termination by which the node must be empty


class SpotHandler(Controller):
    name = "spot-handler"

    def __init__(self, fleet, drainer: Drainer):
        super().__init__(fleet)
        self.drainer = drainer
        self.handled: dict[str, float] = {}
        self.recommended: dict[str, float] = {}

    def reconcile(self, now: float) -> None:
        for node in list(self.world.nodes.values()):
            if node.rebalance_at is not None and node.name not in self.recommended:
                self.recommended[node.name] = now
                self.fleet.node_event(node, "RebalanceRecommendation", "Received a rebalance recommendation: "
                                      "cordoning the node", type_="Normal", component=ACTOR)
                cordon(self.world.clusters[node.cluster].store, node.name, ACTOR)
            if node.spot_notice_at is None or node.name in self.handled:
                continue
            self.handled[node.name] = now
            terminate_at = node.spot_terminate_at or now
            deadline = max(now, terminate_at - self.world.clock.wall(DRAIN_MARGIN_S))
            self.fleet.node_event(node, "SpotInterruption", "Received a spot interruption notice: cordoning and "
                                  f"draining before {terminate_at:.0f}", type_="Warning", component=ACTOR)
            self.drainer.start(node.cluster, node.name, deadline, ACTOR)
