"""replica-stall: serving replicas that hang, the way a wedged Triton process does.

A hung server keeps its sockets and its GPU memory but answers nothing, neither new requests (not even response
headers) nor the streams it was producing. Clients time out and retry with the same Idempotency-Key; whether that
retry is executed once or twice is what the retry-storm scenario judges. `mode` names the symptom a scenario is
after (hang before the first token, or mid-stream); one freeze produces both.

Why not `kill -STOP 1` by exec in the pod: it reaches the container's PID-namespace init, and the kernel drops
SIGSTOP and SIGKILL sent to a namespace's init from inside that namespace (pid_namespaces(7)), while `kill` exits
0. The hang is therefore made from the node, with the cgroup v2 freezer (what `ctr task pause` does): a short-lived
privileged helper pod (`g7chaos-freeze-*`) is created through the Kubernetes API in the target's
`harness_namespace`, pinned to the replica's node by `nodeName`, tolerating every taint, with the host's
/sys/fs/cgroup mounted at /host/sys/fs/cgroup (hostPath). The container's cgroup is computed the way kubelet and
containerd name it on an EKS AL2023 node (systemd driver, cgroup v2): from the pod's qosClass, uid and the
container's containerID, `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid, - as _>.slice/
cri-containerd-<id>.scope` (Guaranteed pods directly under kubepods.slice); the cgroupfs layout is the fallback.
The helper reads `cgroup.events` to find which exists, writes 1 to its `cgroup.freeze`, and on revert 0. The
freezer stops every process of the container at once (a SIGSTOP by host PID would stop one process and leave
its children and threads' peers running) and its state reads back from the kernel in one file; the helper needs
no hostPID for it. Revert thaws, checks `frozen 0`, and deletes the helper pods (found by the run's label, so
helpers created by an interrupted revert go too). The journal holds the node, the candidate cgroup paths and the
helper image, so `g7chaos recover` thaws from it alone, creating a new helper when the old one is gone. A
container that exited meanwhile (a liveness probe can kill a frozen container) took its cgroup and its freeze
with it: nothing to thaw.

Needs: pods create/delete and pods/exec in `harness_namespace` (whose Pod Security admission must allow
privileged pods with hostPath), pods/proxy get in the inference namespace.

Landed = for every chosen pod, both (1) the kernel's own state: the container cgroup's `cgroup.events` reads
`frozen 1`, and (2) what an operator sees: the pod's readiness endpoint (`health_port`/`health_path`, Triton's
:8000/v2/health/ready), which answered before the freeze, gives no answer through the API server's pod proxy
within a short timeout. A write that exited 0 proves nothing on its own.

`mode: io` is the other way a replica stops keeping up: not hung, but waiting on storage. Each request a
Triton replica admits first reads from its node's EBS volume (prompt cache, request log), one read at a
time, so while the volume is slow the replica's GPU idles with clients queueing in front of it; DCGM's
GPU utilisation then reads low exactly when the queue is long, which is what an autoscaler on GPU
utilisation misreads. The mechanism is AWS FIS on the EBS volumes attached to the chosen pods' nodes,
with explicit volume ARNs: `aws:ebs:volume-io-latency` (the default, `io_action: latency`, read and write
latency `io_latency` on every I/O) or `aws:ebs:pause-volume-io` (`io_action: pause`: no I/O completes, the
replicas hang like a frozen container). Latency is the default because it is the I/O-bound saturation the article
describes (slower, not dead); a pause is a hang that the freeze already covers. The
experiment's own duration outlasts the scenario step, so the harness's revert (stop_experiment) is what
ends it and a crashed harness still gets the volumes back. Landed = the experiment's action is running with
exactly the chosen volumes as its targets; the nodes' DCGM_FI_DEV_GPU_UTIL from dcgm-exporter is kept
with the evidence. Revert = stop the experiment and delete its template.
"""
from __future__ import annotations

import copy
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal

import urllib3
from kubernetes import client, watch
from pydantic import Field, model_validator
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.faults.base import Fault, FaultError, NodeRef, register, revert_each
from harness.faults.fis import (await_experiment_started, create_template, fis_stop_conditions, grouped_action,
                                start_experiment, stop_fis_owed, stops_on, targeted_arns, template_token)
from harness.faults.podexec import pod_exec
from harness.faults.selection import instance_id_of
from harness.prometheus import parse_samples
from harness.strict.params import FaultParams
from harness.strict.units import Duration

ZONE = "topology.kubernetes.io/zone"
NODEGROUP = "eks.amazonaws.com/nodegroup"
PAUSE_IO = "aws:ebs:pause-volume-io"
IO_LATENCY = "aws:ebs:volume-io-latency"
FIS_MARGIN_S = 120.0      # deployment seconds the experiment outlasts the scenario step
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
HOST_CGROUP = "/sys/fs/cgroup"
CGROUP_MOUNT = "/host/sys/fs/cgroup"       # where the helper sees the host's cgroup2 hierarchy
HELPER_NAME = "g7chaos-freeze"
HELPER_LABELS = {"app.kubernetes.io/name": HELPER_NAME, "app.kubernetes.io/managed-by": "g7chaos"}
RUN_LABEL = "g7chaos.io/freeze"             # one value per injection: every helper it (or its revert) created
HELPER_START_S = 120.0                      # wall seconds for the helper to run (an image pull on a fresh node)
HELPER_LIFETIME_S = 6 * 3600                # activeDeadlineSeconds: an orphaned helper goes by itself
PROBE_TIMEOUT_S = 5.0                       # deployment seconds a healthy server answers its readiness well within
PROBE_MIN_WALL_S = 0.25


def _iso_duration(seconds: float) -> str:
    return f"PT{max(1, math.ceil(seconds / 60))}M"


def gpu_utilisation(target: Any, context: str, node: str) -> dict[int, float]:
    """gpu -> DCGM_FI_DEV_GPU_UTIL from the node's dcgm-exporter, through the API server's pod proxy."""
    exporter = target.spec.selectors.dcgm_exporter
    if exporter is None:
        return {}
    core = client.CoreV1Api(target.kube(context))
    pods = core.list_namespaced_pod(exporter.namespace, label_selector=exporter.label_selector,
                                    field_selector=f"spec.nodeName={node}").items
    for pod in pods:
        text = core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod.metadata.name}:{target.spec.selectors.dcgm_exporter_port}", exporter.namespace, "metrics")
        return {int(s.labels["gpu"]): float(s.value) for s in parse_samples(text)
                if s.name == GPU_UTIL and str(s.labels.get("gpu", "")).isdigit()}
    return {}


def cgroup_candidates(qos: str | None, uid: str, container_id: str) -> list[str]:
    """Where the container's cgroup is, relative to the cgroup2 root: the systemd driver's path first (EKS AL2023's
    kubelet default), then cgroupfs's. kubelet names the pod's cgroup from its QoS class and uid (`-` escaped to `_`
    under systemd); containerd's CRI names the container's scope `cri-containerd-<id>.scope` (systemd) or `<id>`."""
    runtime, _, cid = container_id.partition("://")
    if runtime != "containerd" or not cid:
        raise FaultError(f"container {container_id or '(not started)'} does not run under containerd: "
                         "its cgroup cannot be named")
    q = (qos or "Burstable").lower()
    escaped = uid.replace("-", "_")
    if q == "guaranteed":
        return [f"kubepods.slice/kubepods-pod{escaped}.slice/cri-containerd-{cid}.scope", f"kubepods/pod{uid}/{cid}"]
    return [f"kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{escaped}.slice/cri-containerd-{cid}.scope",
            f"kubepods/{q}/pod{uid}/{cid}"]


def helper_manifest(name: str, namespace: str, node: str, image: str, run: str) -> dict[str, Any]:
    """The node helper: privileged (cgroup files of other containers are written only from there), the host's
    cgroup2 hierarchy mounted, pinned to the node by nodeName and tolerating every taint (GPU nodes are tainted),
    no service account token, and a deadline so an orphan does not outlive the day."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {**HELPER_LABELS, RUN_LABEL: run}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "activeDeadlineSeconds": HELPER_LIFETIME_S,
            "automountServiceAccountToken": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "freeze", "image": image, "command": ["sleep", str(HELPER_LIFETIME_S)],
                "securityContext": {"privileged": True},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
                "volumeMounts": [{"name": "cgroup", "mountPath": CGROUP_MOUNT}],
            }],
            "volumes": [{"name": "cgroup", "hostPath": {"path": HOST_CGROUP, "type": "Directory"}}],
        },
    }


THAW_READBACK_S = 10.0      # the kernel thaws at once; a bound on the readback, not a wait

def _await_running(core: Any, namespace: str, name: str, deadline: float) -> None:
    """Follow the helper pod on a watch until it runs, ends, or the deadline passes."""
    pod = core.read_namespaced_pod(name, namespace)
    phase = pod.status.phase if pod.status else None
    version = pod.metadata.resource_version
    while phase != "Running":
        if phase in ("Succeeded", "Failed") or time.time() >= deadline:
            raise FaultError(f"freeze helper {namespace}/{name} on {pod.spec.node_name} is {phase}, not Running")
        stream = watch.Watch().stream(core.list_namespaced_pod, namespace, field_selector=f"metadata.name={name}",
                                      resource_version=version,
                                      timeout_seconds=max(1, int(deadline - time.time()) + 1))
        for event in stream:
            pod = event["object"]
            version = pod.metadata.resource_version
            phase = pod.status.phase if pod.status else None
            if phase in ("Running", "Succeeded", "Failed") or time.time() >= deadline:
                break


def start_helper(target: Any, context: str, namespace: str, node: str, image: str, run: str) -> str:
    """Create a helper pod on the node and wait until it runs; its name."""
    core = client.CoreV1Api(target.kube(context))
    name = f"{HELPER_NAME}-{uuid.uuid4().hex[:10]}"
    core.create_namespaced_pod(namespace, helper_manifest(name, namespace, node, image, run))
    _await_running(core, namespace, name, time.time() + HELPER_START_S)
    return name


def _helper_exec(target: Any, context: str, namespace: str, helper: str, command: list[str]) -> Any:
    return pod_exec(target.kube(context), namespace, helper, command)


def read_events(target: Any, context: str, namespace: str, helper: str, path: str) -> dict[str, str] | None:
    """The cgroup's `cgroup.events` as key -> value, or None when there is no such cgroup."""
    out = _helper_exec(target, context, namespace, helper, ["cat", f"{CGROUP_MOUNT}/{path}/cgroup.events"])
    if out.exit_code != 0:
        return None
    return dict(line.split(None, 1) for line in out.stdout.splitlines() if len(line.split(None, 1)) == 2)


def write_freeze(target: Any, context: str, namespace: str, helper: str, path: str, value: int) -> None:
    out = _helper_exec(target, context, namespace, helper,
                       ["sh", "-c", f"echo {value} > {CGROUP_MOUNT}/{path}/cgroup.freeze"])
    if out.exit_code != 0:
        raise FaultError(f"writing {value} to {path}/cgroup.freeze from {namespace}/{helper} failed "
                         f"(exit {out.exit_code}): {(out.stderr or out.stdout).strip()[:300]}")


def find_cgroup(target: Any, context: str, namespace: str, helper: str, candidates: list[str]) -> str | None:
    """The first candidate path whose cgroup.events exists on the node (cgroup v2 only has that file)."""
    return next((c for c in candidates if read_events(target, context, namespace, helper, c) is not None), None)


def probe_silent(target: Any, context: str, namespace: str, pod: str, port: int, path: str,
                 timeout_s: float) -> tuple[bool, str]:
    """Whether the pod's readiness endpoint gives no answer within the timeout through the API server's pod proxy
    (an operator's `kubectl get --raw .../pods/<pod>:<port>/proxy/<path>`); and what was seen. Any HTTP answer,
    even an error status, means a process answered: not silent. No retries: a retry would hide the timeout."""
    api = target.kube(context)
    config = copy.copy(api.configuration)
    config.retries = False
    probe = client.ApiClient(configuration=config)
    try:
        core = client.CoreV1Api(probe)
        try:
            core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:{port}", namespace, path,
                                                            _request_timeout=timeout_s)
            return False, "200"
        except client.ApiException as exc:
            return False, str(exc.status)
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None)
            if isinstance(exc, urllib3.exceptions.TimeoutError) or isinstance(reason, urllib3.exceptions.TimeoutError):
                return True, f"no answer within {timeout_s:.2f} s"
            return False, f"{type(exc).__name__}"
    finally:
        probe.close()


def _ready(pod: Any) -> bool:
    if pod.status is None or pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


class ReplicaStallParams(FaultParams):
    """Hang serving replicas (their serving container's cgroup frozen from the node by a privileged helper pod;
    thawed on revert), or, mode `io`, stall them on I/O (FIS EBS latency or pause on their nodes' volumes; the
    experiment stopped on revert)."""

    model: str | None = Field(None, max_length=128, description="pods labelled model=<this>; default: any")
    zone: str | None = Field(None, max_length=64)
    count: Annotated[int, Field(ge=1, le=1000)] | Literal["all"] = Field(1, description="how many pods, or all that match")
    pick: Literal["random", "first"] = "random"
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    mode: Literal["before-first-token", "mid-stream", "io"] = "before-first-token"
    io_action: Literal["latency", "pause"] = Field(
        "latency", description="mode io: aws:ebs:volume-io-latency (slow I/O) or aws:ebs:pause-volume-io (none)")
    io_latency: Duration = Field(0.3, gt=0, le=60, description="mode io, latency: added to every read and write")
    container: str | None = Field(None, max_length=63, description="hang modes: the serving container to freeze; "
                                  "default: the pod's first container")
    helper_image: str = Field("public.ecr.aws/docker/library/busybox:1.36", max_length=512,
                              description="hang modes: image of the node helper pod (needs sh, cat, sleep)")
    health_port: int = Field(8000, ge=1, le=65535, description="hang modes: the serving port whose readiness "
                             "endpoint must go silent (Triton HTTP)")
    health_path: str = Field("v2/health/ready", max_length=256, pattern=r"^[A-Za-z0-9._~/-]+$",
                             description="hang modes: readiness path probed through the API server's pod proxy")

    @model_validator(mode="after")
    def _mode_fields(self) -> "ReplicaStallParams":
        hang_only = [f for f in ("container",) if getattr(self, f) is not None]
        if self.mode == "io" and hang_only:
            raise ValueError(f"{', '.join(hang_only)} applies to the hang modes (a frozen container), not mode io")
        return self


@register
class ReplicaStall(Fault):
    name = "replica-stall"
    params_model = ReplicaStallParams
    params: ReplicaStallParams
    # mode io: resolved by plan()
    volumes: list[str]                     # EBS volume ids attached to the chosen pods' nodes
    volume_arns: list[str]
    volume_groups: list[list[str]]         # the ARNs by Availability Zone: one FIS target per zone (and per five)
    duration_s: float                      # FIS's own duration, longer than the step: the dead man's switch
    action: str                            # the FIS EBS action id
    stop_conditions: list[dict[str, str]]
    # mode io: started by inject()
    stall_actions: list[str] | None = None
    template_id: str | None = None
    experiment_id: str | None = None

    def _candidates(self) -> list[tuple[str, Any, Any]]:
        """(context, pod, node) of every Ready inference pod matching model and zone, in a stable order."""
        target = self.ctx.target
        inference = target.spec.selectors.inference
        selector = inference.label_selector + (f",model={self.params.model}" if self.params.model else "")
        found = []
        for context in target.contexts:
            core = client.CoreV1Api(target.kube(context))
            nodes = {n.metadata.name: n for n in core.list_node().items}
            for pod in core.list_namespaced_pod(inference.namespace, label_selector=selector).items:
                node = nodes.get(pod.spec.node_name or "")
                if node is None or not _ready(pod):
                    continue
                if self.params.zone and (node.metadata.labels or {}).get(ZONE) != self.params.zone:
                    continue
                found.append((context, pod, node))
        return sorted(found, key=lambda t: (t[0], t[1].metadata.name))

    def plan(self) -> str:
        candidates = self._candidates()
        count = len(candidates) if self.params.count == "all" else self.params.count
        if not candidates or len(candidates) < count:
            raise FaultError(f"replica-stall needs {self.params.count} Ready inference pod(s) (model "
                             f"{self.params.model or 'any'}, zone {self.params.zone or 'any'}); found {len(candidates)}")
        if self.params.pick == "first":
            chosen = candidates[:count]
        else:
            import random
            chooser = random.Random(self.params.seed) if self.params.seed is not None else self.ctx.rng
            chosen = sorted(chooser.sample(candidates, count), key=lambda t: (t[0], t[1].metadata.name))
        namespace = self.ctx.target.spec.selectors.inference.namespace
        self.pods = [{"context": c, "namespace": namespace, "pod": p.metadata.name, "node": n.metadata.name}
                     for c, p, n in chosen]
        seen: dict[tuple[str, str], NodeRef] = {}
        for c, p, n in chosen:
            labels = n.metadata.labels or {}
            seen.setdefault((c, n.metadata.name), NodeRef(context=c, name=n.metadata.name, zone=labels.get(ZONE),
                                                          nodegroup=labels.get(NODEGROUP)))
        self.nodes = list(seen.values())
        if self.params.mode == "io":
            return self._plan_io(chosen)
        for (_c, pod, _n), entry in zip(chosen, self.pods):
            entry["container"], container_id = self._serving_container(pod)
            entry["cgroups"] = cgroup_candidates(pod.status.qos_class, pod.metadata.uid, container_id)
        return (f"cgroup freeze ({self.params.mode}) of the serving container in {len(self.pods)} pod(s), from a "
                f"privileged helper pod per node in {self.ctx.target.spec.harness_namespace}: "
                f"{', '.join(p['context'] + '/' + p['pod'] for p in self.pods)}")

    def _serving_container(self, pod: Any) -> tuple[str, str]:
        """(name, containerID) of the container to freeze: `container`, or the pod's first."""
        name = self.params.container or pod.spec.containers[0].name
        status = next((cs for cs in (pod.status.container_statuses or []) if cs.name == name), None)
        if status is None or not status.container_id:
            raise FaultError(f"pod {pod.metadata.namespace}/{pod.metadata.name} has no started container {name!r}")
        return name, status.container_id

    # ------------------------------------------------------------------------------------------ mode io
    def _plan_io(self, chosen: list[tuple[str, Any, Any]]) -> str:
        """The EBS volumes attached to the chosen pods' nodes, as ARNs for the experiment's explicit targets."""
        target = self.ctx.target
        by_instance = {}
        for context, _pod, node in chosen:
            instance_id = instance_id_of(node)
            if not instance_id:
                raise FaultError(f"node {node.metadata.name} carries no aws:/// providerID: cannot find its volumes")
            by_instance[instance_id] = node.metadata.name
        for ref in self.nodes:
            ref.instance_id = next((i for i, n in by_instance.items() if n == ref.name), None)
        reservations = target.aws("ec2").describe_instances(InstanceIds=sorted(by_instance))["Reservations"]
        zone_of = {m["Ebs"]["VolumeId"]: (i.get("Placement") or {}).get("AvailabilityZone", "")
                   for r in reservations for i in r["Instances"]
                   for m in i.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("VolumeId")}
        volumes = sorted(zone_of)
        if not volumes:
            raise FaultError(f"no EBS volume attached to {', '.join(sorted(by_instance.values()))}")
        account = target.spec.aws.account_id or target.caller_account()
        arn = lambda v: f"arn:aws:ec2:{target.region}:{account}:volume/{v}"  # noqa: E731
        self.volumes = volumes
        self.volume_arns = [arn(v) for v in volumes]
        # FIS EBS actions want the volumes of one target in one Availability Zone, and a target holds at most
        # 5 ARNs: one group per zone, cut into fives by grouped_action.
        self.volume_groups = [[arn(v) for v in volumes if zone_of[v] == zone] for zone in sorted(set(zone_of.values()))]
        step_duration = self.step.duration if self.step is not None else None
        self.duration_s = float(step_duration) + FIS_MARGIN_S if step_duration else 3600.0
        if self.duration_s > 12 * 3600:      # FIS EBS actions: duration PT1S..PT12H
            raise FaultError(f"FIS slows EBS volumes for at most PT12H; the step lasts {step_duration:g} s")
        self.action = PAUSE_IO if self.params.io_action == "pause" else IO_LATENCY
        self.stop_conditions = fis_stop_conditions(self.ctx)
        what = "paused" if self.params.io_action == "pause" else f"+{self.params.io_latency * 1000:g} ms per I/O"
        return (f"FIS {self.action} ({what}) on {len(volumes)} EBS volume(s) of {len(self.nodes)} node(s) "
                f"serving {len(self.pods)} pod(s): {', '.join(n.describe() for n in self.nodes)}"
                + stops_on(self.stop_conditions))

    def _inject_io(self) -> None:
        duration = _iso_duration(self.duration_s)
        if self.action == PAUSE_IO:
            parameters = {"duration": duration}
        else:
            latency_ms = str(max(10, round(self.params.io_latency * 1000)))
            parameters = {"readIOPercentage": "100", "readIOLatencyMilliseconds": latency_ms,
                          "writeIOPercentage": "100", "writeIOLatencyMilliseconds": latency_ms, "duration": duration}
        token = template_token()
        self.owe_revert({"template_token": token})
        targets: dict[str, Any] = {}
        actions: dict[str, Any] = {}
        self.stall_actions = grouped_action(
            targets, actions, target="volumes", action="stall", resource_type="aws:ec2:ebs-volume",
            arns=self.volume_groups or self.volume_arns, action_id=self.action,
            target_key="Volumes", parameters=parameters)
        template_id = create_template(
            self.ctx.target, token, f"g7chaos {self.name} io: {', '.join(n.name for n in self.nodes)}",
            targets, actions, self.stop_conditions)
        self.template_id = template_id
        experiment_id = start_experiment(self.ctx.target, template_id, token=token)
        self.experiment_id = experiment_id
        await_experiment_started(self.ctx.target, experiment_id, time.time() + 10)

    def _landed_io(self) -> dict[str, Any] | None:
        experiment_id = self.experiment_id
        if not experiment_id:
            return None
        experiment = self.ctx.target.aws("fis").get_experiment(id=experiment_id)["experiment"]
        names = self.stall_actions or ["stall"]
        actions = experiment.get("actions") or {}
        if experiment["state"].get("status") != "running" or \
                any((actions.get(n) or {}).get("state", {}).get("status") != "running" for n in names):
            return None
        if targeted_arns(experiment, names) != set(self.volume_arns):
            return None
        utilisation = {}
        for node in self.nodes:
            try:
                utilisation[node.name] = gpu_utilisation(self.ctx.target, node.context, node.name)
            except client.ApiException:
                continue
        return {"source": "fis-experiment", "experiment": experiment_id, "action": self.action,
                "volumes": self.volumes, "nodes": [n.name for n in self.nodes],
                "io_latency_ms": None if self.action == PAUSE_IO else self.params.io_latency * 1000,
                "gpu_utilisation": utilisation}

    # ------------------------------------------------------------------------------------------ hang modes
    def _probe_wall_s(self) -> float:
        return max(self.ctx.wall(PROBE_TIMEOUT_S), PROBE_MIN_WALL_S)

    def _probe(self, p: dict[str, Any], timeout_s: float) -> tuple[bool, str]:
        return probe_silent(self.ctx.target, p["context"], p["namespace"], p["pod"], self.params.health_port,
                            self.params.health_path, timeout_s)

    def _inject_freeze(self) -> None:
        target = self.ctx.target
        namespace = target.spec.harness_namespace
        run = uuid.uuid4().hex[:12]
        by_node: dict[tuple[str, str], dict[str, Any]] = {}
        for p in self.pods:
            entry = by_node.setdefault((p["context"], p["node"]), {
                "context": p["context"], "node": p["node"], "namespace": namespace, "image": self.params.helper_image,
                "run": run, "targets": []})
            entry["targets"].append({"pod": f"{p['namespace']}/{p['pod']}", "cgroups": p["cgroups"]})
        # the server answers now: its silence after the freeze is then the freeze's doing
        self.readiness_before = {p["pod"]: self._probe(p, max(self.ctx.wall(30.0), 2.0)) for p in self.pods}
        mute = [pod for pod, (silent, _seen) in self.readiness_before.items() if silent]
        if mute:
            raise FaultError(f"{', '.join(mute)} did not answer {self.params.health_path} on port "
                             f"{self.params.health_port} before the freeze: its silence would prove nothing")
        self.owe_revert({"freeze": list(by_node.values())})
        self.frozen: dict[str, dict[str, Any]] = {}
        self.silent: dict[str, str] = {}
        helpers = {}
        for key, entry in by_node.items():      # create every helper first, then wait: the pulls overlap
            core = client.CoreV1Api(target.kube(entry["context"]))
            name = f"{HELPER_NAME}-{uuid.uuid4().hex[:10]}"
            core.create_namespaced_pod(namespace, helper_manifest(name, namespace, entry["node"], entry["image"], run))
            helpers[key] = name
        deadline = time.time() + HELPER_START_S
        for key, entry in by_node.items():
            _await_running(client.CoreV1Api(target.kube(entry["context"])), namespace, helpers[key], deadline)
        for p in self.pods:
            helper = helpers[(p["context"], p["node"])]
            path = find_cgroup(target, p["context"], namespace, helper, p["cgroups"])
            if path is None:
                raise FaultError(f"no cgroup of {p['namespace']}/{p['pod']} container {p['container']} on "
                                 f"{p['node']} (looked for {', '.join(p['cgroups'])}; the freezer needs cgroup v2)")
            write_freeze(target, p["context"], namespace, helper, path, 1)
            self.frozen[p["pod"]] = {"context": p["context"], "helper": helper, "cgroup": path, "node": p["node"]}

    def _landed_freeze(self) -> dict[str, Any] | None:
        frozen = getattr(self, "frozen", {})
        if len(frozen) != len(self.pods):
            return None
        namespace = self.ctx.target.spec.harness_namespace
        for pod, f in frozen.items():       # the kernel's word: every container's cgroup reads frozen 1
            events = read_events(self.ctx.target, f["context"], namespace, f["helper"], f["cgroup"])
            if not events or events.get("frozen") != "1":
                return None
        pending = [p for p in self.pods if p["pod"] not in self.silent]
        if pending:                          # the operator's word: the readiness endpoint goes quiet
            timeout = self._probe_wall_s()
            with ThreadPoolExecutor(max_workers=min(8, len(pending))) as pool:
                results = list(pool.map(lambda p: self._probe(p, timeout), pending))
            for p, (silent, seen) in zip(pending, results):
                if silent:
                    self.silent[p["pod"]] = seen
            if len(self.silent) != len(self.pods):
                return None
        return {"source": "cgroup-freezer", "mode": self.params.mode, "pods": {
            f"{p['context']}/{p['pod']}": {
                "node": p["node"], "container": p["container"], "cgroup": frozen[p["pod"]]["cgroup"],
                "cgroup_events": "frozen 1", "helper": f"{namespace}/{frozen[p['pod']]['helper']}",
                "readiness": f"{self.params.health_port}/{self.params.health_path}: answered "
                             f"{self.readiness_before[p['pod']][1]} before the freeze, {self.silent[p['pod']]} after"}
            for p in self.pods}}

    def inject(self) -> None:
        if self.params.mode == "io":
            self._inject_io()
            return
        self._inject_freeze()

    def check_landed(self) -> dict[str, Any] | None:
        if self.params.mode == "io":
            return self._landed_io()
        return self._landed_freeze()

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        if "template_token" in args or "template_id" in args:   # mode io: no experiment may keep volumes slow
            stop_fis_owed(target, args)
            return
        if "freeze" not in args:
            return      # written by `kill -STOP 1` from inside the pod: the kernel dropped it, nothing to undo
        revert_each(args["freeze"], lambda entry: thaw_node(target, entry), "thawing")


def _running_helper(core: Any, entry: dict[str, Any]) -> str | None:
    pods = core.list_namespaced_pod(entry["namespace"], label_selector=f"{RUN_LABEL}={entry['run']}",
                                    field_selector=f"spec.nodeName={entry['node']}").items
    return next((p.metadata.name for p in pods if p.status and p.status.phase == "Running"
                 and not p.metadata.deletion_timestamp), None)


def thaw_node(target: Any, entry: dict[str, Any]) -> None:
    """Thaw every owed container cgroup on one node from the journal's entry, then delete the node's helpers.

    The helper that froze them may be gone (a crashed run, its deadline): a new one is made. A node that is gone
    took its containers with it; a cgroup that is gone (its container exited) took its freeze with it."""
    context, namespace = entry["context"], entry["namespace"]
    core = client.CoreV1Api(target.kube(context))
    try:
        core.read_node(entry["node"])
    except client.ApiException as exc:
        if exc.status == 404:
            _delete_helpers(core, entry)
            return
        raise
    helper = _running_helper(core, entry) or start_helper(target, context, namespace, entry["node"],
                                                          entry["image"], entry["run"])
    for owed in entry["targets"]:
        for path in owed["cgroups"]:
            if read_events(target, context, namespace, helper, path) is None:
                continue
            # the setting, not `frozen`: a freeze still in progress reads frozen 0 with cgroup.freeze already 1
            setting = _helper_exec(target, context, namespace, helper, ["cat", f"{CGROUP_MOUNT}/{path}/cgroup.freeze"])
            if setting.exit_code == 0 and setting.stdout.strip() == "0":
                break
            write_freeze(target, context, namespace, helper, path, 0)
            # the kernel thaws at once: re-read for a bounded while, never longer than THAW_READBACK_S
            still_frozen = Retrying(stop=stop_after_delay(THAW_READBACK_S), wait=wait_fixed(0.05),
                                    retry=retry_if_result(bool))
            try:
                still_frozen(lambda: (read_events(target, context, namespace, helper, path) or {}).get("frozen") == "1")
            except RetryError:
                raise FaultError(f"{owed['pod']}: {path} still reads frozen 1 after writing 0") from None
            break
    _delete_helpers(core, entry)


def _delete_helpers(core: Any, entry: dict[str, Any]) -> None:
    for pod in core.list_namespaced_pod(entry["namespace"], label_selector=f"{RUN_LABEL}={entry['run']}",
                                        field_selector=f"spec.nodeName={entry['node']}").items:
        try:
            core.delete_namespaced_pod(pod.metadata.name, entry["namespace"], grace_period_seconds=0)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
