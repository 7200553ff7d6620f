"""DaemonSet, ReplicaSet and Deployment controllers: keep the right pods in existence.

A ReplicaSet counts pods that are not terminating, so an evicted replica is replaced at once and the
replacement waits Pending until the scheduler finds a GPU: that is what makes a drain without spare
capacity visible as `Insufficient nvidia.com/gpu`. A DaemonSet places one pod on every node directly
(as the real controller does, through node affinity on the node's name).
"""
from __future__ import annotations

from harness.twin.controllers.base import Controller
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet.runtime import NODES, PODS
from harness.twin.kube.store import NotFound, Obj, ObjectStore, resource

DAEMONSETS = resource("daemonsets.apps")
REPLICASETS = resource("replicasets.apps")
DEPLOYMENTS = resource("deployments.apps")

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _suffix(rng) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(5))


def _condition(type_: str, status: str, reason: str, message: str) -> Obj:
    now = ko.now_rfc3339()
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now, "lastUpdateTime": now}


def _active(pod: Obj) -> bool:
    return not ko.is_terminating(pod) and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


class WorkloadController(Controller):
    name = "workloads"
    store_driven = True

    def reconcile(self, now: float) -> None:
        for cluster in self.world.clusters.values():
            store = cluster.store
            pods = store.iter_raw(PODS)
            self._daemonsets(store, pods)
            self._replicasets(store, pods)
            self._deployments(store)

    def _create_pod(self, store: ObjectStore, owner: Obj, node_name: str | None = None) -> None:
        for _ in range(5):
            name = f"{owner['metadata']['name']}-{_suffix(self.world.rng)}"
            if store.get(PODS, owner["metadata"]["namespace"], name) is None:
                break
        pod = ko.pod_from_template(owner, name, node_name=node_name)
        created = store.create(PODS, pod, actor=f"{owner['kind'].lower()}-controller")
        self.fleet.event(store, owner, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                         component=f"{owner['kind'].lower()}-controller")

    def _daemonsets(self, store: ObjectStore, pods: list[Obj]) -> None:
        nodes = [n["metadata"]["name"] for n in store.iter_raw(NODES)]
        for ds in store.iter_raw(DAEMONSETS):
            mine = [p for p in pods if ko.owned_by(p, ds)]
            placed = {p["spec"].get("nodeName") for p in mine if _active(p)}
            for node_name in nodes:
                if node_name not in placed:
                    self._create_pod(store, ds, node_name)
            mine = [p for p in store.iter_raw(PODS) if ko.owned_by(p, ds) and _active(p)]
            ready = sum(1 for p in mine if ko.is_ready(p))
            status = {"currentNumberScheduled": len(mine), "desiredNumberScheduled": len(nodes),
                      "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                      "numberUnavailable": len(nodes) - ready, "updatedNumberScheduled": len(mine),
                      "observedGeneration": ds["metadata"].get("generation", 1)}
            self._status(store, DAEMONSETS, ds, status)

    def _replicasets(self, store: ObjectStore, pods: list[Obj]) -> None:
        for rs in store.iter_raw(REPLICASETS):
            want = int(rs["spec"].get("replicas", 0))
            active = [p for p in pods if ko.owned_by(p, rs) and _active(p)]
            for _ in range(want - len(active)):
                self._create_pod(store, rs)
            if len(active) > want:   # scale down: unscheduled and unready first
                extra = sorted(active, key=lambda p: (bool(p["spec"].get("nodeName")), ko.is_ready(p)))[:len(active) - want]
                for pod in extra:
                    self.fleet.mark_terminating(store, pod, actor="replicaset-controller")
            active = [p for p in store.iter_raw(PODS) if ko.owned_by(p, rs) and _active(p)]
            ready = sum(1 for p in active if ko.is_ready(p))
            self._status(store, REPLICASETS, rs, {"replicas": len(active), "fullyLabeledReplicas": len(active),
                                                  "readyReplicas": ready, "availableReplicas": ready,
                                                  "observedGeneration": rs["metadata"].get("generation", 1)})

    def _deployments(self, store: ObjectStore) -> None:
        sets = store.iter_raw(REPLICASETS)
        for dep in store.iter_raw(DEPLOYMENTS):
            owned = [rs for rs in sets if ko.owned_by(rs, dep)]
            for rs in owned:     # the deployment's replicas drive its ReplicaSet (one revision in the twin)
                if rs["spec"].get("replicas") != dep["spec"].get("replicas"):
                    replicas = dep["spec"].get("replicas", 0)
                    self._mutate(store, REPLICASETS, rs, lambda o: o["spec"].__setitem__("replicas", replicas))
            replicas = sum(rs.get("status", {}).get("replicas", 0) for rs in owned)
            ready = sum(rs.get("status", {}).get("readyReplicas", 0) for rs in owned)
            want = int(dep["spec"].get("replicas", 0))
            available = "True" if ready >= want - 1 or want == 0 else "False"
            conditions = [_condition("Available", available,
                                       "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable",
                                       "Deployment has minimum availability." if available == "True"
                                       else "Deployment does not have minimum availability."),
                          _condition("Progressing", "True", "NewReplicaSetAvailable",
                                       f'ReplicaSet "{owned[0]["metadata"]["name"]}" has successfully progressed.'
                                       if owned else "")]
            old = {c["type"]: c for c in dep.get("status", {}).get("conditions", []) or []}
            for cond in conditions:
                prev = old.get(cond["type"])
                if prev and prev["status"] == cond["status"]:
                    cond["lastTransitionTime"] = prev["lastTransitionTime"]
                    cond["lastUpdateTime"] = prev.get("lastUpdateTime", prev["lastTransitionTime"])
                else:
                    cond["lastUpdateTime"] = cond["lastTransitionTime"]
            self._status(store, DEPLOYMENTS, dep, {
                "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
                "unavailableReplicas": max(0, want - ready), "observedGeneration": dep["metadata"].get("generation", 1),
                "conditions": conditions})

    def _status(self, store: ObjectStore, res, obj: Obj, status: dict) -> None:
        current = obj.get("status", {})
        if all(current.get(k) == v for k, v in status.items()):
            return
        self._mutate(store, res, obj, lambda o: o.setdefault("status", {}).update(status))

    @staticmethod
    def _mutate(store: ObjectStore, res, obj: Obj, change) -> None:
        try:
            store.mutate(res, obj["metadata"].get("namespace"), obj["metadata"]["name"], change,
                         actor=f"{obj['kind'].lower()}-controller")
        except NotFound:
            pass
