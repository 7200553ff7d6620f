"""replica-stall: serving replicas that hang, the way a wedged Triton process does.

On a real cluster a hung server is reproduced with `kill -STOP 1` by pod exec in the chosen inference pods:
the process keeps its sockets and its GPU memory but answers nothing, neither new requests (not even
response headers) nor the streams it was producing. Clients time out and retry with the same
Idempotency-Key; whether that retry is executed once or twice is what the retry-storm scenario judges.
Revert is `kill -CONT 1`, after which the process carries on where it stopped.

`mode` names the symptom a scenario is after (hang before the first token, or mid-stream); one SIGSTOP
produces both: streams already running stop mid-way, new ones never start.

Landed = every chosen pod's process received the signal (the exec of `kill` exited 0 in each of them).

`mode: io` is the other way a replica stops keeping up: not hung, but waiting on storage. Each request a
Triton replica admits first reads from its node's EBS volume (prompt cache, request log), one read at a
time, so while the volume is slow the replica's GPU idles with clients queueing in front of it; DCGM's
GPU utilisation then reads low exactly when the queue is long, which is what an autoscaler on GPU
utilisation misreads. The mechanism is AWS FIS on the EBS volumes attached to the chosen pods' nodes,
with explicit volume ARNs: `aws:ebs:volume-io-latency` (the default, `io_action: latency`, read and write
latency `io_latency` on every I/O) or `aws:ebs:pause-volume-io` (`io_action: pause`: no I/O completes, the
replicas hang like a SIGSTOP). Latency is the default because it is the I/O-bound saturation the article
describes (slower, not dead); a pause is a hang that replica-stall's SIGSTOP already covers. The
experiment's own duration outlasts the scenario step, so the harness's revert (stop_experiment) is what
ends it and a crashed harness still gets the volumes back. Landed = the experiment's action is running with
exactly the chosen volumes as its targets; the nodes' DCGM_FI_DEV_GPU_UTIL from dcgm-exporter is kept
with the evidence. Revert = stop the experiment and delete its template.
"""
from __future__ import annotations

import math
import time
from typing import Any

from kubernetes import client

from harness.faults.base import Fault, FaultError, NodeRef, register
from harness.faults.node_reboot import (await_experiment_started, create_template, fis_stop_conditions,
                                        start_experiment, stop_fis_owed, stops_on, template_token)
from harness.faults.podexec import pod_exec
from harness.faults.selection import instance_id_of
from harness.prometheus import parse_samples

ZONE = "topology.kubernetes.io/zone"
NODEGROUP = "eks.amazonaws.com/nodegroup"
PAUSE_IO = "aws:ebs:pause-volume-io"
IO_LATENCY = "aws:ebs:volume-io-latency"
FIS_MARGIN_S = 120.0      # deployment seconds the experiment outlasts the scenario step
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"


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


def _signal(target: Any, context: str, namespace: str, pod: str, sig: str) -> None:
    out = pod_exec(target.kube(context), namespace, pod, ["kill", f"-{sig}", "1"])
    if out.exit_code != 0:
        raise FaultError(f"kill -{sig} 1 in {namespace}/{pod} exited {out.exit_code}: "
                         f"{(out.stderr or out.stdout).strip()[:300]}")


def _ready(pod: Any) -> bool:
    if pod.status is None or pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


@register
class ReplicaStall(Fault):
    name = "replica-stall"

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
        self.extra["pods"] = [f"{p['context']}/{p['pod']}" for p in self.pods]
        if self.params.mode == "io":
            return self._plan_io(chosen)
        return f"kill -STOP 1 ({self.params.mode}) in {len(self.pods)} pod(s): {', '.join(self.extra['pods'])}"

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
        volumes = sorted({m["Ebs"]["VolumeId"] for r in reservations for i in r["Instances"]
                          for m in i.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("VolumeId")})
        if not volumes:
            raise FaultError(f"no EBS volume attached to {', '.join(sorted(by_instance.values()))}")
        account = target.spec.aws.account_id or target.caller_account()
        self.extra["volumes"] = volumes
        self.extra["volume_arns"] = [f"arn:aws:ec2:{target.region}:{account}:volume/{v}" for v in volumes]
        step_duration = getattr(getattr(self, "step", None), "duration", None)
        self.extra["duration_s"] = float(step_duration) + FIS_MARGIN_S if step_duration else 3600.0
        self.extra["action"] = PAUSE_IO if self.params.io_action == "pause" else IO_LATENCY
        self.stop_conditions = fis_stop_conditions(self.ctx)
        what = "paused" if self.params.io_action == "pause" else f"+{self.params.io_latency * 1000:g} ms per I/O"
        return (f"FIS {self.extra['action']} ({what}) on {len(volumes)} EBS volume(s) of {len(self.nodes)} node(s) "
                f"serving {len(self.pods)} pod(s): {', '.join(n.describe() for n in self.nodes)}"
                + stops_on(self.stop_conditions))

    def _inject_io(self) -> None:
        duration = _iso_duration(self.extra["duration_s"])
        if self.extra["action"] == PAUSE_IO:
            parameters = {"duration": duration}
        else:
            latency_ms = str(max(10, round(self.params.io_latency * 1000)))
            parameters = {"readIOPercentage": "100", "readIOLatencyMilliseconds": latency_ms,
                          "writeIOPercentage": "100", "writeIOLatencyMilliseconds": latency_ms, "duration": duration}
        token = template_token()
        self.owe_revert({"template_token": token})
        template_id = create_template(
            self.ctx.target, token, f"g7chaos {self.name} io: {', '.join(n.name for n in self.nodes)}",
            {"volumes": {"resourceType": "aws:ec2:ebs-volume", "resourceArns": self.extra["volume_arns"],
                         "selectionMode": f"COUNT({len(self.extra['volume_arns'])})"}},
            {"stall": {"actionId": self.extra["action"], "targets": {"Volumes": "volumes"}, "parameters": parameters}},
            self.stop_conditions)
        self.extra["template_id"] = template_id
        experiment_id = start_experiment(self.ctx.target, template_id, token=token)
        self.extra["experiment_id"] = experiment_id
        await_experiment_started(self.ctx.target, experiment_id, time.time() + 10)

    def _landed_io(self) -> dict[str, Any] | None:
        experiment_id = self.extra.get("experiment_id")
        if not experiment_id:
            return None
        experiment = self.ctx.target.aws("fis").get_experiment(id=experiment_id)["experiment"]
        action = (experiment.get("actions") or {}).get("stall", {})
        if experiment["state"].get("status") != "running" or action.get("state", {}).get("status") != "running":
            return None
        aimed = set((experiment.get("targets") or {}).get("volumes", {}).get("resourceArns") or [])
        if aimed != set(self.extra["volume_arns"]):
            return None
        utilisation = {}
        for node in self.nodes:
            try:
                utilisation[node.name] = gpu_utilisation(self.ctx.target, node.context, node.name)
            except client.ApiException:
                continue
        return {"source": "fis-experiment", "experiment": experiment_id, "action": self.extra["action"],
                "volumes": self.extra["volumes"], "nodes": [n.name for n in self.nodes],
                "io_latency_ms": None if self.extra["action"] == PAUSE_IO else self.params.io_latency * 1000,
                "gpu_utilisation": utilisation}

    def inject(self) -> None:
        if self.params.mode == "io":
            self._inject_io()
            return
        self.owe_revert({"pods": self.pods})
        self.signalled: list[str] = []
        for p in self.pods:
            _signal(self.ctx.target, p["context"], p["namespace"], p["pod"], "STOP")
            self.signalled.append(p["pod"])
        self.signalled_at = time.time()

    def check_landed(self) -> dict[str, Any] | None:
        if self.params.mode == "io":
            return self._landed_io()
        signalled = getattr(self, "signalled", [])
        if len(signalled) != len(self.pods):
            return None
        return {"source": "pod-exec", "signal": "SIGSTOP", "pods": signalled, "mode": self.params.mode}

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        if "template_token" in args or "template_id" in args:   # mode io: no experiment may keep volumes slow
            stop_fis_owed(target, args)
            return
        errors = []
        for p in args["pods"]:
            core = client.CoreV1Api(target.kube(p["context"]))
            try:
                core.read_namespaced_pod(p["pod"], p["namespace"])
            except client.ApiException as exc:
                if exc.status == 404:   # the pod is gone, and the stopped process with it
                    continue
                raise
            try:
                _signal(target, p["context"], p["namespace"], p["pod"], "CONT")
            except FaultError as exc:
                errors.append(str(exc))
        if errors:
            raise FaultError("; ".join(errors))
