"""The instances the twin launched, and what happens to them through the EC2 API.

Anyone may act on an instance through boto3: FIS, Node Auto Repair terminating a broken node, an operator
stopping one. moto only flips a state field, so this watcher compares moto's states with the last ones it
saw and turns every change into the matching hook call, on the loop thread. Reboots leave moto's state
untouched, so the EC2 backend's reboot is wrapped to leave a note the watcher picks up.
"""
from __future__ import annotations

import logging
import queue
from dataclasses import dataclass
from typing import Any, Callable

from harness.twin.aws import backends
from harness.twin.aws.hooks import AwsHooks, node_name_for_ip

log = logging.getLogger(__name__)

GONE_STATES = frozenset({"terminated", "shutting-down"})


@dataclass
class ManagedInstance:
    instance_id: str
    nodegroup: str
    asg_name: str
    az: str
    subnet_id: str
    private_ip: str
    instance_type: str
    capacity_type: str                 # "SPOT" | "ON_DEMAND"
    placement_group: str | None
    region: str
    last_state: str = "running"
    spot_notice_at: float | None = None
    spot_terminate_at: float | None = None
    rebalance_at: float | None = None

    @property
    def node_name(self) -> str:
        return node_name_for_ip(self.private_ip, self.region)

    @property
    def gone(self) -> bool:
        return self.last_state in GONE_STATES


class InstanceWatcher:
    def __init__(self, region: str, hooks: AwsHooks) -> None:
        self.region = region
        self.hooks = hooks
        self.instances: dict[str, ManagedInstance] = {}
        self._reboots: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.on_terminated: list[Callable[[ManagedInstance], None]] = []

    def install(self) -> None:
        """Wrap the EC2 backend's reboot so reboots made by anyone (boto3, FIS) reach the hooks."""
        ec2 = backends.backend("ec2", self.region)
        original = type(ec2).reboot_instances

        def reboot_instances(instance_ids: list[str]) -> Any:
            result = original(ec2, instance_ids)
            for instance_id in instance_ids:
                self._reboots.put(instance_id)
            return result

        ec2.reboot_instances = reboot_instances

    def track(self, instance: ManagedInstance) -> None:
        self.instances[instance.instance_id] = instance

    def by_node(self, node_name: str) -> ManagedInstance | None:
        return next((i for i in self.instances.values() if i.node_name == node_name), None)

    def poll(self) -> None:
        states = {i.id: i.state for i in backends.ec2_instances(self.region) if i.id in self.instances}
        for instance in list(self.instances.values()):
            if instance.gone:
                continue
            state = states.get(instance.instance_id, "terminated")
            previous, instance.last_state = instance.last_state, state
            if state == previous:
                continue
            if state in GONE_STATES:
                self.hooks.terminated(instance.instance_id)
                for callback in self.on_terminated:
                    callback(instance)
            elif state == "stopped" and previous != "stopped":
                self.hooks.stopped(instance.instance_id)
            elif state == "running" and previous in ("stopped", "stopping", "pending"):
                self.hooks.started(instance.instance_id)
        while True:
            try:
                instance_id = self._reboots.get_nowait()
            except queue.Empty:
                break
            instance = self.instances.get(instance_id)
            if instance is not None and not instance.gone:
                self.hooks.rebooted(instance_id)
