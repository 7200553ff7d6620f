"""efa-saturation: real competing collective traffic across the nodes of a tensor-parallel group.

tc-based network faults do not touch EFA's OS-bypass RDMA path, so the only honest way to load the fabric is
traffic that uses it. `all_reduce_perf` in one process only moves data between the GPUs of its own node
(PCIe here, no EFA); nccl-tests spans nodes only when MPI launches its ranks on several of them
(NVIDIA/nccl-tests README). So the fault runs an MPI job whose ranks sit on the TP group's nodes, the way the
EKS user guide runs its NCCL test (awsdocs/amazon-eks-user-guide latest/ug/ml/node-efa.adoc):

- with the MPI operator installed (API discovery lists `mpijobs` in `kubeflow.org/v2beta1`): one MPIJob in
  the target's `harness_namespace`, a launcher and one worker per node of the group (required node affinity
  on the nodes' hostnames, required anti-affinity between workers), the operator wiring mpirun to them;
- without it: the fault creates the pods itself in `harness_namespace`: one worker per node, pinned by its
  hostname label, sleeping until mpirun starts its ranks; and a launcher that runs mpirun with
  `--mca plm_rsh_agent /opt/kube/kubexec.sh`, a script that reaches a worker by `kubectl exec <pod> --
  /bin/sh -c "<orted ...>"` instead of ssh. That is how mpi-operator v1 wired its launchers (its
  `kubexec.sh` in the job's ConfigMap, kubectl copied in by an init container): no SSH keys, no sshd. The
  launcher runs as the ServiceAccount `g7chaos-mpi-launcher`, which needs `pods/exec` (create) and pods
  get in `harness_namespace` only.

Every worker requests `vpc.amazonaws.com/efa` (without it NCCL falls back to TCP sockets over ENA and the
fabric never sees the traffic) and the GPUs its ranks use when the nodes have them free. A TP group usually
holds every GPU of its nodes; the workers then request none and name the GPUs by `NVIDIA_VISIBLE_DEVICES`,
sharing them with serving (the NVIDIA container toolkit honours that variable unless the node sets
`accept-nvidia-visible-devices-envvar-when-unprivileged = false`; then all_reduce_perf finds no CUDA
device and the fault does not land). mpirun runs in a loop of short runs, so the fabric frees soon after
the revert deletes the pods.

Landed = the launcher's log (pod log API) shows NCCL on libfabric's EFA provider (`NET/OFI Selected Provider
is efa`, not the TCP socket fallback) and `# Avg bus bandwidth` from a run spanning every node, AND the EFA
hardware counters (`/sys/class/infiniband/<dev>/ports/<port>/hw_counters/{tx,rx}_bytes`, the
counters the EKS node monitoring agent and the CloudWatch agent read) rose on every node since the launch,
read by exec in the fault's own worker on that node. The exit code of a create or an exec proves nothing.
"""
from __future__ import annotations

import re
import shlex
import time
import uuid
from typing import Any

from kubernetes import client
from pydantic import Field

from harness.faults.base import Fault, FaultError, NodeRef, register
from harness.faults.podexec import pod_exec
from harness.strict.params import FaultParams
from harness.strict.units import Percentage

ZONE = "topology.kubernetes.io/zone"
NODEGROUP = "eks.amazonaws.com/nodegroup"
HOSTNAME = "kubernetes.io/hostname"
EFA = "vpc.amazonaws.com/efa"
GPU = "nvidia.com/gpu"
TP_LABEL = "tp-group"
MPI_GROUP, MPI_VERSION, MPI_PLURAL = "kubeflow.org", "v2beta1", "mpijobs"
LAUNCHER_SA = "g7chaos-mpi-launcher"
KUBE_DIR = "/opt/kube"
KUBEXEC = f"{KUBE_DIR}/kubexec.sh"
ALL_REDUCE_PERF = "/opt/nccl-tests/build/all_reduce_perf"
RUN_ITERS = 20                 # one all_reduce_perf run: short, so a revert frees the fabric quickly
HW_COUNTERS = "/sys/class/infiniband/*/ports/*/hw_counters/*"
TRAFFIC_COUNTERS = ("tx_bytes", "rx_bytes")
LABELS = {"app.kubernetes.io/name": "nccl-tests", "app.kubernetes.io/managed-by": "g7chaos"}
BUSBW_RE = re.compile(r"#\s*Avg bus bandwidth\s*:\s*([0-9.]+)")
# aws-ofi-nccl's line under NCCL_DEBUG=INFO when NCCL runs over libfabric's EFA provider (the EKS guide's check)
OFI_EFA_RE = re.compile(r"NET/OFI Selected Provider is efa", re.IGNORECASE)
# the environment of the EKS user guide's NCCL test: libfabric's EFA provider under NCCL
NCCL_ENV = {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "NCCL_DEBUG": "INFO",
            "NCCL_P2P_NET_CHUNKSIZE": "524288",
            "NCCL_TUNER_PLUGIN": "/opt/aws-ofi-nccl/install/lib/libnccl-ofi-tuner.so"}
# kubexec.sh as mpi-operator v1 wrote it: the first argument is the pod, the rest the command mpirun runs there
KUBEXEC_SCRIPT = ("#!/bin/sh\nPOD_NAME=$1\nshift\n"
                  f'exec {KUBE_DIR}/kubectl exec "$POD_NAME" -- /bin/sh -c "$*"\n')


def gpus_for(load: float, gpus_per_node: int) -> int:
    """Ranks per node: each GPU in the run drives its own NCCL channels onto the node's EFA devices, so the
    share of the node's GPUs taking part is the share of the fabric the run takes."""
    return min(gpus_per_node, max(1, round(load * gpus_per_node)))


def nccl_command(ranks_per_node: int, workers: list[str] | None) -> list[str]:
    """mpirun for one rank per GPU on every worker (`-g 1`, as the EKS guide runs it), looped in short runs.

    `workers` names the hosts (pod names reached by the kubectl-exec agent); None under the MPI operator,
    which hands mpirun its hostfile itself."""
    mpirun = ["mpirun", "--allow-run-as-root", "-bind-to", "none"]
    if workers is not None:
        mpirun += ["--mca", "plm_rsh_agent", KUBEXEC, "-H", ",".join(f"{w}:{ranks_per_node}" for w in workers)]
        mpirun += ["-np", str(ranks_per_node * len(workers))]
    # under the operator, mpirun starts one rank per slot of the hostfile it is given (slotsPerWorker)
    for key, value in NCCL_ENV.items():
        mpirun += ["-x", f"{key}={value}"]
    mpirun += [ALL_REDUCE_PERF, "-b", "8", "-e", "128M", "-f", "2", "-g", "1", "-c", "1", "-n", str(RUN_ITERS)]
    line = " ".join(shlex.quote(a) for a in mpirun)
    return ["/bin/sh", "-c", f"while :; do {line}; done"]


def _worker_container(image: str, gpus: int, share_gpus: int) -> dict[str, Any]:
    resources: dict[str, str] = {EFA: "1"}
    env = []
    if gpus:
        resources[GPU] = str(gpus)
    else:
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": ",".join(str(i) for i in range(share_gpus))})
    return {"name": "worker", "image": image, "command": ["sleep", "infinity"], "env": env,
            "resources": {"requests": dict(resources), "limits": dict(resources)}}


def worker_pod(name: str, namespace: str, node: str, image: str, gpus: int, share_gpus: int) -> dict[str, Any]:
    """A worker pinned to `node` by its hostname label: it only sleeps until mpirun starts ranks in it."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {**LABELS, "app.kubernetes.io/component": "worker"}},
        "spec": {"restartPolicy": "Never", "nodeSelector": {HOSTNAME: node}, "tolerations": [{"operator": "Exists"}],
                 "terminationGracePeriodSeconds": 0,
                 "containers": [_worker_container(image, gpus, share_gpus)]},
    }


def launcher_pod(name: str, namespace: str, image: str, kubectl_image: str, command: list[str]) -> dict[str, Any]:
    """The launcher: an init container copies kubectl and writes kubexec.sh into a shared emptyDir, then
    mpirun starts the ranks in the workers through it. No GPU, no EFA: it only runs mpirun."""
    install = (f'cp "$(command -v kubectl)" {KUBE_DIR}/kubectl && printf %s {shlex.quote(KUBEXEC_SCRIPT)} '
               f'> {KUBEXEC} && chmod 0755 {KUBE_DIR}/kubectl {KUBEXEC}')
    mount = [{"name": "kube", "mountPath": KUBE_DIR}]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {**LABELS, "app.kubernetes.io/component": "launcher"}},
        "spec": {"restartPolicy": "Never", "serviceAccountName": LAUNCHER_SA, "terminationGracePeriodSeconds": 0,
                 "volumes": [{"name": "kube", "emptyDir": {}}],
                 "initContainers": [{"name": "kubectl-delivery", "image": kubectl_image,
                                     "command": ["/bin/sh", "-c", install], "volumeMounts": mount}],
                 "containers": [{"name": "launcher", "image": image, "command": command, "volumeMounts": mount}]},
    }


def mpijob(name: str, namespace: str, nodes: list[str], image: str, gpus: int, share_gpus: int,
           ranks_per_node: int) -> dict[str, Any]:
    """An MPIJob (kubeflow.org/v2beta1): one worker per node of the group by required node affinity on the
    nodes' hostnames and required anti-affinity between the job's workers."""
    worker_labels = {**LABELS, "g7chaos.io/mpijob": name}
    return {
        "apiVersion": f"{MPI_GROUP}/{MPI_VERSION}", "kind": "MPIJob",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS)},
        "spec": {
            "slotsPerWorker": ranks_per_node,
            "runPolicy": {"cleanPodPolicy": "All"},
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "template": {"metadata": {"labels": dict(LABELS)}, "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{"name": "launcher", "image": image, "command": nccl_command(ranks_per_node, None)}]}}},
                "Worker": {"replicas": len(nodes), "template": {"metadata": {"labels": worker_labels}, "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "affinity": {
                        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                            {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": list(nodes)}]}]}},
                        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {"matchLabels": {"g7chaos.io/mpijob": name}}, "topologyKey": HOSTNAME}]}},
                    "containers": [{**_worker_container(image, gpus, share_gpus), "command": ["/usr/sbin/sshd", "-De"]}]}}},
            },
        },
    }


def mpi_operator_installed(api: Any) -> bool:
    """Whether API discovery lists `mpijobs` in kubeflow.org/v2beta1 (the MPI operator's CRD)."""
    groups = client.ApisApi(api).get_api_versions().groups or []
    group = next((g for g in groups if g.name == MPI_GROUP), None)
    if group is None or MPI_VERSION not in {v.version for v in group.versions or []}:
        return False
    resources = client.CustomObjectsApi(api).get_api_resources(MPI_GROUP, MPI_VERSION)
    return any(r.name == MPI_PLURAL for r in (resources.resources or []))


def parse_hw_counters(text: str) -> dict[str, int]:
    """`grep -H . <hw_counters>` output -> counter name -> sum over the node's EFA devices and ports."""
    totals: dict[str, int] = {}
    for line in text.splitlines():
        path, _, value = line.rpartition(":")
        if "/hw_counters/" in path and value.strip().isdigit():
            name = path.rsplit("/", 1)[-1]
            totals[name] = totals.get(name, 0) + int(value)
    return totals


def bus_bandwidths(log: str) -> list[float]:
    return [float(m.group(1)) for m in BUSBW_RE.finditer(log)]


class EfaSaturationParams(FaultParams):
    """A competing nccl-tests MPI job (all_reduce_perf) across the TP group's nodes, one worker per node
    requesting vpc.amazonaws.com/efa."""

    tp_group: str | None = Field(None, max_length=128, description="tp-group label; default: the first found")
    load: Percentage = Field(0.9, description="share of the fabric the competing traffic takes")
    image: str = Field("public.ecr.aws/hpc-cloud/nccl-tests:latest", max_length=512)
    kubectl_image: str = Field("docker.io/dtzar/helm-kubectl:3.15.0", max_length=512,
                               description="init container of the launcher (without the MPI operator): an image "
                               "with sh and kubectl, copied in for the kubectl-exec agent mpirun uses")


@register
class EfaSaturation(Fault):
    name = "efa-saturation"
    params_model = EfaSaturationParams
    params: EfaSaturationParams

    def plan(self) -> str:
        target = self.ctx.target
        inference = target.spec.selectors.inference
        groups: dict[tuple[str, str], list[str]] = {}
        for context in target.contexts:
            core = client.CoreV1Api(target.kube(context))
            for pod in core.list_namespaced_pod(inference.namespace,
                                                label_selector=f"{inference.label_selector},{TP_LABEL}").items:
                group = (pod.metadata.labels or {}).get(TP_LABEL)
                if pod.spec.node_name and group and (self.params.tp_group in (None, group)):
                    groups.setdefault((context, group), []).append(pod.spec.node_name)
        if not groups:
            raise FaultError(f"no inference pods labelled {TP_LABEL}"
                             f"{'=' + self.params.tp_group if self.params.tp_group else ''} in namespace "
                             f"{inference.namespace!r}: nothing runs tensor-parallel over EFA")
        (context, group), nodes = sorted(groups.items())[0]
        if len(set(nodes)) < 2:
            raise FaultError(f"{group} runs on one node ({nodes[0]}): its all-reduce never leaves the node, "
                             "so there is no EFA traffic to compete with")
        api = target.kube(context)
        core = client.CoreV1Api(api)
        self.context, self.group, self.namespace = context, group, target.spec.harness_namespace
        self.nodes, free, per_node = [], [], []
        for name in sorted(set(nodes)):
            node = core.read_node(name)
            labels = node.metadata.labels or {}
            allocatable = int((node.status.allocatable or {}).get(GPU, 0) or 0)
            if int((node.status.allocatable or {}).get(EFA, 0) or 0) < 1:
                raise FaultError(f"node {name} has no allocatable {EFA}: the EFA device plugin is not running there")
            self.nodes.append(NodeRef(context=context, name=name, zone=labels.get(ZONE), nodegroup=labels.get(NODEGROUP)))
            held = sum(int(((c.resources.requests if c.resources else None) or {}).get(GPU, 0) or 0)
                       for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}").items
                       if p.status.phase not in ("Succeeded", "Failed") for c in p.spec.containers)
            free.append(allocatable - held)
            per_node.append(allocatable)
        self.ranks = gpus_for(self.params.load, min(per_node))
        # request the GPUs the ranks use when every node has them free; else share the group's own
        self.gpu_request = self.ranks if min(free) >= self.ranks else 0
        self.use_mpijob = mpi_operator_installed(api)
        suffix = uuid.UUID(int=self.ctx.rng.getrandbits(128)).hex[:6]
        self.job = f"g7chaos-nccl-{suffix}"
        if self.use_mpijob:
            self.launcher, self.workers = None, []
        else:
            self.launcher = f"{self.job}-launcher"
            self.workers = [f"{self.job}-worker-{i}" for i in range(len(self.nodes))]
        gpus = (f"requesting {GPU}: {self.gpu_request}" if self.gpu_request
                else f"sharing GPUs 0-{self.ranks - 1} with serving (none free)")
        how = (f"MPIJob {self.namespace}/{self.job}" if self.use_mpijob
               else f"launcher {self.namespace}/{self.launcher} and workers {', '.join(self.workers)}")
        return (f"{how}: one worker per node of {group} ({', '.join(n.describe() for n in self.nodes)}), each "
                f"requesting {EFA}: 1 and {gpus}; {self.ranks * len(self.nodes)} ranks of "
                f"all_reduce_perf -g 1 across the nodes")

    def _pods(self) -> list[str]:
        return ([self.launcher, *self.workers] if self.launcher else [])

    def inject(self) -> None:
        args = {"context": self.context, "namespace": self.namespace, "pods": self._pods(),
                "mpijob": self.job if self.use_mpijob else None}
        self.owe_revert(args)
        api = self.ctx.target.kube(self.context)
        core = client.CoreV1Api(api)
        self.counters_before: dict[str, dict[str, int]] = {}
        self.launched_at = time.time()
        if self.use_mpijob:
            body = mpijob(self.job, self.namespace, [n.name for n in self.nodes], self.params.image,
                          self.gpu_request, self.ranks, self.ranks)
            client.CustomObjectsApi(api).create_namespaced_custom_object(MPI_GROUP, MPI_VERSION, self.namespace,
                                                                         MPI_PLURAL, body)
            return
        for worker, node in zip(self.workers, self.nodes):
            core.create_namespaced_pod(self.namespace, worker_pod(worker, self.namespace, node.name, self.params.image,
                                                                  self.gpu_request, self.ranks))
        core.create_namespaced_pod(self.namespace, launcher_pod(self.launcher, self.namespace, self.params.image,
                                                                self.params.kubectl_image,
                                                                nccl_command(self.ranks, self.workers)))

    # -- landing -------------------------------------------------------------------------------------------
    def _job_pods(self, core: Any) -> tuple[str | None, dict[str, str]]:
        """(launcher pod, node -> worker pod) as they run now: named by the fault, or by the MPI operator."""
        if not self.use_mpijob:
            pods = {p.metadata.name: p for p in core.list_namespaced_pod(
                self.namespace, label_selector=",".join(f"{k}={v}" for k, v in LABELS.items())).items}
            workers = {pods[w].spec.node_name: w for w in self.workers
                       if w in pods and pods[w].status.phase == "Running"}
            return self.launcher, workers
        pods = core.list_namespaced_pod(self.namespace, label_selector=f"training.kubeflow.org/job-name={self.job}").items
        launcher = next((p.metadata.name for p in pods
                         if (p.metadata.labels or {}).get("training.kubeflow.org/job-role") == "launcher"), None)
        workers = {p.spec.node_name: p.metadata.name for p in pods if p.status.phase == "Running"
                   and (p.metadata.labels or {}).get("training.kubeflow.org/job-role") == "worker"}
        return launcher, workers

    def _counters(self, api: Any, pod: str) -> dict[str, int] | None:
        out = pod_exec(api, self.namespace, pod, ["/bin/sh", "-c", f"grep -H . {HW_COUNTERS}"], timeout_s=20)
        return parse_hw_counters(out.stdout) if out.exit_code == 0 else None

    def check_landed(self) -> dict[str, Any] | None:
        if getattr(self, "launched_at", None) is None:
            return None
        api = self.ctx.target.kube(self.context)
        core = client.CoreV1Api(api)
        launcher, workers = self._job_pods(core)
        if launcher is None or set(workers) != {n.name for n in self.nodes}:
            return None
        try:
            phase = core.read_namespaced_pod(launcher, self.namespace).status.phase
            if phase not in ("Running", "Succeeded"):
                return None
            log = core.read_namespaced_pod_log(launcher, self.namespace, container="launcher")
        except client.ApiException as exc:
            if exc.status in (400, 404):   # not started yet, or gone
                return None
            raise
        for node, worker in workers.items():
            if node not in self.counters_before:
                self.counters_before[node] = self._counters(api, worker) or {}
        bandwidths = bus_bandwidths(log or "")
        transport = OFI_EFA_RE.search(log or "")
        if not bandwidths or transport is None:
            return None
        moved = {}
        for node, worker in workers.items():
            now = self._counters(api, worker)
            if now is None:
                return None
            before = self.counters_before[node]
            moved[node] = {c: now.get(c, 0) - before.get(c, 0) for c in TRAFFIC_COUNTERS}
            if not all(d > 0 for d in moved[node].values()):
                return None
        return {"source": "all_reduce_perf+hw_counters", "tp_group": self.group, "job": self.job,
                "mpijob": self.use_mpijob, "nodes": sorted(workers), "avg_bus_bandwidth_GBps": bandwidths[-1],
                "transport": transport.group(0),
                "efa_counter_deltas": moved}

    def await_landed(self, deadline: float, poll_s: float = 0.1) -> dict[str, Any] | None:
        # the first run must finish before it prints its bandwidth: allow its length on top of the limit
        return super().await_landed(deadline + RUN_ITERS * 0.1, poll_s)

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        api = target.kube(args["context"])
        namespace = args["namespace"]
        if args.get("mpijob"):
            try:
                client.CustomObjectsApi(api).delete_namespaced_custom_object(
                    MPI_GROUP, MPI_VERSION, namespace, MPI_PLURAL, args["mpijob"],
                    body=client.V1DeleteOptions(propagation_policy="Foreground", grace_period_seconds=0))
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
        core = client.CoreV1Api(api)
        for pod in args.get("pods") or []:
            try:
                core.delete_namespaced_pod(pod, namespace, grace_period_seconds=0)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
