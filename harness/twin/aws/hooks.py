"""The contract between the AWS side and the rest of the twin.

The AWS side owns instances; the fleet side (nodes, pods, GPUs) owns what runs on them. Everything that
happens to an instance (launched, terminated, interrupted, rebooted, cut off from the network) reaches the
fleet through these calls only, always on the twin's asyncio loop thread, so the fleet never has to
synchronise with moto's server thread.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.twin import hardware
from harness.twin.world import Gpu, Node, World

log = logging.getLogger(__name__)


class AwsHooks(Protocol):
    def launched(self, instance_id: str, nodegroup: str, az: str, subnet_id: str, private_ip: str,
                 capacity_type: str, placement_group: str | None) -> None: ...

    def terminated(self, instance_id: str) -> None: ...

    def spot_notice(self, instance_id: str, terminate_at_wall: float) -> None: ...

    def rebalance(self, instance_id: str) -> None: ...

    def connectivity(self, subnet_ids: set[str], disrupted: bool) -> None: ...

    def rebooted(self, instance_id: str) -> None: ...

    def stopped(self, instance_id: str) -> None: ...

    def started(self, instance_id: str) -> None: ...


class GuardedHooks:
    """Calls the fleet's hooks so that one failing call is logged and does not stop the AWS behaviour loop
    (a termination whose hook raised must still be deregistered from its target group, and so on)."""

    def __init__(self, inner: AwsHooks) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any) -> None:
            try:
                method(*args)
            except Exception:
                log.exception("hook %s%r failed", name, args)
        return call


def node_name_for_ip(private_ip: str, region: str) -> str:
    """EKS names a node after its instance's private DNS name (ip-10-0-1-23.us-east-2.compute.internal)."""
    return f"ip-{private_ip.replace('.', '-')}.{region}.compute.internal"


@dataclass
class RecordingHooks:
    """Test double for the AWS side's own tests: records every call and keeps world.nodes minimally in sync.

    It stands in for the fleet side so the AWS behaviour can be tested alone; the real implementation
    (Kubernetes nodes, boot state machine, drains) lives with the fleet.
    """

    world: World
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)       # wall time of each call, parallel to calls

    def _record(self, name: str, *args: Any) -> None:
        self.times.append(time.time())
        self.calls.append((name, args))

    def timed(self, name: str) -> list[tuple[float, tuple[Any, ...]]]:
        return [(t, args) for t, (call, args) in zip(self.times, self.calls) if call == name]

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for call, args in self.calls if call == name]

    def launched(self, instance_id: str, nodegroup: str, az: str, subnet_id: str, private_ip: str,
                 capacity_type: str, placement_group: str | None) -> None:
        self._record("launched", instance_id, nodegroup, az, subnet_id, private_ip, capacity_type, placement_group)
        group = self.world.nodegroups[nodegroup]
        kind = hardware.INSTANCE_TYPES[group.instance_type]
        name = node_name_for_ip(private_ip, self.world.region)
        self.world.nodes[name] = Node(
            name=name, cluster=group.cluster, az=az, subnet_id=subnet_id, instance_id=instance_id,
            instance_type=group.instance_type, nodegroup=nodegroup, capacity_type=capacity_type,  # type: ignore[arg-type]
            placement_group=placement_group, private_ip=private_ip, role=group.role,
            gpus=[Gpu(index=i, uuid=f"GPU-{instance_id}-{i}") for i in range(kind.gpus)],
            network_reachable=subnet_id not in self.world.disrupted_subnets)

    def _node(self, instance_id: str) -> Node | None:
        return self.world.node_by_instance(instance_id)

    def terminated(self, instance_id: str) -> None:
        self._record("terminated", instance_id)
        node = self._node(instance_id)
        if node is not None:
            del self.world.nodes[node.name]

    def spot_notice(self, instance_id: str, terminate_at_wall: float) -> None:
        self._record("spot_notice", instance_id, terminate_at_wall)

    def rebalance(self, instance_id: str) -> None:
        self._record("rebalance", instance_id)

    def connectivity(self, subnet_ids: set[str], disrupted: bool) -> None:
        self._record("connectivity", set(subnet_ids), disrupted)
        for node in self.world.nodes.values():
            if node.subnet_id in subnet_ids:
                node.network_reachable = not disrupted

    def rebooted(self, instance_id: str) -> None:
        self._record("rebooted", instance_id)

    def stopped(self, instance_id: str) -> None:
        self._record("stopped", instance_id)
        node = self._node(instance_id)
        if node is not None:
            node.power = "stopped"

    def started(self, instance_id: str) -> None:
        self._record("started", instance_id)
        node = self._node(instance_id)
        if node is not None:
            node.power = "running"
