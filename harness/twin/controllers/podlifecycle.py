"""The kubelet's side of pods: start bound pods, report readiness, finish graceful deletions.

An inference pod is Ready only once its model is loaded: from local NVMe (seconds) in the article's
design, from S3 (minutes) under `cold-start-from-s3`; that load time is what makes a replacement
replica slow to take traffic, so it is modelled with the real-world figures, scaled.
A pod is not Ready while its node's kubelet is down or the node is unreachable; pods on a node that
no longer exists are garbage-collected.
"""
from __future__ import annotations

import ipaddress

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.controllers.nodestatus import node_unknown
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet.runtime import INFERENCE_NS, NODES, PODS
from harness.twin.kube.store import NotFound, Obj, ObjectStore


class PodLifecycleController(Controller):
    name = "kubelet"

    def __init__(self, fleet):
        super().__init__(fleet)
        self.terminating_since: dict[tuple[str, str, str], float] = {}

    def load_seconds(self, pod: Obj) -> float:
        if pod["metadata"].get("namespace") != INFERENCE_NS or self.fleet.instant:
            return 0.0
        real = hardware.MODEL_LOAD_S3_S if self.world.behaviour.model_source == "s3" else hardware.MODEL_LOAD_NVME_S
        return self.world.clock.wall(real)

    def reconcile(self, now: float) -> None:
        for cluster in self.world.clusters.values():
            store = cluster.store
            nodes = {n["metadata"]["name"]: n for n in store.iter_raw(NODES)}
            for pod in store.iter_raw(PODS):
                node_name = pod["spec"].get("nodeName")
                if not node_name:
                    continue
                key = (store.cluster, pod["metadata"]["namespace"], pod["metadata"]["name"])
                node = self.world.nodes.get(node_name)
                node_obj = nodes.get(node_name)
                if node is None or node_obj is None:
                    self.fleet.delete_pod(store, pod, actor="pod-garbage-collector")
                    continue
                unknown = node_unknown(node_obj)
                if ko.is_terminating(pod):
                    self._finish_deletion(store, pod, key, now, reachable=not unknown and node.network_reachable)
                    continue
                if unknown:
                    if ko.is_ready(pod):
                        self._set(store, pod, lambda o: ko.set_pod_ready(o, False), "node-lifecycle-controller")
                    continue
                if not node.network_reachable:
                    continue            # the kubelet cannot report: the API keeps the last status
                kubelet = self.fleet.kubelet_ready(node, now)
                phase = pod.get("status", {}).get("phase")
                if not kubelet:
                    self.fleet.pod_started.pop(key, None)
                    if ko.is_ready(pod):
                        self._set(store, pod, lambda o: ko.set_pod_ready(o, False), "kubelet")
                    continue
                if phase == "Pending":
                    host_ip, pod_ip = node.private_ip, self._pod_ip(node.private_ip)
                    self._set(store, pod, lambda o: ko.set_pod_running(o, host_ip, pod_ip), "kubelet")
                    # pods of the fleet the twin starts with have long finished loading their model
                    self.fleet.pod_started[key] = float("-inf") if self.fleet.instant else now
                    continue
                started = self.fleet.pod_started.setdefault(key, now)
                ready = now - started >= self.load_seconds(pod)
                if ready != ko.is_ready(pod):
                    self._set(store, pod, lambda o: ko.set_pod_ready(o, ready), "kubelet")

    def _finish_deletion(self, store: ObjectStore, pod: Obj, key: tuple[str, str, str], now: float, reachable: bool) -> None:
        """A terminating pod is removed once its kubelet confirms the container exited.

        Triton exits on SIGTERM once its in-flight requests are done, within the pod's
        terminationGracePeriodSeconds (scaled); a replica with nothing in flight exits at once.
        """
        since = self.terminating_since.setdefault(key, now)
        if not reachable or now - since < self.fleet.deletion_grace_s:
            return
        meta = pod["metadata"]
        grace = self.world.clock.wall(float(meta.get("deletionGracePeriodSeconds",
                                                     pod["spec"].get("terminationGracePeriodSeconds", 30))))
        if now - since < grace and self._in_flight(pod["metadata"]["name"]):
            return
        self.fleet.delete_pod(store, pod, actor="kubelet")
        self.terminating_since.pop(key, None)

    def _in_flight(self, pod_name: str) -> int:
        replicas = getattr(self.fleet.serving, "replicas", None) or {}
        return sum(getattr(r, "load", 0) for r in list(replicas.values()) if pod_name in getattr(r, "pods", ()))

    def _pod_ip(self, host_ip: str) -> str:
        base = int(ipaddress.IPv4Address(host_ip)) & ~0xFF
        return str(ipaddress.IPv4Address(base + self.world.rng.randint(10, 250)))

    @staticmethod
    def _set(store: ObjectStore, pod: Obj, change, actor: str) -> None:
        try:
            store.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], change, actor=actor)
        except NotFound:
            pass
