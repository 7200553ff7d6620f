"""The scheduler: binds Pending pods to nodes that are Ready, schedulable, tolerated and have free GPUs.

It also assigns the GPU indices a pod holds on its node (annotation `twin.g7chaos.io/gpus`), which is
what links a replica to the GPUs whose DCGM fields the serving layer and the exporter read. A pod that
fits nowhere stays Pending with `PodScheduled=False`, reason `Unschedulable` and the scheduler's
message (`0/N nodes are available: N Insufficient nvidia.com/gpu.`), plus a FailedScheduling event
each time that message changes: the visible symptom of silently missing GPUs.
"""
from __future__ import annotations

from collections import Counter

from harness.twin.controllers.base import Controller
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet.runtime import NODES, PODS
from harness.twin.kube.store import NotFound, Obj, ObjectStore


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol["key"] == taint["key"]:
                return True
        elif tol.get("key") == taint["key"] and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def held_gpus(pod: Obj) -> set[int]:
    raw = (pod["metadata"].get("annotations") or {}).get(ko.GPUS_ANNOTATION, "")
    return {int(x) for x in raw.split(",") if x.strip().isdigit()}


class Scheduler(Controller):
    name = "scheduler"
    store_driven = True

    def __init__(self, fleet):
        super().__init__(fleet)
        self._last_message: dict[tuple[str, str, str], str] = {}

    def reconcile(self, now: float) -> None:
        for cluster in self.world.clusters.values():
            store = cluster.store
            pending = [p for p in store.iter_raw(PODS) if not p["spec"].get("nodeName") and not ko.is_terminating(p)]
            if not pending:
                continue
            nodes = sorted(store.iter_raw(NODES), key=lambda n: n["metadata"]["name"])
            used = self._used(store)
            for pod in sorted(pending, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"])):
                self._schedule(store, pod, nodes, used)

    @staticmethod
    def _used(store: ObjectStore) -> dict[str, set[int]]:
        """GPU indices held on each node, from one pass over the pods: walking every pod for every node and
        GPU of every pending pod made a 64-node cluster's first placement take about a minute."""
        used: dict[str, set[int]] = {}
        for pod in store.iter_raw(PODS):
            node = pod["spec"].get("nodeName")
            if node and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                used.setdefault(node, set()).update(held_gpus(pod))
        return used

    def _schedule(self, store: ObjectStore, pod: Obj, nodes: list[Obj], used: dict[str, set[int]]) -> None:
        need = ko.gpu_request(pod)
        selector = pod["spec"].get("nodeSelector") or {}
        tolerations = pod["spec"].get("tolerations") or []
        reasons: Counter[str] = Counter()
        best: tuple[int, Obj, list[int]] | None = None
        for node in nodes:
            labels = node["metadata"].get("labels") or {}
            taints = [t for t in node.get("spec", {}).get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
            untolerated = next((t for t in taints if not tolerates(tolerations, t)), None)
            if node.get("spec", {}).get("unschedulable"):
                reasons["node(s) were unschedulable"] += 1
            elif any(labels.get(k) != v for k, v in selector.items()):
                reasons["node(s) didn't match Pod's node affinity/selector"] += 1
            elif untolerated is not None:
                reasons[f"node(s) had untolerated taint {{{untolerated['key']}: {untolerated.get('value', '')}}}"] += 1
            elif not ko.is_ready(node):
                reasons["node(s) were not ready"] += 1
            else:
                allocatable = int(node.get("status", {}).get("allocatable", {}).get(ko.GPU, "0") or 0)
                held = used.get(node["metadata"]["name"], set())
                free = [i for i in range(allocatable) if i not in held]
                if len(free) < need:
                    reasons[f"Insufficient {ko.GPU}"] += 1
                elif best is None or len(free) > best[0]:
                    best = (len(free), node, free[:need])
        key = (store.cluster, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if best is not None:
            if self._bind(store, pod, best[1]["metadata"]["name"], best[2]):
                used.setdefault(best[1]["metadata"]["name"], set()).update(best[2])
            self._last_message.pop(key, None)
            return
        message = f"0/{len(nodes)} nodes are available: " + ", ".join(
            f"{count} {reason}" for reason, count in sorted(reasons.items())) + "."
        if not nodes:
            message = "0/0 nodes are available: no nodes available to schedule pods."
        if self._last_message.get(key) == message:
            return
        self._last_message[key] = message

        def unschedulable(obj: Obj) -> None:
            ko.set_condition(obj, "PodScheduled", "False", "Unschedulable", message)
        try:
            store.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], unschedulable, actor="default-scheduler")
        except NotFound:
            return
        self.fleet.event(store, pod, "FailedScheduling", message, type_="Warning", component="default-scheduler")

    def _bind(self, store: ObjectStore, pod: Obj, node_name: str, gpus: list[int]) -> bool:
        def bind(obj: Obj) -> None:
            obj["spec"]["nodeName"] = node_name
            if gpus:
                obj["metadata"].setdefault("annotations", {})[ko.GPUS_ANNOTATION] = ",".join(map(str, gpus))
            ko.set_condition(obj, "PodScheduled", "True", "", "")
        try:
            store.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], bind, actor="default-scheduler")
        except NotFound:
            return False
        self.fleet.event(store, pod, "Scheduled",
                         f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {node_name}",
                         component="default-scheduler")
        return True
