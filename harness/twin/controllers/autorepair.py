"""EKS Node Auto Repair: a node whose accelerated hardware is not ready is cordoned, drained, replaced.

After the repair delay (scaled) it cordons the node, drains it by eviction under the PDBs, and
terminates the instance through the Auto Scaling API of the twin's AWS (boto3, as the real service
acts on the group) without decrementing desired capacity, so the group launches a replacement that
joins as a new node. Off under `no-dbe-remediation`.
"""
from __future__ import annotations

import asyncio
import logging

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.controllers.disruption import Drainer

log = logging.getLogger(__name__)

ACTOR = "eks-node-auto-repair"
DRAIN_PDB_TIMEOUT_S = 60.0      # real-world seconds a repair waits on disruption budgets before forcing


class NodeAutoRepair(Controller):
    name = "node-auto-repair"

    def __init__(self, fleet, drainer: Drainer):
        super().__init__(fleet)
        self.drainer = drainer
        self.repairing: dict[str, float] = {}     # node -> when the repair started
        self.replaced: list[str] = []             # instance ids terminated by a repair
        self._tasks: set[asyncio.Task] = set()

    def reconcile(self, now: float) -> None:
        if not self.world.behaviour.dbe_remediation:
            return
        delay = self.world.clock.wall(hardware.AUTO_REPAIR_DELAY_S)
        for name, detected_at in list(self.fleet.dbe_detected.items()):
            node = self.world.nodes.get(name)
            if node is None or name in self.repairing or now - detected_at < delay:
                continue
            self.repairing[name] = now
            self.fleet.node_event(node, "NodeAutoRepair", "Node Auto Repair: AcceleratedHardwareReady=False "
                                  "(NvidiaDoubleBitError): cordoning, draining and replacing the node",
                                  type_="Warning", component=ACTOR)
            instance_id = node.instance_id
            self.drainer.start(node.cluster, name, now + self.world.clock.wall(DRAIN_PDB_TIMEOUT_S), ACTOR,
                               on_done=lambda iid=instance_id: self._terminate(iid))

    def _terminate(self, instance_id: str) -> None:
        self.replaced.append(instance_id)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self.fleet.aws_client is None or loop is None:
            self._gone(instance_id)
            return
        task = loop.create_task(self._terminate_via_aws(instance_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
