"""Node lifecycle: what the kubelet posts and what the node controller concludes when it stops posting.

Ready follows power and the kubelet's boot; a node whose network is cut keeps its last status until
the node-monitor grace period passes (scaled), then goes Ready=Unknown with the `unreachable` taints,
exactly the signal an AZ loss gives a real cluster. Allocatable `nvidia.com/gpu` is what the device
plugin registered, which is how a plugin that started before the driver makes GPUs silently vanish.
Pods on an unreachable node are marked not Ready, and after their toleration (300 s, scaled) evicted.
"""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.controllers.nodemonitor import MESSAGES, READY_REASON
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet.runtime import NODES, PODS, advance_boot
from harness.twin.kube.store import NotFound, Obj
from harness.twin.world import Node

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


class NodeStatusController(Controller):
    name = "node-lifecycle"

    def __init__(self, fleet):
        super().__init__(fleet)
        self._written: dict[str, tuple] = {}     # node -> inputs of the last status written

    def unknown(self, node: Node, now: float) -> bool:
        since = self.fleet.unreachable_since.get(node.name)
        return (not node.network_reachable and since is not None
                and now - since >= self.world.clock.wall(hardware.NODE_MONITOR_GRACE_S))

    def reconcile(self, now: float) -> None:
        for node in list(self.world.nodes.values()):
            advance_boot(self.fleet, node, now)
            if not node.network_reachable:
                self.fleet.unreachable_since.setdefault(node.name, now)
            store = self.fleet.store_of(node)
            unknown = self.unknown(node, now)
            if not node.network_reachable and not unknown:
                continue            # nobody hears the kubelet, and the node controller has not concluded yet
            kubelet = self.fleet.kubelet_ready(node, now)
            dbe = self.fleet.hw_reason.get(node.name) if node.name in self.fleet.dbe_detected else None
            current = next((o for o in store.iter_raw(NODES) if o["metadata"]["name"] == node.name), None)
            signature = (unknown, kubelet, dbe, node.allocatable_gpus, node.power,
                         (current or {}).get("metadata", {}).get("resourceVersion"))
            if current is not None and self._written.get(node.name) == signature:
                if unknown:
                    self._evict_after_toleration(node, now)
                continue
            try:
                written = store.mutate(NODES, None, node.name,
                                       lambda obj: self._status(obj, node, unknown, kubelet, dbe), actor="kubelet")
            except NotFound:
                continue
            self._written[node.name] = signature[:-1] + (written["metadata"].get("resourceVersion"),)
            if unknown:
                self._evict_after_toleration(node, now)

    def _status(self, obj: Obj, node: Node, unknown: bool, kubelet: bool, dbe: str | None) -> None:
        if unknown:
            ko.set_condition(obj, "Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", node=True)
            self._taints(obj, UNREACHABLE)
            return              # the kubelet cannot report anything else
        if kubelet:
            ko.set_condition(obj, "Ready", "True", "KubeletReady", "kubelet is posting ready status", node=True)
            self._taints(obj, None)
        else:
            message = "node is shutting down" if node.power == "stopped" else "container runtime is down: node is booting"
            ko.set_condition(obj, "Ready", "False", "KubeletNotReady", message, node=True)
            self._taints(obj, NOT_READY)
        if dbe:
            ko.set_condition(obj, "AcceleratedHardwareReady", "False", dbe, MESSAGES.get(dbe, dbe), node=True)
        else:
            ko.set_condition(obj, "AcceleratedHardwareReady", "True", READY_REASON,
                             "Monitoring for the Nvidia GPU system is active", node=True)
        gpus = str(node.allocatable_gpus if kubelet else 0)     # what the device plugin registered
        obj["status"].setdefault("allocatable", {})[ko.GPU] = gpus
        obj["status"].setdefault("capacity", {})[ko.GPU] = gpus

    @staticmethod
    def _taints(obj: Obj, key: str | None) -> None:
        """Keep other taints; set the node controller's `key` taints (or none)."""
        spec = obj.setdefault("spec", {})
        current = [t for t in spec.get("taints") or [] if t["key"] not in (UNREACHABLE, NOT_READY)]
        ours = [t for t in spec.get("taints") or [] if t["key"] == key]
        if key is not None and not ours:
            ours = [{"key": key, "effect": effect, "timeAdded": ko.now_rfc3339()} for effect in ("NoSchedule", "NoExecute")]
        spec["taints"] = current + ours

    def _evict_after_toleration(self, node: Node, now: float) -> None:
        """Taint-based eviction: pods tolerate `unreachable:NoExecute` for 300 s (scaled), then go."""
        since = self.fleet.unreachable_since.get(node.name, now)
        grace = self.world.clock.wall(hardware.NODE_MONITOR_GRACE_S)
        store = self.fleet.store_of(node)
        for pod in self.fleet.pods_on(store, node.name):
            if ko.is_terminating(pod) or ko.owner_kind(pod) == "DaemonSet":
                continue
            seconds = min((t.get("tolerationSeconds", hardware.POD_EVICTION_TOLERATION_S)
                           for t in pod["spec"].get("tolerations") or []
                           if t.get("key") in (UNREACHABLE, None) and t.get("effect") in ("NoExecute", None)
                           and t.get("operator") == "Exists" and "tolerationSeconds" in t),
                          default=hardware.POD_EVICTION_TOLERATION_S)
            if now - since >= grace + self.world.clock.wall(float(seconds)):
                self.fleet.mark_terminating(store, pod, actor="node-lifecycle-controller")
                self.fleet.event(store, pod, "TaintManagerEviction", f"Marking for deletion Pod {pod['metadata']['namespace']}/"
                                 f"{pod['metadata']['name']}", component="taint-eviction-controller")


def node_unknown(obj: Obj) -> bool:
    cond = ko.get_condition(obj, "Ready")
    return bool(cond and cond["status"] == "Unknown")


__all__ = ["NodeStatusController", "node_unknown", "PODS"]
