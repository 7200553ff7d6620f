"""ecc-double-bit-error: an uncorrectable GPU memory error, injected the way DCGM's own test path does.

`dcgmi test --inject --gpuid G -f 319 -v 1` in the node's DCGM pod trips DCGM's double-bit policy just as a
real DBE would; the node monitoring agent and auto repair then see what they would see on AWS. It has
landed when the node's dcgm-exporter shows the DBE counter, or the node reports the DBE condition.
"""
from __future__ import annotations

from typing import Any

from kubernetes import client

from harness.faults.base import Fault, FaultError, register, revert_each
from harness.faults.podexec import pod_exec, pod_gone
from harness.faults.selection import pick_nodes, pod_on_node
from harness.prometheus import parse_samples

DBE_METRICS = ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL")


def _inject(target: Any, context: str, namespace: str, pod: str, gpu: int, field: int, value: int) -> None:
    command = ["dcgmi", "test", "--inject", "--gpuid", str(gpu), "-f", str(field), "-v", str(value)]
    out = pod_exec(target.kube(context), namespace, pod, command)
    if out.exit_code != 0:
        raise FaultError(f"{' '.join(command)} in {namespace}/{pod} exited {out.exit_code}: "
                         f"{(out.stderr or out.stdout).strip()[:300]}")


@register
class EccDoubleBitError(Fault):
    name = "ecc-double-bit-error"

    def plan(self) -> str:
        self.nodes = pick_nodes(self.ctx.target, self.params.node, self.ctx.rng)
        dcgm = self.ctx.target.spec.selectors.dcgm
        self.dcgm_pods = {}
        for node in self.nodes:
            node.gpus = [self.params.gpu]
            self.dcgm_pods[node.name] = pod_on_node(self.ctx.target, node.context, dcgm.namespace,
                                                    dcgm.label_selector, node.name)
        return "; ".join(f"dcgmi test --inject --gpuid {self.params.gpu} -f {self.params.field} -v 1 in "
                         f"{dcgm.namespace}/{self.dcgm_pods[n.name].metadata.name} on {n.describe()}"
                         for n in self.nodes)

    def _revert_args(self) -> dict[str, Any]:
        return {"gpus": [{"context": node.context, "namespace": self.dcgm_pods[node.name].metadata.namespace,
                          "pod": self.dcgm_pods[node.name].metadata.name, "node": node.name,
                          "gpu": self.params.gpu, "field": self.params.field} for node in self.nodes]}

    def inject(self) -> None:
        args = self._revert_args()
        self.owe_revert(args)              # every node's field is owed before the first one is set
        for gpu in args["gpus"]:
            _inject(self.ctx.target, gpu["context"], gpu["namespace"], gpu["pod"], gpu["gpu"], gpu["field"], 1)

    def check_landed(self) -> dict[str, Any] | None:
        return self.landed_on_every_node(self._landed_on)

    def _landed_on(self, node: Any) -> dict[str, Any] | None:
        target = self.ctx.target
        exporter = target.spec.selectors.dcgm_exporter
        core = client.CoreV1Api(target.kube(node.context))
        try:
            pods = core.list_namespaced_pod(exporter.namespace, label_selector=exporter.label_selector,
                                            field_selector=f"spec.nodeName={node.name}").items
            for pod in pods:
                text = core.connect_get_namespaced_pod_proxy_with_path(
                    f"{pod.metadata.name}:{target.spec.selectors.dcgm_exporter_port}", exporter.namespace, "metrics")
                for sample in parse_samples(text):
                    if sample.name in DBE_METRICS and sample.labels.get("gpu") == str(self.params.gpu) and sample.value > 0:
                        return {"source": "dcgm-exporter", "pod": pod.metadata.name, "metric": sample.name,
                                "gpu": self.params.gpu, "value": sample.value}
            current = core.read_node(node.name)
        except client.ApiException as exc:
            if exc.status == 404:   # the node is already gone: auto repair replaced it, so it had landed
                return {"source": "node-replaced", "node": node.name}
            return None
        for condition in current.status.conditions or []:
            if condition.type == "AcceleratedHardwareReady" and condition.status == "False":
                return {"source": "node-condition", "reason": condition.reason, "message": condition.message}
        return None

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        """Clear every node's field; a journal entry from a single-node run holds that node's fields at the top."""
        revert_each(args.get("gpus") or [args], lambda gpu: _clear(target, gpu), "DBE field not cleared")


def _clear(target: Any, gpu: dict[str, Any]) -> None:
    if pod_gone(target.kube(gpu["context"]), gpu["namespace"], gpu["pod"]):
        return        # the node (and its DCGM pod) was replaced: nothing left to clear
    _inject(target, gpu["context"], gpu["namespace"], gpu["pod"], gpu["gpu"], gpu["field"], 0)
