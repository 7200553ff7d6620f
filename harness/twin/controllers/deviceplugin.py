"""The NVIDIA device plugin's registration outside a boot: a deleted plugin pod takes the GPUs with it.

When the plugin pod goes, the kubelet loses its device socket and `nvidia.com/gpu` drops to 0; the
DaemonSet's new pod registers again once it runs (scaled PLUGIN_START_S), and finds the GPUs only if
the driver is loaded. Registration during a boot is the boot state machine's (fleet.runtime).
"""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet.runtime import PODS
from harness.twin.kube.store import Obj, ObjectStore

PLUGIN_LABEL = ("name", "nvidia-device-plugin-ds")


class DevicePluginController(Controller):
    name = "device-plugin"

    def __init__(self, fleet):
        super().__init__(fleet)
        self.restart_at: dict[str, float] = {}

    def reconcile(self, now: float) -> None:
        if self.fleet.instant:
            return
        plugins: dict[int, dict[str, Obj]] = {}     # store -> node -> its plugin pod, one pass over each store's pods
        for node in list(self.world.nodes.values()):
            if node.power != "running" or node.name in self.fleet.boots or not node.network_reachable:
                self.restart_at.pop(node.name, None)
                continue
            store = self.fleet.store_of(node)
            if id(store) not in plugins:
                plugins[id(store)] = self._plugins(store)
            plugin = plugins[id(store)].get(node.name)
            running = plugin is not None and plugin.get("status", {}).get("phase") == "Running"
            if not running:
                node.plugin = "stopped"
                self.restart_at.pop(node.name, None)
                continue
            if node.plugin != "stopped":
                continue
            due = self.restart_at.setdefault(node.name, now + self.world.clock.wall(hardware.PLUGIN_START_S))
            if now >= due:
                node.plugin = "registered" if node.driver == "ready" else "registered-empty"
                del self.restart_at[node.name]

    @staticmethod
    def _plugins(store: ObjectStore) -> dict[str, Obj]:
        """Each node's first live device-plugin pod: scanning every pod once per node cost nodes x pods per tick."""
        found: dict[str, Obj] = {}
        for pod in store.iter_raw(PODS):
            node = pod["spec"].get("nodeName")
            if node and (pod["metadata"].get("labels") or {}).get(PLUGIN_LABEL[0]) == PLUGIN_LABEL[1] \
                    and not ko.is_terminating(pod):
                found.setdefault(node, pod)
        return found
