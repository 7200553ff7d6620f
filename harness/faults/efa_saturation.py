"""efa-saturation: real competing collective traffic on the fabric of a tensor-parallel group.

tc-based network faults do not touch EFA's RDMA path, so the only honest way to congest it is to run
traffic that uses it: one nccl-tests pod per node of the tensor-parallel group, created through the
Kubernetes API, requesting `vpc.amazonaws.com/efa` and pinned to the node by its hostname label. Each pod
runs `all_reduce_perf` (by pod exec, repeatedly, in short runs so the fabric frees soon after the revert).
The serving all-reduce then competes for the fabric, and the EFA error counters (retransmits, drops) grow,
which the EFA alarm must catch. Revert stops the runs and deletes the pods.

Landed = every pod is Running on its node and its first `all_reduce_perf` run reported a bus bandwidth.
"""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from kubernetes import client

from harness.faults.base import Fault, FaultError, NodeRef, register
from harness.faults.podexec import pod_exec

ZONE = "topology.kubernetes.io/zone"
NODEGROUP = "eks.amazonaws.com/nodegroup"
HOSTNAME = "kubernetes.io/hostname"
EFA = "vpc.amazonaws.com/efa"
TP_LABEL = "tp-group"
NAMESPACE = "default"
RUN_ITERS = 20                 # one all_reduce_perf run: short, so a revert frees the fabric quickly
POD_START_S = 30.0
LABELS = {"app.kubernetes.io/name": "nccl-tests", "app.kubernetes.io/managed-by": "g7chaos"}


def _pod_manifest(name: str, node: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {HOSTNAME: node},
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "nccl-tests", "image": image,
                "command": ["sleep", "infinity"],
                "resources": {"requests": {EFA: "1"}, "limits": {EFA: "1"}},
            }],
        },
    }


def _command(load: float) -> list[str]:
    # every GPU in the run drives its own NCCL channels onto the node's EFA interfaces: the share of the
    # node's eight GPUs taking part is the share of the fabric the run takes
    gpus = min(8, max(1, round(load * 8)))
    return ["all_reduce_perf", "-b", "8", "-e", "128M", "-f", "2", "-g", str(gpus), "-n", str(RUN_ITERS)]


@register
class EfaSaturation(Fault):
    name = "efa-saturation"

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
        core = client.CoreV1Api(target.kube(context))
        self.context, self.group = context, group
        self.nodes = []
        for name in sorted(set(nodes)):
            labels = core.read_node(name).metadata.labels or {}
            self.nodes.append(NodeRef(context=context, name=name, zone=labels.get(ZONE), nodegroup=labels.get(NODEGROUP)))
        suffix = uuid.UUID(int=self.ctx.rng.getrandbits(128)).hex[:6]
        self.pods = [f"g7chaos-nccl-{i}-{suffix}" for i in range(len(self.nodes))]
        self.extra.update(tp_group=group, pods=self.pods)
        return (f"nccl-tests pod(s) {', '.join(self.pods)} requesting {EFA} on {group}'s nodes "
                f"{', '.join(n.describe() for n in self.nodes)}, running {' '.join(_command(self.params.load))}")

    def inject(self) -> None:
        args = {"context": self.context, "namespace": NAMESPACE, "pods": self.pods}
        self.owe_revert(args)
        core = client.CoreV1Api(self.ctx.target.kube(self.context))
        for pod, node in zip(self.pods, self.nodes):
            core.create_namespaced_pod(NAMESPACE, _pod_manifest(pod, node.name, self.params.image))
        self._stop = threading.Event()
        self.runs: dict[str, int] = {p: 0 for p in self.pods}
        self.run_errors: list[str] = []
        self.bandwidth: dict[str, str] = {}
        self._threads = [threading.Thread(target=self._drive, args=(pod,), daemon=True, name=f"nccl:{pod}")
                         for pod in self.pods]
        for t in self._threads:
            t.start()

    def _private_client(self) -> Any:
        """An ApiClient of this thread's own: the kubernetes client's `stream()` swaps the request method of
        the client it is given while an exec runs, so sharing the run's client across threads would send
        other threads' plain API calls as websocket handshakes."""
        from kubernetes import config as kube_config
        target = self.ctx.target
        target.kube(self.context)        # the target's guardrails (allowlist, contexts) apply first
        return kube_config.new_client_from_config(config_file=str(target.spec.kubeconfig_path()),
                                                  context=self.context, persist_config=False)

    def _drive(self, pod: str) -> None:
        """Wait for the pod to run, then keep the fabric loaded with back-to-back runs until the revert."""
        api = self._private_client()
        core = client.CoreV1Api(api)
        deadline = time.time() + POD_START_S
        while not self._stop.is_set():
            try:
                phase = core.read_namespaced_pod(pod, NAMESPACE).status.phase
            except client.ApiException as exc:
                self.run_errors.append(f"{pod}: {exc.status} {exc.reason}")
                return
            if phase == "Running":
                break
            if time.time() > deadline:
                self.run_errors.append(f"{pod}: still {phase} after {POD_START_S:.0f} s")
                return
            self._stop.wait(0.1)
        while not self._stop.is_set():
            try:
                out = pod_exec(api, NAMESPACE, pod, _command(self.params.load),
                               timeout_s=60)
            except Exception as exc:   # the pod went away under us (revert, node loss): stop driving
                self.run_errors.append(f"{pod}: {type(exc).__name__}: {exc}"[:300])
                return
            if out.exit_code != 0:
                self.run_errors.append(f"{pod}: all_reduce_perf exited {out.exit_code}: {(out.stderr or out.stdout)[:200]}")
                return
            self.runs[pod] += 1
            for line in out.stdout.splitlines():
                if "Avg bus bandwidth" in line:
                    self.bandwidth[pod] = line.split(":", 1)[-1].strip()

    def check_landed(self) -> dict[str, Any] | None:
        if getattr(self, "runs", None) is None:
            return None
        if self.run_errors:
            raise FaultError(f"competing traffic did not start: {'; '.join(self.run_errors)}")
        if all(self.runs[p] > 0 for p in self.pods):
            return {"source": "all_reduce_perf", "tp_group": self.group, "pods": self.pods,
                    "nodes": [n.name for n in self.nodes], "avg_bus_bandwidth_GBps": self.bandwidth}
        return None

    def await_landed(self, deadline: float, poll_s: float = 0.1) -> dict[str, Any] | None:
        # the first run must finish before it reports: allow its length on top of the scenario's limit
        return super().await_landed(deadline + RUN_ITERS * 0.1, poll_s)

    def before_revert(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:    # the load threads stop first, so none is mid-exec when its pod goes
            stop.set()

    def after_revert(self) -> None:
        for t in getattr(self, "_threads", []):
            t.join(timeout=5)

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        core = client.CoreV1Api(target.kube(args["context"]))
        for pod in args["pods"]:
            try:
                core.delete_namespaced_pod(pod, args["namespace"], grace_period_seconds=0)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
