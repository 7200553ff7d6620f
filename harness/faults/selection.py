"""Choosing nodes for a fault through the Kubernetes API, reproducibly.

Selection reads only (list nodes and pods), sorts by name so the same seed picks the same node on the
same fleet, and says which setting to change when nothing matches.
"""
from __future__ import annotations

import random
from typing import Any

from kubernetes import client

from harness.faults.base import FaultError, NodeRef

ZONE = "topology.kubernetes.io/zone"
NODEGROUP = "eks.amazonaws.com/nodegroup"


def instance_id_of(node: Any) -> str | None:
    provider = node.spec.provider_id or ""
    return provider.rsplit("/", 1)[-1] if provider.startswith("aws://") else None


def candidate_nodes(target: Any, selector: Any) -> list[NodeRef]:
    contexts = [selector.cluster] if getattr(selector, "cluster", None) else target.contexts
    found: list[NodeRef] = []
    for context in contexts:
        core = client.CoreV1Api(target.kube(context))
        model_nodes: set[str] | None = None
        if getattr(selector, "model", None):
            sel = target.spec.selectors
            pods = core.list_namespaced_pod(sel.inference.namespace,
                                            label_selector=f"{sel.inference.label_selector},model={selector.model}").items
            model_nodes = {p.spec.node_name for p in pods if p.spec.node_name}
        for node in core.list_node().items:
            labels = node.metadata.labels or {}
            if node.spec.unschedulable:
                continue
            if getattr(selector, "zone", None) and labels.get(ZONE) != selector.zone:
                continue
            if getattr(selector, "nodegroup", None) and labels.get(NODEGROUP) != selector.nodegroup:
                continue
            if model_nodes is not None and node.metadata.name not in model_nodes:
                continue
            if not _ready(node):
                continue
            found.append(NodeRef(context=context, name=node.metadata.name, zone=labels.get(ZONE),
                                 nodegroup=labels.get(NODEGROUP), instance_id=instance_id_of(node)))
    return sorted(found, key=lambda n: (n.context, n.name))


def pick_nodes(target: Any, selector: Any, rng: random.Random) -> list[NodeRef]:
    candidates = candidate_nodes(target, selector)
    if len(candidates) < selector.count:
        raise FaultError(f"node selector {selector.model_dump(exclude_none=True)} matches {len(candidates)} "
                         f"schedulable Ready node(s), {selector.count} needed; check zone/nodegroup/model/cluster")
    if selector.pick == "first":
        return candidates[:selector.count]
    chooser = random.Random(selector.seed) if selector.seed is not None else rng
    return chooser.sample(candidates, selector.count)


def _ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def pod_on_node(target: Any, context: str, namespace: str, label_selector: str, node: str) -> Any:
    core = client.CoreV1Api(target.kube(context))
    pods = core.list_namespaced_pod(namespace, label_selector=label_selector,
                                    field_selector=f"spec.nodeName={node}").items
    running = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    if not running:
        raise FaultError(f"no running pod with labels {label_selector!r} in namespace {namespace!r} on node {node} "
                         f"(context {context}); set the target's selectors if your cluster names them differently")
    return running[0]
