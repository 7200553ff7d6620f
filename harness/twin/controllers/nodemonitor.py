"""The EKS node monitoring agent: a GPU double-bit ECC error becomes a node condition.

The agent watches DCGM on each node; after its detection delay (scaled) it reports
`AcceleratedHardwareReady=False`, reason `NvidiaDoubleBitError`, and a Warning event. Under
`no-dbe-remediation` the deployment runs no agent, so nothing in the API ever shows the fault.
"""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.fleet.dcgm import XID_DOUBLE_BIT_ECC
from harness.twin.world import DCGM_FI_DEV_XID_ERRORS, Node


def faulty_gpus(node: Node) -> list[int]:
    return [g.index for g in node.gpus if g.double_bit_error or g.fields.get(DCGM_FI_DEV_XID_ERRORS) == XID_DOUBLE_BIT_ECC]


class NodeMonitoringAgent(Controller):
    name = "eks-node-monitoring-agent"

    def __init__(self, fleet):
        super().__init__(fleet)
        self.first_seen: dict[str, float] = {}

    def reconcile(self, now: float) -> None:
        if not self.world.behaviour.dbe_remediation:
            return
        delay = self.world.clock.wall(hardware.NODE_MONITOR_DETECT_S)
        for node in list(self.world.nodes.values()):
            if node.power != "running":
                continue
            bad = faulty_gpus(node)
            if not bad:
                self.first_seen.pop(node.name, None)
                self.fleet.dbe_detected.pop(node.name, None)
                continue
            seen = self.first_seen.setdefault(node.name, now)
            if node.name not in self.fleet.dbe_detected and now - seen >= delay:
                self.fleet.dbe_detected[node.name] = now
                gpu = node.gpus[bad[0]]
                self.fleet.node_event(node, "NvidiaDoubleBitError",
                                      f"GPU {gpu.index} ({gpu.uuid}) reported an uncorrectable double-bit ECC error",
                                      type_="Warning", component="eks-node-monitoring-agent")
