"""The fleet's view of Kubernetes objects: World things in, schema-complete API objects out.

The object shapes live in the API's own builders (harness.twin.kube.objects); this adapter turns a
World node, a nodegroup or a workload template into them and holds the small predicates controllers
share, so every controller emits the same labels, ownerReferences and status fields.
"""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.kube import objects as kobj
from harness.twin.kube.store import Obj, now_rfc3339
from harness.twin.world import Node

GPU = "nvidia.com/gpu"
EFA = "vpc.amazonaws.com/efa"
GPUS_ANNOTATION = "twin.g7chaos.io/gpus"
DEFAULT_TOLERATIONS = kobj.DEFAULT_POD_TOLERATIONS
DAEMON_TOLERATIONS = kobj.DAEMONSET_TOLERATIONS

__all__ = ["GPU", "EFA", "GPUS_ANNOTATION", "now_rfc3339"]


def node_name_for(private_ip: str, region: str) -> str:
    return kobj.node_name_for_ip(private_ip, region)


def node_object(node: Node, region: str) -> Obj:
    """A just-joined node: NotReady, no GPUs registered yet (the node status controller takes it from here)."""
    itype = hardware.INSTANCE_TYPES[node.instance_type]
    labels = {"twin.g7chaos.io/role": node.role}
    if node.placement_group:
        labels["twin.g7chaos.io/placement-group"] = node.placement_group
    obj = kobj.node(node.name, instance_id=node.instance_id, instance_type=node.instance_type, zone=node.az,
                    region=region, nodegroup=node.nodegroup, capacity_type=node.capacity_type,
                    private_ip=node.private_ip, gpus=len(node.gpus), efa=itype.efa_interfaces, cpu=itype.vcpus,
                    memory_gib=itype.memory_gib, cluster=node.cluster, labels=labels, ready=False,
                    ephemeral_storage_gib=int(itype.nvme_tb * 1000))
    kobj.set_node_gpus(obj, 0, 0)
    return obj


def namespace_object(name: str) -> Obj:
    return kobj.namespace(name)


def container(name: str, image: str, *, gpus: int = 0, ports: list[tuple[str, int]] | None = None) -> Obj:
    return kobj.container(name, image, gpus=gpus, ports=ports or ())


def get_condition(obj: Obj, type_: str) -> Obj | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) or [] if c["type"] == type_), None)


def set_condition(obj: Obj, type_: str, status: str, reason: str, message: str, *, node: bool = False) -> None:
    """Set a condition; transition (and, on nodes, heartbeat) times move only when the status changes.

    Holding the heartbeat still keeps a steady fleet from writing (and every watcher from seeing) a
    MODIFIED node each tick; kubelet's lease does the same job in a real cluster.
    """
    conds = obj.setdefault("status", {}).setdefault("conditions", [])
    now = now_rfc3339()
    for cond in conds:
        if cond["type"] == type_:
            if cond["status"] != status:
                cond["lastTransitionTime"] = now
                if node:
                    cond["lastHeartbeatTime"] = now
            cond.update({"status": status, "reason": reason, "message": message})
            return
    cond = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
    if node:
        cond["lastHeartbeatTime"] = now
    else:
        cond["lastProbeTime"] = None
    conds.append(cond)


def pod_from_template(owner: Obj, name: str, *, node_name: str | None = None) -> Obj:
    """A new pod of a ReplicaSet or DaemonSet: Pending, and bound already when `node_name` is given."""
    return kobj.pod_for(owner, name, node_name=node_name, phase="Pending", ready=False)


def set_pod_running(pod: Obj, host_ip: str, pod_ip: str) -> None:
    status = pod.setdefault("status", {})
    status.update({"phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                   "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": status.get("startTime") or now_rfc3339()})
    kobj.set_pod_ready(pod, False)


def set_pod_ready(pod: Obj, ready: bool) -> None:
    kobj.set_pod_ready(pod, ready)


def event_object(involved: Obj, reason: str, message: str, *, type_: str = "Normal",
                 component: str = "twin", host: str | None = None) -> Obj:
    return kobj.event(involved, reason=reason, message=message, type_=type_, component=component, host=host)


def gpu_request(pod: Obj) -> int:
    return sum(int(c.get("resources", {}).get("requests", {}).get(GPU, 0) or 0) for c in pod["spec"]["containers"])


def is_terminating(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def is_ready(obj: Obj) -> bool:
    cond = get_condition(obj, "Ready")
    return bool(cond and cond["status"] == "True")


def owner_kind(obj: Obj) -> str | None:
    refs = obj["metadata"].get("ownerReferences") or []
    return next((r["kind"] for r in refs if r.get("controller")), None)


def owned_by(obj: Obj, owner: Obj) -> bool:
    return any(r.get("uid") == owner["metadata"]["uid"] for r in obj["metadata"].get("ownerReferences") or [])
