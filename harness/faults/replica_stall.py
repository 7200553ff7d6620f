"""replica-stall: serving replicas that hang, the way a wedged Triton process does.

On a real cluster a hung server is reproduced with `kill -STOP 1` by pod exec in the chosen inference pods:
the process keeps its sockets and its GPU memory but answers nothing, neither new requests (not even
response headers) nor the streams it was producing. Clients time out and retry with the same
Idempotency-Key; whether that retry is executed once or twice is what the retry-storm scenario judges.
Revert is `kill -CONT 1`, after which the process carries on where it stopped.

`mode` names the symptom a scenario is after (hang before the first token, or mid-stream); one SIGSTOP
produces both: streams already running stop mid-way, new ones never start.

Landed = every chosen pod's process received the signal (the exec of `kill` exited 0 in each of them).
"""
from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from harness.faults.base import Fault, FaultError, NodeRef, register
from harness.faults.podexec import pod_exec

ZONE = "topology.kubernetes.io/zone"
NODEGROUP = "eks.amazonaws.com/nodegroup"


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
        if len(candidates) < self.params.count:
            raise FaultError(f"replica-stall needs {self.params.count} Ready inference pod(s) (model "
                             f"{self.params.model or 'any'}, zone {self.params.zone or 'any'}); found {len(candidates)}")
        if self.params.pick == "first":
            chosen = candidates[:self.params.count]
        else:
            import random
            chooser = random.Random(self.params.seed) if self.params.seed is not None else self.ctx.rng
            chosen = chooser.sample(candidates, self.params.count)
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
        return f"kill -STOP 1 ({self.params.mode}) in {len(self.pods)} pod(s): {', '.join(self.extra['pods'])}"

    def inject(self) -> None:
        self.revert_id = self.ctx.journal.register_revert(self.name, {"pods": self.pods})
        self.signalled: list[str] = []
        for p in self.pods:
            _signal(self.ctx.target, p["context"], p["namespace"], p["pod"], "STOP")
            self.signalled.append(p["pod"])
        self.signalled_at = time.time()

    def check_landed(self) -> dict[str, Any] | None:
        signalled = getattr(self, "signalled", [])
        if len(signalled) != len(self.pods):
            return None
        return {"source": "pod-exec", "signal": "SIGSTOP", "pods": signalled, "mode": self.params.mode}

    def revert(self) -> None:
        if getattr(self, "revert_id", None) is None:
            return
        self.revert_owed(self.ctx.target, {"pods": self.pods})
        # only a revert that went through is struck from the journal: a failed one stays owed for recover
        self.ctx.journal.reverted(self.revert_id)
        self.revert_id = None

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
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
