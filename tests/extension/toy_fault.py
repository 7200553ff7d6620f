"""toy-node-annotation: a fault that lives outside harness/faults/ and is registered from this file alone.

It is here to show what adding a fault takes: one module that declares its parameters next to its code and
`@register`s the class. Scenario validation, `g7chaos schema`, `g7chaos list`, the runner and `g7chaos recover`
then know it without another file being touched (tests/extension/test_extension.py).

What it does is harmless and fully undone: it writes an annotation on the chosen nodes through the Kubernetes
API (a strategic merge patch, as `kubectl annotate` sends), proves it landed by reading the nodes back, and
removes the annotation on revert, from the journal's arguments alone.
"""
from __future__ import annotations

from typing import Any

from kubernetes import client
from pydantic import Field

from harness.faults.base import Fault, register
from harness.faults.selection import pick_nodes
from harness.strict.params import FaultParams, NodeSelector

ANNOTATION = "g7chaos.dev/toy-fault"


class ToyNodeAnnotationParams(FaultParams):
    """Annotate the chosen nodes (g7chaos.dev/toy-fault) through the Kubernetes API; the annotation is removed on
    revert."""

    node: NodeSelector = Field(default_factory=NodeSelector)
    value: str = Field("on", min_length=1, max_length=63, pattern=r"^[a-z0-9-]+$")


def annotate(target: Any, context: str, node: str, value: str | None) -> None:
    """Set (or, with None, remove) the annotation; a node that is gone has nothing left to undo."""
    try:
        client.CoreV1Api(target.kube(context)).patch_node(node, {"metadata": {"annotations": {ANNOTATION: value}}})
    except client.ApiException as exc:
        if value is not None or exc.status != 404:
            raise


@register
class ToyNodeAnnotation(Fault):
    name = "toy-node-annotation"
    params_model = ToyNodeAnnotationParams
    params: ToyNodeAnnotationParams

    def plan(self) -> str:
        self.nodes = pick_nodes(self.ctx.target, self.params.node, self.ctx.rng)
        return f"annotate {', '.join(n.describe() for n in self.nodes)} with {ANNOTATION}={self.params.value}"

    def inject(self) -> None:
        self.owe_revert({"nodes": [{"context": n.context, "name": n.name} for n in self.nodes]})
        for node in self.nodes:
            annotate(self.ctx.target, node.context, node.name, self.params.value)

    def check_landed(self) -> dict[str, Any] | None:
        def landed_on(node: Any) -> dict[str, Any] | None:
            current = client.CoreV1Api(self.ctx.target.kube(node.context)).read_node(node.name)
            seen = (current.metadata.annotations or {}).get(ANNOTATION)
            return {"source": "node-annotation", "node": node.name, "value": seen} if seen == self.params.value \
                else None
        return self.landed_on_every_node(landed_on)

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        for node in args["nodes"]:
            annotate(target, node["context"], node["name"], None)
