"""The fleet's runtime state and the hooks through which AWS tells it what happened to an instance.

The AWS side (moto plus its behaviour loop) owns instances; this side owns what an instance becomes
once it runs: a World node with GPUs, a Kubernetes Node that boots (kubelet, then the NVIDIA driver,
then the device plugin), and the per-node DaemonSet pods. Boot timings are real-world seconds scaled
by the World clock, so a reboot takes the same share of a game day as it does of a real one.

The device plugin ordering is the article's point: gated on the driver it registers every GPU; started
before the driver (profile `plugin-before-driver`) it registers none and says nothing, which is how GPU
capacity silently disappears after a reboot. Nodes present when the twin starts are already up.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.twin import hardware
from harness.twin.fleet import kobjects as ko
from harness.twin.kube.store import NotFound, Obj, ObjectStore, resource
from harness.twin.world import Cluster, Gpu, Node, PluginState, World

log = logging.getLogger(__name__)

NODES = resource("nodes")
PODS = resource("pods")
EVENTS = resource("events")
INFERENCE_NS = "inference"


@dataclass
class Boot:
    """One power-on of a node: when its kubelet, driver and device plugin come up (wall times)."""

    power_on_at: float
    kubelet_at: float
    driver_at: float
    plugin_at: float
    plugin_result: PluginState

    @classmethod
    def start(cls, world: World, now: float, *, racy: bool) -> "Boot":
        clock = world.clock
        kubelet = now + clock.wall(hardware.NODE_BOOT_S)
        driver = kubelet + clock.wall(hardware.DRIVER_LOAD_S)
        if racy:
            # the plugin starts with the kubelet, finds no driver, registers nothing and never retries
            return cls(now, kubelet, driver, kubelet + clock.wall(hardware.PLUGIN_START_S), "registered-empty")
        return cls(now, kubelet, driver, driver + clock.wall(hardware.PLUGIN_START_S), "registered")


@dataclass
class Fleet:
    """Everything the fleet's controllers share besides the World itself."""

    world: World
    deletion_grace_s: float = 0.2
    instant: bool = True                     # while seeding: launched nodes are up at once
    boots: dict[str, Boot] = field(default_factory=dict)
    unreachable_since: dict[str, float] = field(default_factory=dict)
    dbe_detected: dict[str, float] = field(default_factory=dict)    # node -> wall time the agent reported AcceleratedHardwareReady=False
    hw_reason: dict[str, str] = field(default_factory=dict)         # node -> the reason the agent reported with it
    pod_started: dict[tuple[str, str, str], float] = field(default_factory=dict)
    terminated_instances: set[str] = field(default_factory=set)
    frozen_cgroups: dict[str, set[str]] = field(default_factory=dict)   # node -> cgroups whose cgroup.freeze is 1
    pod_logs: dict[tuple[str, str, str], str] = field(default_factory=dict)   # (cluster, ns, pod) -> its log
    aws_client: Callable[[str], Any] | None = None   # service name -> boto3 client against the twin's AWS
    serving: Any = None                              # the serving fleet (replica signals), when present
    hooks: Any = None                                # the FleetHooks acting on this fleet

    def now(self) -> float:
        return self.world.clock.now()

    def store_of(self, node: Node) -> ObjectStore:
        return self.world.clusters[node.cluster].store

    def kubelet_ready(self, node: Node, now: float) -> bool:
        if node.power != "running":
            return False
        boot = self.boots.get(node.name)
        return boot is None or now >= boot.kubelet_at

    def event(self, store: ObjectStore, involved: Obj, reason: str, message: str, *, type_: str = "Normal",
              component: str = "twin", host: str | None = None) -> None:
        try:
            store.create(EVENTS, ko.event_object(involved, reason, message, type_=type_, component=component,
                                                 host=host), actor=component)
        except Exception:   # an event is best effort, as in Kubernetes
            log.exception("event %s on %s", reason, involved["metadata"]["name"])

    def node_event(self, node: Node, reason: str, message: str, *, type_: str = "Normal",
                   component: str = "kubelet") -> None:
        store = self.store_of(node)
        obj = store.get(NODES, None, node.name)
        if obj is not None:
            self.event(store, obj, reason, message, type_=type_, component=component, host=node.name)

    def pods_on(self, store: ObjectStore, node_name: str) -> list[Obj]:
        return [p for p in store.iter_raw(PODS) if p["spec"].get("nodeName") == node_name]

    def delete_pod(self, store: ObjectStore, pod: Obj, actor: str) -> None:
        meta = pod["metadata"]
        try:
            store.delete(PODS, meta["namespace"], meta["name"], actor=actor)
        except NotFound:
            pass
        self.pod_started.pop((store.cluster, meta["namespace"], meta["name"]), None)

    def mark_terminating(self, store: ObjectStore, pod: Obj, actor: str, grace_seconds: int | None = None) -> None:
        """Start a graceful deletion, as the API does for DELETE or an eviction (grace 0: kill now).

        A pod bound to no node goes at once, as the API server deletes it: no kubelet will ever confirm its
        exit, so marking it would leave it Terminating for good (a scale-in picks Pending replicas first).
        """
        if not pod["spec"].get("nodeName"):
            self.delete_pod(store, pod, actor=actor)
            return

        def change(obj: Obj) -> None:
            obj["metadata"].setdefault("deletionTimestamp", ko.now_rfc3339())
            grace = grace_seconds if grace_seconds is not None else obj["spec"].get("terminationGracePeriodSeconds", 30)
            obj["metadata"]["deletionGracePeriodSeconds"] = min(grace, obj["metadata"].get("deletionGracePeriodSeconds", grace))
        try:
            store.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], change, actor=actor)
        except NotFound:
            pass


class FleetHooks:
    """The AWS side's hooks (launched, terminated, notices, connectivity, power) acting on the fleet."""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self.world = fleet.world

    # -- instances ----------------------------------------------------------------------------------
    def launched(self, instance_id: str, nodegroup: str, az: str, subnet_id: str, private_ip: str,
                 capacity_type: str, placement_group: str | None) -> None:
        world, fleet = self.world, self.fleet
        group = world.nodegroups[nodegroup]
        cluster: Cluster = world.clusters[group.cluster]
        itype = hardware.INSTANCE_TYPES[group.instance_type]
        name = ko.node_name_for(private_ip, world.region)
        if name in world.nodes:
            return
        period = world.clock.wall(hardware.DCGM_SAMPLE_PERIOD_S)
        gpus = [Gpu(i, f"GPU-{uuid.UUID(int=world.rng.getrandbits(128))}", sample_period_s=period)
                for i in range(itype.gpus)]
        now = fleet.now()
        node = Node(name=name, cluster=cluster.name, az=az, subnet_id=subnet_id, instance_id=instance_id,
                    instance_type=group.instance_type, nodegroup=nodegroup, capacity_type=capacity_type,  # type: ignore[arg-type]
                    placement_group=placement_group, private_ip=private_ip, gpus=gpus, role=group.role,
                    booted_at=now, network_reachable=subnet_id not in world.disrupted_subnets)
        if not fleet.instant:
            node.driver, node.plugin = "unloaded", "stopped"
            fleet.boots[name] = Boot.start(world, now, racy=not world.behaviour.plugin_waits_for_driver)
        world.nodes[name] = node
        cluster.store.create(NODES, ko.node_object(node, world.region), actor="eks-nodegroup")
        if not fleet.instant:
            fleet.node_event(node, "Starting", "Starting kubelet.")

    def terminated(self, instance_id: str) -> None:
        fleet = self.fleet
        node = self.world.node_by_instance(instance_id)
        fleet.terminated_instances.add(instance_id)
        if node is None:
            return
        node.power = "terminated"
        store = fleet.store_of(node)
        for pod in fleet.pods_on(store, node.name):       # pod garbage collection of an orphaned node
            fleet.delete_pod(store, pod, actor="pod-garbage-collector")
        try:
            obj = store.delete(NODES, None, node.name, actor="cloud-node-lifecycle-controller")
            fleet.event(store, obj, "RemovingNode", f"Node {node.name} event: Removing Node {node.name} from Controller",
                        component="node-controller")
        except NotFound:
            pass
        for table in (fleet.boots, fleet.unreachable_since, fleet.dbe_detected, fleet.hw_reason):
            table.pop(node.name, None)
        self.world.nodes.pop(node.name, None)
        self.world.target_health.pop(node.name, None)

    def spot_notice(self, instance_id: str, terminate_at_wall: float) -> None:
        node = self.world.node_by_instance(instance_id)
        if node is not None and node.spot_notice_at is None:
            node.spot_notice_at = self.fleet.now()
            node.spot_terminate_at = terminate_at_wall

    def rebalance(self, instance_id: str) -> None:
        node = self.world.node_by_instance(instance_id)
        if node is not None and node.rebalance_at is None:
            node.rebalance_at = self.fleet.now()

    def connectivity(self, subnet_ids: set[str], disrupted: bool) -> None:
        world, now = self.world, self.fleet.now()
        if disrupted:
            world.disrupted_subnets |= set(subnet_ids)
        else:
            world.disrupted_subnets -= set(subnet_ids)
        for node in world.nodes.values():
            if node.subnet_id in subnet_ids:
                node.network_reachable = not disrupted
                if disrupted:
                    self.fleet.unreachable_since.setdefault(node.name, now)
                else:
                    self.fleet.unreachable_since.pop(node.name, None)

    # -- power --------------------------------------------------------------------------------------
    def rebooted(self, instance_id: str) -> None:
        node = self.world.node_by_instance(instance_id)
        if node is None or node.power == "terminated":
            return
        self._power_off(node, "rebooting", "Node is rebooting.")
        self._boot(node)

    def stopped(self, instance_id: str) -> None:
        node = self.world.node_by_instance(instance_id)
        if node is not None and node.power not in ("terminated", "stopped"):
            self._power_off(node, "stopped", "Node is shutting down.")

    def started(self, instance_id: str) -> None:
        node = self.world.node_by_instance(instance_id)
        if node is not None and node.power in ("stopped", "rebooting"):
            node.power = "rebooting"
            self._boot(node)

    def _power_off(self, node: Node, power: str, message: str) -> None:
        """The instance goes down: its GPUs lose their driver and every container on it dies.

        Inference pods are gone with it (the kubelet re-admits GPU pods after the boot, against whatever
        the device plugin registers, so their ReplicaSets recreate and the scheduler re-places them);
        DaemonSet pods stay bound to the node and come back when the kubelet does.
        """
        fleet = self.fleet
        node.power = power  # type: ignore[assignment]
        node.driver, node.plugin = "unloaded", "stopped"
        fleet.boots.pop(node.name, None)
        store = fleet.store_of(node)
        for pod in fleet.pods_on(store, node.name):
            if ko.owner_kind(pod) == "DaemonSet":
                fleet.pod_started.pop((store.cluster, pod["metadata"]["namespace"], pod["metadata"]["name"]), None)
                continue
            fleet.delete_pod(store, pod, actor="kubelet")
        fleet.node_event(node, "Rebooted" if power == "rebooting" else "Shutdown", message, type_="Warning")

    def _boot(self, node: Node) -> None:
        now = self.fleet.now()
        node.booted_at = now
        node.driver, node.plugin = "unloaded", "stopped"
        self.fleet.boots[node.name] = Boot.start(self.world, now, racy=not self.world.behaviour.plugin_waits_for_driver)


def advance_boot(fleet: Fleet, node: Node, now: float) -> None:
    """Move a booting node's power, driver and device plugin along its Boot's timeline."""
    boot = fleet.boots.get(node.name)
    if boot is None or node.power in ("terminated", "stopped"):
        return
    if now >= boot.kubelet_at and node.power == "rebooting":
        node.power = "running"
    if node.power != "running":
        return
    node.driver = "ready" if now >= boot.driver_at else ("loading" if now >= boot.kubelet_at else "unloaded")
    if now >= boot.plugin_at:
        node.plugin = boot.plugin_result
    if now >= max(boot.plugin_at, boot.driver_at):
        del fleet.boots[node.name]
