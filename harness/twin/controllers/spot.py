"""The spot interruption handler: on the two-minute notice, cordon and drain well before the end.

Like the AWS Node Termination Handler, it acts on the instance's notice (the twin's IMDS and the
World show the same notice), cordons at once and drains by eviction, forcing what the PDBs still hold
a margin before the termination time so no replica is serving when the instance disappears.
"""
from __future__ import annotations

from harness.twin.controllers.base import Controller
from harness.twin.controllers.disruption import Drainer

ACTOR = "aws-node-termination-handler"
DRAIN_MARGIN_S = 30.0           # real-world seconds before termination by which the node must be empty


class SpotHandler(Controller):
    name = "spot-handler"

    def __init__(self, fleet, drainer: Drainer):
        super().__init__(fleet)
        self.drainer = drainer
        self.handled: dict[str, float] = {}

    def reconcile(self, now: float) -> None:
        for node in list(self.world.nodes.values()):
            if node.spot_notice_at is None or node.name in self.handled:
                continue
            self.handled[node.name] = now
            terminate_at = node.spot_terminate_at or now
            deadline = max(now, terminate_at - self.world.clock.wall(DRAIN_MARGIN_S))
            self.fleet.node_event(node, "SpotInterruption", "Received a spot interruption notice: cordoning and "
                                  f"draining before {terminate_at:.0f}", type_="Warning", component=ACTOR)
            self.drainer.start(node.cluster, node.name, deadline, ACTOR)
