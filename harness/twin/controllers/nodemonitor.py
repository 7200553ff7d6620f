"""The EKS node monitoring agent: what DCGM reports on a node becomes its `AcceleratedHardwareReady` condition.

Two paths, as in aws/eks-node-monitoring-agent (monitors/nvidia):
- the DCGM *policy* listener: a new sample of DCGM_FI_DEV_ECC_DBE_VOL_DEV (319) above 0, real or injected, is a
  double-bit policy violation at once; the agent holds `NvidiaDoubleBitError` (Fatal) from then on;
- the DCGM *health* check every 5 minutes: the MEM watch failing on the newest sample of
  DCGM_FI_DEV_ECC_DBE_VOL_TOTAL (311) is `DCGMHealthCode4` (Fatal, repair action None).
What the agent holds reaches the Node only at its next condition push (every 15 s), so a policy event shows on
the Node within one push (FIDELITY NMA-1). A Fatal finding is kept in the agent's memory: no code path sets the
condition back to True while the agent runs (FIDELITY NMA-3, assumed from the code), so a reverted injection
leaves the condition False until the node is replaced or rebooted (the agent restarts with it). Under
`no-dbe-remediation` the deployment runs no agent, so nothing in the API ever shows the fault.
"""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.world import DCGM_FI_DEV_ECC_DBE_VOL_DEV, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, Node

READY_REASON = "NvidiaGPUIsReady"           # FIDELITY NMA-4: the agent's healthy reason for NVIDIA nodes
DBE_REASON = "NvidiaDoubleBitError"
HEALTH_MEM_REASON = "DCGMHealthCode4"        # DCGM_FR_VOLATILE_DBE_DETECTED = 4 (dcgmlib/dcgm_errors.h)
MESSAGES = {
    DBE_REASON: "A double-bit ECC error was detected on a GPU: the GPU returns corrupted data.",
    HEALTH_MEM_REASON: "DCGM health check failed: a volatile double-bit ECC error was detected (code 4).",
}


def faulty_gpus(node: Node, now: float) -> list[int]:
    """GPUs whose newest DBE policy sample (319) is above zero."""
    return [g.index for g in node.gpus if g.value(DCGM_FI_DEV_ECC_DBE_VOL_DEV, now) > 0]


class NodeMonitoringAgent(Controller):
    name = "eks-node-monitoring-agent"

    def __init__(self, fleet):
        super().__init__(fleet)
        self.findings: dict[str, tuple[str, float]] = {}    # node -> (reason, when the agent found it)
        self._next_push: dict[str, float] = {}
        self._next_health: dict[str, float] = {}

    def reconcile(self, now: float) -> None:
        if not self.world.behaviour.dbe_remediation:
            return
        push = self.world.clock.wall(hardware.NODE_MONITOR_PUSH_S)
        health = self.world.clock.wall(hardware.NODE_MONITOR_HEALTH_S)
        for node in list(self.world.nodes.values()):
            if node.power != "running":
                # the agent restarts with the node: what it held in memory is gone
                for table in (self.findings, self._next_push, self._next_health, self.fleet.dbe_detected,
                              self.fleet.hw_reason):
                    table.pop(node.name, None)
                node.dcgm_events.clear()
                continue
            self._policy(node, now)
            due = self._next_health.setdefault(node.name, node.booted_at + health)
            if now >= due:
                self._next_health[node.name] = now + health
                self._health(node, now)
            if now >= self._next_push.setdefault(node.name, node.booted_at + push):
                self._next_push[node.name] = now + push
                self._push(node, now)

    def _policy(self, node: Node, now: float) -> None:
        """The DBE policy fires on every new 319 sample above zero: injected ones (broadcast as they arrive)
        and the sampled series."""
        events = [e for e in node.dcgm_events if e[1] == DCGM_FI_DEV_ECC_DBE_VOL_DEV and e[2] > 0]
        node.dcgm_events.clear()
        bad = faulty_gpus(node, now)
        if (events or bad) and self.findings.get(node.name, ("",))[0] != DBE_REASON:
            gpu = node.gpus[events[0][0] if events else bad[0]]
            self.findings[node.name] = (DBE_REASON, now)
            self.fleet.node_event(node, DBE_REASON, f"GPU {gpu.index} ({gpu.uuid}) reported an uncorrectable "
                                  f"double-bit ECC error (DCGM DBE policy)", type_="Warning",
                                  component="eks-node-monitoring-agent")

    def _health(self, node: Node, now: float) -> None:
        if node.name in self.findings:
            return
        if any(g.value(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, now) > 0 for g in node.gpus):
            self.findings[node.name] = (HEALTH_MEM_REASON, now)

    def _push(self, node: Node, now: float) -> None:
        finding = self.findings.get(node.name)
        if finding is None or (self.fleet.hw_reason.get(node.name) == finding[0]):
            return
        self.fleet.dbe_detected[node.name] = now
        self.fleet.hw_reason[node.name] = finding[0]
