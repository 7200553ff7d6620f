"""EKS node auto repair: a node whose accelerated hardware is not ready is cordoned, drained, replaced.

It acts as the managed node group's repair does (docs.aws.amazon.com/eks/latest/userguide/node-repair.html):
- only when the nodegroup's `nodeRepairConfig` has `enabled`, read as the twin's EKS API returns it
  (`eks.describe_nodegroup`, boto3), once per nodegroup;
- `AcceleratedHardwareReady` after 10 minutes unless an override for the condition and reason sets
  `minRepairWaitTimeMins`, with the override's `repairAction` (FIDELITY REPAIR-1, REPAIR-2); the wait is
  deployment time, scaled by the twin's clock like every other duration. By default `NvidiaDoubleBitError` is
  replaced and `DCGMHealthCode*` is not repaired at all;
- never while a zonal shift is active in the cluster's zones, nor while more than 20 % of a group of more than
  5 nodes is unhealthy (or the group's own `maxUnhealthyNodeThreshold*`) (FIDELITY REPAIR-3).
A repair cordons the node, drains it by eviction under the PDBs, and terminates the instance through the
Auto Scaling API (ShouldDecrementDesiredCapacity=False), so the group launches a replacement; `Reboot` reboots.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.controllers.disruption import Drainer

log = logging.getLogger(__name__)

ACTOR = "eks-node-auto-repair"
CONDITION = "AcceleratedHardwareReady"
DRAIN_PDB_TIMEOUT_S = 60.0      # real-world seconds a repair waits on disruption budgets before forcing
# default action per reason when no override names it (node-health-nma: DCGM monitoring errors are not repaired)
DEFAULT_ACTIONS = {"NvidiaDoubleBitError": "Replace"}


def repair_plan(config: dict[str, Any] | None, reason: str) -> tuple[float, str] | None:
    """(wait in real-world seconds, action) for a node reported with `reason`, or None when nothing repairs it."""
    if not config or not config.get("enabled"):
        return None
    for override in config.get("nodeRepairConfigOverrides") or []:
        if override.get("nodeMonitoringCondition") == CONDITION and override.get("nodeUnhealthyReason") == reason:
            action = override.get("repairAction", "Replace")
            return None if action == "NoAction" else (float(override.get("minRepairWaitTimeMins", 10)) * 60.0, action)
    if reason.startswith("DCGM"):
        return None
    return hardware.AUTO_REPAIR_DELAY_S, DEFAULT_ACTIONS.get(reason, "Replace")


class NodeAutoRepair(Controller):
    name = "node-auto-repair"

    def __init__(self, fleet, drainer: Drainer):
        super().__init__(fleet)
        self.drainer = drainer
        self.repairing: dict[str, float] = {}     # node -> when the repair started
        self.replaced: list[str] = []             # instance ids terminated by a repair
        self.configs: dict[str, dict[str, Any] | None] = {}   # nodegroup -> nodeRepairConfig as EKS returns it
        self._reading: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def reconcile(self, now: float) -> None:
        for name, detected_at in list(self.fleet.dbe_detected.items()):
            node = self.world.nodes.get(name)
            if node is None or name in self.repairing:
                continue
            if node.nodegroup not in self.configs:
                self._read_config(node.cluster, node.nodegroup)
                continue
            reason = self.fleet.hw_reason.get(name, "NvidiaDoubleBitError")
            plan = repair_plan(self.configs[node.nodegroup], reason)
            if plan is None or now - detected_at < self.world.clock.wall(plan[0]) or self._paused(node):
                continue
            self.repairing[name] = now
            action = plan[1]
            self.fleet.node_event(node, "NodeAutoRepair", f"Node Auto Repair: {CONDITION}=False ({reason}): "
                                  f"cordoning, draining and {'rebooting' if action == 'Reboot' else 'replacing'} "
                                  f"the node", type_="Warning", component=ACTOR)
            instance_id = node.instance_id
            done = (lambda iid=instance_id: self._reboot(iid)) if action == "Reboot" else \
                (lambda iid=instance_id: self._terminate(iid))
            self.drainer.start(node.cluster, name, now + self.world.clock.wall(DRAIN_PDB_TIMEOUT_S), ACTOR,
                               on_done=done)

    def _paused(self, node: Any) -> bool:
        """Repair halts during a zonal shift of the cluster's zones and when too much of the group is unhealthy."""
        if self.world.zonal_shift_away & set(self.world.clusters[node.cluster].azs):
            return True
        group = [n for n in self.world.nodes.values() if n.nodegroup == node.nodegroup and n.power != "terminated"]
        unhealthy = sum(1 for n in group if n.name in self.fleet.dbe_detected)
        config = self.configs.get(node.nodegroup) or {}
        if "maxUnhealthyNodeThresholdCount" in config:
            return unhealthy > int(config["maxUnhealthyNodeThresholdCount"])
        if "maxUnhealthyNodeThresholdPercentage" in config:
            return unhealthy > len(group) * float(config["maxUnhealthyNodeThresholdPercentage"]) / 100.0
        return len(group) > hardware.AUTO_REPAIR_MIN_GROUP and unhealthy > len(group) * hardware.AUTO_REPAIR_MAX_UNHEALTHY

    def _read_config(self, cluster: str, nodegroup: str) -> None:
        """describe_nodegroup through the twin's EKS API, off the controller loop; the world's own record when no
        AWS side runs (a unit rig)."""
        if nodegroup in self._reading:
            return

        async def read() -> None:
            try:
                described = await asyncio.to_thread(self.fleet.aws_client("eks").describe_nodegroup,
                                                    clusterName=cluster, nodegroupName=nodegroup)
                self.configs[nodegroup] = described["nodegroup"].get("nodeRepairConfig")
            except Exception:
                log.warning("auto repair: describe_nodegroup %s failed; retrying", nodegroup, exc_info=True)
            finally:
                self._reading.discard(nodegroup)
        if self._spawn(read):
            self._reading.add(nodegroup)
        else:
            group = self.world.nodegroups.get(nodegroup)
            self.configs[nodegroup] = group.repair_config if group is not None else None

    def _spawn(self, work: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run `work` on the controller's loop through the twin's AWS API; False where no AWS side or loop runs
        (a unit rig), so the caller acts on the world directly."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self.fleet.aws_client is None:
            return False
        task = loop.create_task(work())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _reboot(self, instance_id: str) -> None:
        if self.fleet.hooks is not None:
            self.fleet.hooks.rebooted(instance_id)
        node = self.world.node_by_instance(instance_id)
        if node is not None:
            self.repairing.pop(node.name, None)

    def _terminate(self, instance_id: str) -> None:
        self.replaced.append(instance_id)
        if not self._spawn(lambda: self._terminate_via_aws(instance_id)):
            self._gone(instance_id)

    async def _terminate_via_aws(self, instance_id: str) -> None:
        assert self.fleet.aws_client is not None
        client = self.fleet.aws_client("autoscaling")
        try:
            await asyncio.to_thread(client.terminate_instance_in_auto_scaling_group, InstanceId=instance_id,
                                    ShouldDecrementDesiredCapacity=False)
        except Exception:
            log.warning("auto repair: ASG terminate of %s failed; terminating through EC2", instance_id, exc_info=True)
            try:
                await asyncio.to_thread(self.fleet.aws_client("ec2").terminate_instances, InstanceIds=[instance_id])
            except Exception:
                log.exception("auto repair: could not terminate %s", instance_id)
        self._gone(instance_id)

    def _gone(self, instance_id: str) -> None:
        """The instance is gone: if the AWS side has not reported it yet, the node leaves now."""
        if self.fleet.hooks is not None and instance_id not in self.fleet.terminated_instances:
            self.fleet.hooks.terminated(instance_id)
