"""The deployment the twin emulates: clusters, nodegroups and the workloads on them.

Default (the article's recommendation, `cluster-per-az`): region us-east-2, one independent EKS
cluster per AZ (`g7-use2a`, `g7-use2b`), each with a spot nodegroup of g7.48xlarge serving a 13B FP8
model one replica per GPU; the first cluster also runs a pair of g7.48xlarge in a cluster placement
group serving a 70B FP16 model tensor-parallel across both nodes. The anti-pattern
`single-multi-az-cluster` stretches one cluster `g7-use2` over both AZs with the same node counts
(the tensor-parallel pair stays in one AZ: a cluster placement group cannot span AZs).

Instances are not created here: the AWS side launches them and reports each through the fleet hooks.
"""
from __future__ import annotations

import random

from harness.twin import hardware
from harness.twin.clock import TwinClock
from harness.twin.fleet.exporter import DEFAULT_COUNTERS_CSV, counters_turned_on
from harness.twin.kube import objects as kobj
from harness.twin.kube.store import ObjectStore, resource
from harness.twin.profiles import Behaviour
from harness.twin.world import Cluster, NodeGroup, World

REGION = "us-east-2"
AZS = ("us-east-2a", "us-east-2b")
INSTANCE_TYPE = "g7.48xlarge"
PLACEMENT_GROUP = "g7-tp-70b"
INFERENCE_NS = "inference"
HARNESS_NS = "g7chaos"            # where the harness creates its own pods (TargetSpec.harness_namespace)
TP_GROUP = "llama-70b-0"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.04-trtllm-python-py3"

# name -> (selector labels, image, container ports)
DAEMONSETS: dict[str, tuple[dict[str, str], str, list[int]]] = {
    "nvidia-device-plugin": ({"name": "nvidia-device-plugin-ds"}, "nvcr.io/nvidia/k8s-device-plugin:v0.17.1", []),
    "dcgm-server": ({"k8s-app": "dcgm-server"}, "nvcr.io/nvidia/cloud-native/dcgm:4.2.3-1-ubuntu22.04", [5555]),
    "dcgm-exporter": ({"app.kubernetes.io/name": "dcgm-exporter"}, "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04", [9400]),
    "eks-node-monitoring-agent": ({"app.kubernetes.io/name": "eks-node-monitoring-agent"},
                                  "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/eks-node-monitoring-agent:v1.2.0", []),
}


TRITON_TERMINATION_GRACE_S = 120

# FIDELITY DCGM-5, DCGM-6: the article's dcgm-exporter reads the node's DCGM pod (the hostengine `dcgmi` and the
# node monitoring agent use) and exports DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, which the default counters leave out.
EXPORTER_COUNTERS_CM = "dcgm-exporter-metrics"
EXPORTER_COUNTERS_DIR = "/etc/dcgm-exporter/custom"
EXPORTER_COUNTERS = counters_turned_on(DEFAULT_COUNTERS_CSV, ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                                                            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                                                            "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL"))


def _configure_exporter(ds: dict, hostengine: str) -> None:
    """Point the exporter at the counters ConfigMap and, unless the profile embeds its own hostengine, at the
    node's (hostPort 5555 of the DCGM pod)."""
    spec = ds["spec"]["template"]["spec"]
    container = spec["containers"][0]
    container["args"] = ["-f", f"{EXPORTER_COUNTERS_DIR}/metrics.csv"]
    container["env"] = [{"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]
    if hostengine == "node":
        container["env"].append({"name": "DCGM_REMOTE_HOSTENGINE_INFO", "value": "$(NODE_IP):5555"})
    container["volumeMounts"] = [{"name": "counters", "mountPath": EXPORTER_COUNTERS_DIR, "readOnly": True}]
    spec["volumes"] = [{"name": "counters", "configMap": {"name": EXPORTER_COUNTERS_CM}}]

# FIDELITY REPAIR-2: the article's nodegroups turn node auto repair on and shorten the wait for a double-bit error
# to the least the API accepts (minRepairWaitTimeMins >= 1): the GPU returns corrupted data, the canary has
# already pulled its replicas, and every minute more is a minute of lost capacity. Other reasons keep the
# documented defaults (10 min; DCGMHealthCode* are not repaired).
NODE_REPAIR_CONFIG = {
    "enabled": True,
    "nodeRepairConfigOverrides": [{"nodeMonitoringCondition": "AcceleratedHardwareReady",
                                   "nodeUnhealthyReason": "NvidiaDoubleBitError",
                                   "minRepairWaitTimeMins": 1, "repairAction": "Replace"}],
}


def cluster_name(az: str) -> str:
    return f"g7-use2{az[-1]}"


def build_world(behaviour: Behaviour, nodes_per_az: int = 2, time_scale: float = 30.0, seed: int = 7) -> World:
    """Clusters (one ObjectStore each) and nodegroups for `behaviour.topology`, with their workloads."""
    world = World(behaviour=behaviour, clock=TwinClock(time_scale), region=REGION, azs=AZS,
                  nodes_per_az=nodes_per_az, seed=seed, rng=random.Random(seed))
    pg = PLACEMENT_GROUP if behaviour.placement_group else None
    if behaviour.topology == "cluster-per-az":
        for az in AZS:
            name = cluster_name(az)
            world.clusters[name] = Cluster(name, [az], ObjectStore(name))
            _group(world, NodeGroup(f"{name}-13b", name, [az], INSTANCE_TYPE, "SPOT", nodes_per_az))
        first = cluster_name(AZS[0])
        _group(world, NodeGroup(f"{first}-70b-tp", first, [AZS[0]], INSTANCE_TYPE, "ON_DEMAND", 2, "70b-tp", pg))
    else:
        name = "g7-use2"
        world.clusters[name] = Cluster(name, list(AZS), ObjectStore(name))
        _group(world, NodeGroup(f"{name}-13b", name, list(AZS), INSTANCE_TYPE, "SPOT", nodes_per_az * len(AZS)))
        _group(world, NodeGroup(f"{name}-70b-tp", name, [AZS[0]], INSTANCE_TYPE, "ON_DEMAND", 2, "70b-tp", pg))
    for cluster in world.clusters.values():
        seed_workloads(world, cluster)
    return world


def _group(world: World, group: NodeGroup) -> None:
    # without the agent (no-dbe-remediation) nothing reports the condition repair acts on: repair is off too
    group.repair_config = NODE_REPAIR_CONFIG if world.behaviour.dbe_remediation else {"enabled": False}
    world.nodegroups[group.name] = group


def seed_workloads(world: World, cluster: Cluster) -> None:
    """Namespaces, the GPU node DaemonSets, the Triton Deployments (with their ReplicaSets) and PDBs.

    Pods are not created here: the DaemonSet and ReplicaSet controllers create them as nodes join.
    """
    store = cluster.store
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease", INFERENCE_NS, HARNESS_NS):
        store.create(resource("namespaces"), kobj.namespace(ns), actor="eks")
    for name, (labels, image, ports) in DAEMONSETS.items():
        containers = [kobj.container(name.replace("eks-", ""), image, cpu="100m", memory="256Mi",
                                     ports=[("metrics" if p == 9400 else "dcgm", p) for p in ports])]
        ds = kobj.daemonset(name, "kube-system", selector=labels, containers=containers)
        if name == "dcgm-exporter":
            store.create(resource("configmaps"), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": EXPORTER_COUNTERS_CM, "namespace": "kube-system"}, "data": {"metrics.csv": EXPORTER_COUNTERS}},
                actor="kubectl")
            _configure_exporter(ds, world.behaviour.exporter_hostengine)
        store.create(resource("daemonsets.apps"), ds, actor="eks-addon")
    for group in (g for g in world.nodegroups.values() if g.cluster == cluster.name):
        gpus_per_node = hardware.INSTANCE_TYPES[group.instance_type].gpus
        if group.role == "13b":
            model, name, per_pod, replicas = hardware.MODEL_13B_FP8, "triton-13b", 1, group.desired * gpus_per_node
            labels = {"app": "triton", "model": model.name}
            # half a node at a time: a drain proceeds only as replacements become Ready elsewhere
            pdb = kobj.poddisruptionbudget(name, INFERENCE_NS, selector=labels,
                                           max_unavailable=max(1, gpus_per_node // 2))
        else:
            model, name, per_pod, replicas = hardware.MODEL_70B_FP16, "triton-70b", gpus_per_node, group.desired
            labels = {"app": "triton", "model": model.name, "tp-group": TP_GROUP}
            pdb = kobj.poddisruptionbudget(name, INFERENCE_NS, selector=labels, min_available=1)
        containers = [kobj.container("triton", TRITON_IMAGE, gpus=per_pod, cpu="8", memory="64Gi",
                                     ports=[("http", 8000), ("grpc", 8001), ("metrics", 8002)])]
        deployment = kobj.deployment(name, INFERENCE_NS, selector=labels, containers=containers, replicas=replicas,
                                     node_selector={"eks.amazonaws.com/nodegroup": group.name},
                                     tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                                                  *kobj.DEFAULT_POD_TOLERATIONS], ready=0)
        # long enough for an in-flight generation to finish when its pod is drained (the article's graceful drain)
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = TRITON_TERMINATION_GRACE_S
        deployment = store.create(resource("deployments.apps"), deployment, actor="kubectl")
        rs = kobj.replicaset(deployment, ready=0)
        kobj.set_replicaset_counts(rs, 0, 0)
        store.create(resource("replicasets.apps"), rs, actor="deployment-controller")
        store.create(resource("poddisruptionbudgets.policy"), pdb, actor="kubectl")
