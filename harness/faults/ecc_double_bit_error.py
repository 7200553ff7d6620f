"""ecc-double-bit-error: an uncorrectable GPU memory error, injected the way DCGM's own tests and AWS's do.

Two fields, because two detectors read two different ones (NVIDIA/DCGM dcgmlib/dcgm_fields.h):
- 319 DCGM_FI_DEV_ECC_DBE_VOL_DEV trips DCGM's double-bit *policy*; the EKS node monitoring agent turns the
  policy event into `AcceleratedHardwareReady=False`, reason `NvidiaDoubleBitError` (AWS's own e2e test
  injects exactly this and waits at most a minute), which node auto repair then acts on;
- 311 DCGM_FI_DEV_ECC_DBE_VOL_TOTAL is what DCGM's MEM health watch and dcgm-exporter's counter (the article's
  alarm metric) read.
`dcgmi test --inject --gpuid G -f F -v 1 --offset 60` in the node's DCGM pod, for both, re-injected every 20 s
for as long as the fault lasts (an injected value stands only until a newer real sample replaces it); the
revert injects 0 the same way. It has landed when a detector an operator uses shows it: the node's
condition, or the exporter's DBE counter where the exporter reads that hostengine and exports the counter.
Where it cannot, the fault says so (its `unobservable`), so `alarm-fired` reports an alarm on 311 as
unobservable with this exporter rather than as a deployment that failed to alarm.
"""
from __future__ import annotations

from typing import Any, Literal

from kubernetes import client
from pydantic import Field

from harness.dcgm_exporter import blind_spots
from harness.faults.base import Fault, register, revert_each
from harness.faults.dcgmi import HOLD_S, REFRESH_S, Holder, inject_values
from harness.faults.selection import pick_nodes, pod_on_node
from harness.prometheus import parse_samples
from harness.strict.params import FaultParams, GpuIndex, NodeSelector

FIELD_DBE_VOL_DEV = 319         # DCGM_FI_DEV_ECC_DBE_VOL_DEV: the DBE policy
FIELD_DBE_VOL_TOTAL = 311       # DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: the MEM health watch and the alarm metric
ALARM_METRIC = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
NODE_REASONS = ("NvidiaDoubleBitError", "DCGMHealthCode4")


class EccDoubleBitErrorParams(FaultParams):
    """Exec `dcgmi test --inject --gpuid G -f FIELD -v 1 --offset 60` in the node's DCGM pod for each field, held
    while the fault lasts; revert with -v 0."""

    node: NodeSelector = Field(default_factory=NodeSelector)
    gpu: GpuIndex = 0
    fields: list[Literal[319, 311]] = Field(
        default_factory=lambda: [319, 311], min_length=1,
        description="319 (DCGM_FI_DEV_ECC_DBE_VOL_DEV) trips DCGM's DBE policy and the node condition; 311 "
                    "(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL) is the MEM health watch's and the alarm's metric")


@register
class EccDoubleBitError(Fault):
    name = "ecc-double-bit-error"
    params_model = EccDoubleBitErrorParams
    params: EccDoubleBitErrorParams
    holder: Holder | None = None

    def plan(self) -> str:
        self.nodes = pick_nodes(self.ctx.target, self.params.node, self.ctx.rng)
        dcgm = self.ctx.target.spec.selectors.dcgm
        self.fields = list(dict.fromkeys(self.params.fields))
        self.dcgm_pods = {}
        unobservable: dict[str, str] = {}
        for node in self.nodes:
            node.gpus = [self.params.gpu]
            self.dcgm_pods[node.name] = pod_on_node(self.ctx.target, node.context, dcgm.namespace,
                                                    dcgm.label_selector, node.name)
            views, blind = blind_spots(self.ctx.target, node.context, node.name, ALARM_METRIC)
            if not views and not blind:
                blind.append(f"no dcgm-exporter pod on {node.name}")
            if FIELD_DBE_VOL_TOTAL not in self.fields:
                blind.append(f"field {FIELD_DBE_VOL_TOTAL} ({ALARM_METRIC}) is not injected")
            if blind:
                unobservable[node.name] = "; ".join(blind)
        if unobservable:
            self.unobservable[ALARM_METRIC] = unobservable
        return "; ".join(f"dcgmi test --inject --gpuid {self.params.gpu} -f {'/'.join(map(str, self.fields))} -v 1 "
                         f"--offset {HOLD_S} (held) in {dcgm.namespace}/{self.dcgm_pods[n.name].metadata.name} on "
                         f"{n.describe()}" for n in self.nodes)

    def _revert_args(self) -> dict[str, Any]:
        return {"gpus": [{"context": node.context, "namespace": self.dcgm_pods[node.name].metadata.namespace,
                          "pod": self.dcgm_pods[node.name].metadata.name, "node": node.name,
                          "gpu": self.params.gpu, "fields": self.fields} for node in self.nodes]}

    def inject(self) -> None:
        args = self._revert_args()
        self.owe_revert(args)              # every node's fields are owed before the first one is set
        self._inject_all(args)
        self.holder = Holder(lambda: self._inject_all(args, skip_gone=True), self.ctx.wall(REFRESH_S), "ecc-hold")
        self.holder.start()

    def _inject_all(self, args: dict[str, Any], skip_gone: bool = False) -> None:
        for gpu in args["gpus"]:
            inject_values(self.ctx.target, gpu, [(gpu["gpu"], field, 1) for field in gpu["fields"]], skip_gone)

    def before_revert(self) -> None:
        if self.holder is not None:
            self.holder.stop()

    def check_landed(self) -> dict[str, Any] | None:
        return self.landed_on_every_node(self._landed_on)

    def _landed_on(self, node: Any) -> dict[str, Any] | None:
        target = self.ctx.target
        core = client.CoreV1Api(target.kube(node.context))
        try:
            current = core.read_node(node.name)
        except client.ApiException as exc:
            if exc.status == 404:   # the node is already gone: auto repair replaced it, so it had landed
                return {"source": "node-replaced", "node": node.name}
            return None
        for condition in current.status.conditions or []:
            if condition.type == "AcceleratedHardwareReady" and condition.status == "False" \
                    and condition.reason in NODE_REASONS:
                return {"source": "node-condition", "reason": condition.reason, "message": condition.message}
        if node.name in self.unobservable.get(ALARM_METRIC, {}):
            return None            # the exporter cannot show an injection: only the node condition can
        return self._exporter_shows(core, node)

    def _exporter_shows(self, core: Any, node: Any) -> dict[str, Any] | None:
        exporter = self.ctx.target.spec.selectors.dcgm_exporter
        try:
            pods = core.list_namespaced_pod(exporter.namespace, label_selector=exporter.label_selector,
                                            field_selector=f"spec.nodeName={node.name}").items
            for pod in pods:
                text = core.connect_get_namespaced_pod_proxy_with_path(
                    f"{pod.metadata.name}:{self.ctx.target.spec.selectors.dcgm_exporter_port}", exporter.namespace,
                    "metrics")
                for sample in parse_samples(text):
                    if sample.name == ALARM_METRIC and sample.labels.get("gpu") == str(self.params.gpu) \
                            and sample.value > 0:
                        return {"source": "dcgm-exporter", "pod": pod.metadata.name, "metric": sample.name,
                                "gpu": self.params.gpu, "value": sample.value}
        except client.ApiException:
            return None
        return None

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        """Clear every node's fields; a journal entry from a single-node run holds that node's fields at the top."""
        revert_each(args.get("gpus") or [args], lambda gpu: _clear(target, gpu), "DBE fields not cleared")


def _clear(target: Any, gpu: dict[str, Any]) -> None:
    # stamped as far ahead as the held value, so this newer sample supersedes it at once
    inject_values(target, gpu, [(gpu["gpu"], field, 0) for field in gpu.get("fields") or [gpu["field"]]],
                  skip_gone=True)
