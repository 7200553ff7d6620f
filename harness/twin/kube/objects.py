"""Builders of schema-complete Kubernetes objects, as the plain dicts the API serves.

The official Python client deserialises every response into validated models and refuses objects that
miss a required field (a Node without all ten `status.nodeInfo` strings, a DaemonSet status without its
four counters, a PodDisruptionBudget status without `expectedPods`...). Building every object here, in
one place, and round-tripping each kind through `ApiClient().deserialize` in a test keeps the twin's
wire output acceptable to real clients while the controllers stay free to treat objects as dicts.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import uuid
from typing import Any, Iterable

Obj = dict[str, Any]

KUBELET_VERSION = "v1.32.3-eks-473151a"
OS_IMAGE = "Amazon Linux 2023.7.20250512"
KERNEL_VERSION = "6.1.134-152.225.amzn2023.x86_64"
CONTAINER_RUNTIME = "containerd://1.7.27"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.04-trtllm-python-py3"

# What EKS sets on accelerated nodes and what GPU workloads tolerate.
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
DEFAULT_POD_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]
DAEMONSET_TOLERATIONS = [
    {"operator": "Exists"},
]


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """MicroTime, the format events.k8s.io/v1 `eventTime` requires."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None, owner: Obj | None = None) -> Obj:
    meta: Obj = {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339(),
                 "labels": dict(labels or {}), "annotations": dict(annotations or {})}
    if namespace is not None:
        meta["namespace"] = namespace
    if owner is not None:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def owner_reference(owner: Obj, controller: bool = True) -> Obj:
    """A controller ownerReference to `owner` (drain refuses pods without one unless --force)."""
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


def short_hash(text: str, n: int = 10) -> str:
    """Deterministic suffix in the alphabet Kubernetes uses for pod-template hashes."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    out = []
    for _ in range(n):
        digest, r = divmod(digest, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


# -- namespace -------------------------------------------------------------------------------------
def namespace(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(name, labels={"kubernetes.io/metadata.name": name, **(labels or {})}),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


# -- node ------------------------------------------------------------------------------------------
def node_name_for_ip(private_ip: str, region: str = "us-east-2") -> str:
    return f"ip-{private_ip.replace('.', '-')}.{region}.compute.internal"


def node(name: str, *, instance_id: str, instance_type: str, zone: str, region: str, nodegroup: str,
         capacity_type: str, private_ip: str, gpus: int, efa: int = 0, cpu: int = 192, memory_gib: int = 768,
         cluster: str | None = None, labels: dict[str, str] | None = None, ready: bool = True,
         gpu_taint: bool = False, ephemeral_storage_gib: int = 7600) -> Obj:
    """A Node as EKS shows a managed-nodegroup instance, with allocatable GPUs and EFA devices."""
    all_labels = {
        "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/instance-type": instance_type,
        "node.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": zone, "failure-domain.beta.kubernetes.io/region": region,
        "eks.amazonaws.com/nodegroup": nodegroup, "eks.amazonaws.com/capacityType": capacity_type,
        "eks.amazonaws.com/nodegroup-image": "ami-0a1b2c3d4e5f60718",
        "k8s.io/cloud-provider-aws": hashlib.md5((cluster or nodegroup).encode()).hexdigest(),
        "nvidia.com/gpu.present": "true",
        **(labels or {}),
    }
    resources = {"cpu": str(cpu), "memory": f"{memory_gib * 1024 * 1024}Ki", "pods": "737",
                 "ephemeral-storage": f"{ephemeral_storage_gib}Gi", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                 "nvidia.com/gpu": str(gpus), "vpc.amazonaws.com/efa": str(efa)}
    allocatable = dict(resources, cpu=f"{cpu * 1000 - 510}m",
                       memory=f"{memory_gib * 1024 * 1024 - 7_000_000}Ki")
    obj: Obj = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": _meta(name, labels=all_labels,
                          annotations={"alpha.kubernetes.io/provided-node-ip": private_ip,
                                       "node.alpha.kubernetes.io/ttl": "0",
                                       "volumes.kubernetes.io/controller-managed-attach-detach": "true"}),
        "spec": {"providerID": f"aws:///{zone}/{instance_id}",
                 "taints": [dict(GPU_TAINT)] if gpu_taint else []},
        "status": {
            "addresses": [{"type": "InternalIP", "address": private_ip},
                          {"type": "InternalDNS", "address": name},
                          {"type": "Hostname", "address": name}],
            "capacity": resources, "allocatable": allocatable,
            "conditions": [],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": [{"names": [TRITON_IMAGE], "sizeBytes": 19_000_000_000}],
            "nodeInfo": {
                "architecture": "amd64", "bootID": str(uuid.uuid4()),
                "containerRuntimeVersion": CONTAINER_RUNTIME, "kernelVersion": KERNEL_VERSION,
                "kubeProxyVersion": KUBELET_VERSION, "kubeletVersion": KUBELET_VERSION,
                "machineID": uuid.uuid4().hex, "operatingSystem": "linux", "osImage": OS_IMAGE,
                "systemUUID": str(uuid.uuid4()).upper(),
            },
            "phase": "Running",
        },
    }
    for ctype, status, reason, message in [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True" if ready else "False", "KubeletReady" if ready else "KubeletNotReady",
         "kubelet is posting ready status" if ready else "container runtime network not ready"),
        ("AcceleratedHardwareReady", "True", "NvidiaGPUIsReady", "Monitoring for the Nvidia GPU system is active"),
    ]:
        set_node_condition(obj, ctype, status, reason, message)
    return obj


def set_node_condition(node_obj: Obj, type_: str, status: str, reason: str, message: str = "") -> Obj:
    """Set (or add) one node condition; transition time moves only when the status changes, as kubelet does."""
    now = now_rfc3339()
    conditions = node_obj.setdefault("status", {}).setdefault("conditions", [])
    for c in conditions:
        if c["type"] == type_:
            if c["status"] != status:
                c["lastTransitionTime"] = now
            c.update(status=status, reason=reason, message=message, lastHeartbeatTime=now)
            return node_obj
    conditions.append({"type": type_, "status": status, "reason": reason, "message": message,
                       "lastHeartbeatTime": now, "lastTransitionTime": now})
    return node_obj


def node_condition(node_obj: Obj, type_: str) -> Obj | None:
    return next((c for c in node_obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def set_node_gpus(node_obj: Obj, allocatable: int, capacity: int | None = None) -> Obj:
    """Device-plugin view of the GPUs: allocatable 0 is how a plugin that raced the driver shows."""
    status = node_obj["status"]
    if capacity is not None:
        status["capacity"]["nvidia.com/gpu"] = str(capacity)
    status["allocatable"]["nvidia.com/gpu"] = str(allocatable)
    return node_obj


# -- pod -------------------------------------------------------------------------------------------
def container(name: str, image: str, *, gpus: int = 0, cpu: str = "1", memory: str = "1Gi",
              ports: Iterable[tuple[str, int]] = (), command: list[str] | None = None,
              env: dict[str, str] | None = None) -> Obj:
    requests: Obj = {"cpu": cpu, "memory": memory}
    limits: Obj = {"memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
        limits["nvidia.com/gpu"] = str(gpus)
    c: Obj = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
              "resources": {"requests": requests, "limits": limits},
              "ports": [{"name": pname, "containerPort": port, "protocol": "TCP"} for pname, port in ports],
              "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
    if command:
        c["command"] = list(command)
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return c


def pod_template(labels: dict[str, str], containers: list[Obj], *, annotations: dict[str, str] | None = None,
                 tolerations: list[Obj] | None = None, node_selector: dict[str, str] | None = None,
                 volumes: list[Obj] | None = None) -> Obj:
    spec: Obj = {"containers": copy.deepcopy(containers), "restartPolicy": "Always",
                 "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "schedulerName": "default-scheduler", "securityContext": {},
                 "tolerations": copy.deepcopy(tolerations or [])}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if volumes:
        spec["volumes"] = copy.deepcopy(volumes)
    return {"metadata": {"labels": dict(labels), "annotations": dict(annotations or {})}, "spec": spec}


def pod(name: str, namespace: str, *, containers: list[Obj], owner: Obj | None = None,
        node_name: str | None = None, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, phase: str = "Running", ready: bool = True,
        pod_ip: str | None = None, host_ip: str | None = None, tolerations: list[Obj] | None = None,
        node_selector: dict[str, str] | None = None, volumes: list[Obj] | None = None) -> Obj:
    """A pod; Running+Ready by default. Pending pods without a node carry no IPs, as in a real cluster."""
    spec: Obj = {"containers": copy.deepcopy(containers), "restartPolicy": "Always",
                 "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccountName": "default",
                 "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
                 "tolerations": copy.deepcopy(tolerations if tolerations is not None else DEFAULT_POD_TOLERATIONS)}
    if node_name:
        spec["nodeName"] = node_name
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if volumes:
        spec["volumes"] = copy.deepcopy(volumes)
    obj: Obj = {"apiVersion": "v1", "kind": "Pod",
                "metadata": _meta(name, namespace, labels, annotations, owner),
                "spec": spec, "status": {"phase": phase, "qosClass": "Burstable", "conditions": [],
                                         "containerStatuses": []}}
    status = obj["status"]
    if node_name:
        status["startTime"] = now_rfc3339()
        if host_ip:
            status["hostIP"] = host_ip
            status["hostIPs"] = [{"ip": host_ip}]
        if pod_ip:
            status["podIP"] = pod_ip
            status["podIPs"] = [{"ip": pod_ip}]
    if phase == "Pending" and not node_name:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": "0/0 nodes are available", "lastTransitionTime": now_rfc3339()}]
        return obj
    set_pod_ready(obj, ready and phase == "Running")
    return obj


def set_pod_ready(pod_obj: Obj, ready: bool) -> Obj:
    """Ready/ContainersReady conditions and containerStatuses of a scheduled pod agree with `ready`."""
    now = now_rfc3339()
    status = pod_obj.setdefault("status", {})
    running = status.get("phase") == "Running"
    wanted = {"PodReadyToStartContainers": "True" if running else "False", "Initialized": "True",
              "Ready": "True" if ready else "False", "ContainersReady": "True" if ready else "False",
              "PodScheduled": "True"}
    conditions = status.setdefault("conditions", [])
    by_type = {c["type"]: c for c in conditions}
    for ctype, value in wanted.items():
        c = by_type.get(ctype)
        if c is None:
            c = {"type": ctype, "status": value, "lastTransitionTime": now, "lastProbeTime": None}
            conditions.append(c)
        elif c["status"] != value:
            c["status"], c["lastTransitionTime"] = value, now
        if ctype in ("Ready", "ContainersReady") and not ready:
            c["reason"] = "ContainersNotReady"
        else:
            c.pop("reason", None)
    previous = {cs["name"]: cs for cs in status.get("containerStatuses", [])}
    statuses = []
    for c in pod_obj["spec"]["containers"]:
        prev = previous.get(c["name"], {})
        cs: Obj = {"name": c["name"], "image": c["image"],
                   "imageID": prev.get("imageID") or f"{c['image'].split(':')[0]}@sha256:{hashlib.sha256(c['image'].encode()).hexdigest()}",
                   "containerID": prev.get("containerID") or f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}",
                   "ready": ready, "started": running, "restartCount": prev.get("restartCount", 0)}
        if running:
            started = prev.get("state", {}).get("running", {}).get("startedAt", now)
            cs["state"] = {"running": {"startedAt": started}}
        else:
            cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
        statuses.append(cs)
    status["containerStatuses"] = statuses
    return pod_obj


def pod_is_ready(pod_obj: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod_obj.get("status", {}).get("conditions", []))


# -- workload controllers --------------------------------------------------------------------------
def daemonset(name: str, namespace: str, *, selector: dict[str, str], containers: list[Obj],
              labels: dict[str, str] | None = None, tolerations: list[Obj] | None = None,
              node_selector: dict[str, str] | None = None, desired: int = 0, ready: int | None = None) -> Obj:
    template = pod_template(selector, containers,
                            tolerations=tolerations if tolerations is not None else DAEMONSET_TOLERATIONS,
                            node_selector=node_selector)
    obj: Obj = {"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": _meta(name, namespace, {**selector, **(labels or {})},
                                  {"deprecated.daemonset.template.generation": "1"}),
                "spec": {"selector": {"matchLabels": dict(selector)}, "template": template,
                         "updateStrategy": {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                         "revisionHistoryLimit": 10},
                "status": {}}
    set_daemonset_counts(obj, desired, desired if ready is None else ready)
    return obj


def set_daemonset_counts(ds: Obj, desired: int, ready: int) -> Obj:
    ds["status"] = {"currentNumberScheduled": desired, "desiredNumberScheduled": desired,
                    "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                    "numberUnavailable": max(0, desired - ready), "updatedNumberScheduled": desired,
                    "observedGeneration": ds["metadata"].get("generation", 1)}
    if ds["status"]["numberUnavailable"] == 0:
        del ds["status"]["numberUnavailable"]
    return ds


def deployment(name: str, namespace: str, *, selector: dict[str, str], containers: list[Obj], replicas: int,
               labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
               template_annotations: dict[str, str] | None = None, tolerations: list[Obj] | None = None,
               node_selector: dict[str, str] | None = None, ready: int | None = None) -> Obj:
    template = pod_template(selector, containers, annotations=template_annotations,
                            tolerations=tolerations, node_selector=node_selector)
    obj: Obj = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": _meta(name, namespace, {**selector, **(labels or {})},
                                  {"deployment.kubernetes.io/revision": "1", **(annotations or {})}),
                "spec": {"replicas": replicas, "selector": {"matchLabels": dict(selector)}, "template": template,
                         "strategy": {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                         "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
                "status": {}}
    set_deployment_counts(obj, replicas if ready is None else ready)
    return obj


def set_deployment_counts(dep: Obj, ready: int, replicas: int | None = None) -> Obj:
    total = dep["spec"]["replicas"] if replicas is None else replicas
    now = now_rfc3339()
    available = "True" if ready >= max(1, total - 1) or ready == total else "False"
    dep["status"] = {"observedGeneration": dep["metadata"].get("generation", 1), "replicas": total,
                     "updatedReplicas": total, "readyReplicas": ready, "availableReplicas": ready,
                     "conditions": [
                         {"type": "Available", "status": available,
                          "reason": "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable",
                          "message": "Deployment has minimum availability." if available == "True"
                          else "Deployment does not have minimum availability.",
                          "lastUpdateTime": now, "lastTransitionTime": now},
                         {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                          "message": f'ReplicaSet "{dep["metadata"]["name"]}" has successfully progressed.',
                          "lastUpdateTime": now, "lastTransitionTime": now}]}
    if total - ready > 0:
        dep["status"]["unavailableReplicas"] = total - ready
    return dep


def replicaset(deployment_obj: Obj, *, replicas: int | None = None, ready: int | None = None) -> Obj:
    """The ReplicaSet a Deployment owns, named `<deployment>-<pod-template-hash>` as the controller does."""
    spec = deployment_obj["spec"]
    pth = short_hash(deployment_obj["metadata"]["name"] + repr(spec["template"]), 10)
    labels = {**spec["selector"]["matchLabels"], "pod-template-hash": pth}
    template = copy.deepcopy(spec["template"])
    template["metadata"]["labels"] = dict(template["metadata"].get("labels", {}), **{"pod-template-hash": pth})
    n = spec["replicas"] if replicas is None else replicas
    obj: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": _meta(f"{deployment_obj['metadata']['name']}-{pth}", deployment_obj["metadata"]["namespace"],
                                  labels, {"deployment.kubernetes.io/desired-replicas": str(n),
                                           "deployment.kubernetes.io/max-replicas": str(n + 1),
                                           "deployment.kubernetes.io/revision": "1"}, deployment_obj),
                "spec": {"replicas": n, "selector": {"matchLabels": labels}, "template": template},
                "status": {}}
    set_replicaset_counts(obj, n if ready is None else ready)
    return obj


def set_replicaset_counts(rs: Obj, ready: int, replicas: int | None = None) -> Obj:
    total = rs["spec"]["replicas"] if replicas is None else replicas
    rs["status"] = {"replicas": total, "fullyLabeledReplicas": total, "readyReplicas": ready,
                    "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
    return rs


def pod_for(owner: Obj, name: str, *, node_name: str | None, pod_ip: str | None = None,
            host_ip: str | None = None, annotations: dict[str, str] | None = None,
            extra_labels: dict[str, str] | None = None, phase: str = "Running", ready: bool = True) -> Obj:
    """A pod stamped from a DaemonSet's or ReplicaSet's template, owned by it."""
    template = owner["spec"]["template"]
    stamped = pod(name, owner["metadata"]["namespace"], containers=template["spec"]["containers"], owner=owner,
               node_name=node_name, labels={**template["metadata"].get("labels", {}), **(extra_labels or {})},
               annotations={**template["metadata"].get("annotations", {}), **(annotations or {})},
               phase=phase, ready=ready, pod_ip=pod_ip, host_ip=host_ip,
               tolerations=template["spec"].get("tolerations") or DEFAULT_POD_TOLERATIONS,
               node_selector=template["spec"].get("nodeSelector"), volumes=template["spec"].get("volumes"))
    stamped["spec"]["terminationGracePeriodSeconds"] = template["spec"].get("terminationGracePeriodSeconds", 30)
    return stamped


def generated_pod_name(owner_name: str) -> str:
    return f"{owner_name}-{uuid.uuid4().hex[:5]}"


# -- policy ----------------------------------------------------------------------------------------
def poddisruptionbudget(name: str, namespace: str, *, selector: dict[str, str],
                        min_available: int | str | None = None, max_unavailable: int | str | None = None,
                        labels: dict[str, str] | None = None) -> Obj:
    if (min_available is None) == (max_unavailable is None):
        raise ValueError("exactly one of min_available / max_unavailable")
    spec: Obj = {"selector": {"matchLabels": dict(selector)}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    else:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(name, namespace, labels),
            "spec": spec,
            "status": {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0,
                       "observedGeneration": 1, "disruptedPods": {}, "conditions": []}}


# -- events ----------------------------------------------------------------------------------------
def object_reference(obj: Obj) -> Obj:
    ref = {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", ""),
           "name": obj["metadata"]["name"], "uid": obj["metadata"].get("uid", ""),
           "resourceVersion": obj["metadata"].get("resourceVersion", "")}
    if obj["metadata"].get("namespace"):
        ref["namespace"] = obj["metadata"]["namespace"]
    return ref


def event(involved: Obj, *, reason: str, message: str, type_: str = "Normal", component: str = "g7-twin",
          host: str | None = None, namespace: str | None = None, count: int = 1) -> Obj:
    """A core/v1 Event (what `kubectl get events` and `describe` read)."""
    ns = namespace or involved["metadata"].get("namespace") or "default"
    now = now_rfc3339()
    name = f"{involved['metadata']['name']}.{uuid.uuid4().hex[:16]}"
    source: Obj = {"component": component}
    if host:
        source["host"] = host
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4()), "creationTimestamp": now},
            "involvedObject": object_reference(involved), "reason": reason, "message": message, "type": type_,
            "source": source, "count": count, "firstTimestamp": now, "lastTimestamp": now,
            "eventTime": None, "reportingComponent": component, "reportingInstance": host or component}


def events_v1_event(regarding: Obj, *, reason: str, note: str, type_: str = "Normal", action: str = "",
                    controller: str = "g7-twin", instance: str | None = None,
                    namespace: str | None = None) -> Obj:
    """An events.k8s.io/v1 Event (what `kubectl events` and newer controllers use)."""
    ns = namespace or regarding["metadata"].get("namespace") or "default"
    return {"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": f"{regarding['metadata']['name']}.{uuid.uuid4().hex[:16]}", "namespace": ns,
                         "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339()},
            "eventTime": now_micro(), "regarding": object_reference(regarding), "reason": reason,
            "note": note, "type": type_, "action": action or reason, "reportingController": controller,
            "reportingInstance": instance or controller}


def core_event_to_v1(ev: Obj) -> Obj:
    """The same Event as events.k8s.io/v1 shows it (one store, two API shapes, as in a real API server)."""
    out: Obj = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": copy.deepcopy(ev["metadata"]),
                "eventTime": ev.get("eventTime") or _as_micro(ev.get("lastTimestamp") or ev["metadata"].get("creationTimestamp")),
                "regarding": ev.get("involvedObject", {}), "reason": ev.get("reason"), "note": ev.get("message"),
                "type": ev.get("type"), "action": ev.get("action") or ev.get("reason"),
                "reportingController": ev.get("reportingComponent") or ev.get("source", {}).get("component", ""),
                "reportingInstance": ev.get("reportingInstance") or ev.get("source", {}).get("host", ""),
                "deprecatedCount": ev.get("count", 1), "deprecatedSource": ev.get("source", {}),
                "deprecatedFirstTimestamp": ev.get("firstTimestamp"),
                "deprecatedLastTimestamp": ev.get("lastTimestamp")}
    return out


def v1_event_to_core(ev: Obj) -> Obj:
    ts = ev.get("deprecatedLastTimestamp") or (ev.get("eventTime") or now_micro())[:19] + "Z"
    return {"apiVersion": "v1", "kind": "Event", "metadata": copy.deepcopy(ev["metadata"]),
            "involvedObject": ev.get("regarding", {}), "reason": ev.get("reason"), "message": ev.get("note"),
            "type": ev.get("type"), "action": ev.get("action"), "eventTime": ev.get("eventTime"),
            "count": ev.get("deprecatedCount", 1), "firstTimestamp": ev.get("deprecatedFirstTimestamp") or ts,
            "lastTimestamp": ts, "source": ev.get("deprecatedSource") or {"component": ev.get("reportingController", "")},
            "reportingComponent": ev.get("reportingController", ""), "reportingInstance": ev.get("reportingInstance", "")}


def _as_micro(ts: str | None) -> str:
    if not ts:
        return now_micro()
    return ts[:19] + ".000000Z" if ts.endswith("Z") and "." not in ts else ts


# -- lists and status -----------------------------------------------------------------------------
def list_of(api_version: str, kind: str, items: list[Obj], resource_version: int | str) -> Obj:
    return {"apiVersion": api_version, "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(resource_version)}, "items": items}


def status(code: int, reason: str, message: str, *, name: str | None = None, kind: str | None = None,
           group: str | None = None, causes: list[Obj] | None = None, retry_after: int | None = None) -> Obj:
    """A metav1.Status failure body, what clients parse for the reason behind a 4xx/5xx."""
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": message, "reason": reason, "code": code}
    details: Obj = {}
    if name is not None:
        details["name"] = name
    if group:
        details["group"] = group
    if kind is not None:
        details["kind"] = kind
    if causes:
        details["causes"] = causes
    if retry_after is not None:
        details["retryAfterSeconds"] = retry_after
    if details:
        body["details"] = details
    return body


def success_status(details: Obj | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body
