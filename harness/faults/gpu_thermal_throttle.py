"""gpu-thermal-throttle: a GPU running hotter than the article's 83 °C alarm and clocking down to survive it.

Injected the way DCGM's own test path does: `dcgmi test --inject ... --offset 60` of DCGM_FI_DEV_GPU_TEMP
(field 150) and of the throttled DCGM_FI_DEV_SM_CLOCK (field 100) in the node's DCGM pod, re-injected every
20 s while the fault lasts (the next real sample would replace a one-shot injection), so dcgm-exporter (when it
reads that hostengine), the CloudWatch agent and the temperature alarm see what a real overheating GPU shows.
An injected temperature heats nothing: the GPU keeps its real clock and every stream its real speed, so this
fault exercises detection and alerting, never the slowdown itself. `gpu: all` means every GPU the node
advertises (`nvidia.com/gpu` capacity). The values it overwrites are read from dcgm-exporter first and written
to the journal, so revert (even `g7chaos recover` in a fresh process) puts back exactly what was there.
Landed = dcgm-exporter reports the injected temperature; where the exporter cannot see injections (embedded
hostengine, or no GPU_TEMP counter) the fault says so in its `unobservable`.
"""
from __future__ import annotations

from typing import Any, Literal

from kubernetes import client
from pydantic import Field

from harness.dcgm_exporter import blind_spots
from harness.faults.base import Fault, FaultError, register, revert_each
from harness.faults.dcgmi import HOLD_S, REFRESH_S, Holder, inject_values
from harness.faults.selection import pod_on_node, pick_nodes
from harness.prometheus import parse_samples
from harness.strict.params import FaultParams, GpuIndex, NodeSelector

FIELD_SM_CLOCK = 100           # DCGM_FI_DEV_SM_CLOCK
FIELD_GPU_TEMP = 150           # DCGM_FI_DEV_GPU_TEMP
METRIC_BY_FIELD = {FIELD_SM_CLOCK: "DCGM_FI_DEV_SM_CLOCK", FIELD_GPU_TEMP: "DCGM_FI_DEV_GPU_TEMP"}
# Blackwell slowdown clocks sit near 57% of boost (2100 -> 1200 MHz); used when the scenario names none
THROTTLED_SM_CLOCK_MHZ = 1200
# what a GPU reads when dcgm-exporter could not be asked before the injection
DEFAULT_RESTORE = {FIELD_SM_CLOCK: 2100.0, FIELD_GPU_TEMP: 45.0}
TEMP_METRIC = "DCGM_FI_DEV_GPU_TEMP"


def node_gpu_count(target: Any, context: str, node: str) -> int:
    """The GPUs the node advertises (`nvidia.com/gpu` capacity): G7 sizes differ, so never a constant."""
    current = client.CoreV1Api(target.kube(context)).read_node(node)
    count = int((current.status.capacity or {}).get("nvidia.com/gpu", "0") or 0)
    if count <= 0:
        raise FaultError(f"node {node} advertises no nvidia.com/gpu capacity: no GPU to heat")
    return count


def exporter_fields(target: Any, context: str, node: str) -> dict[tuple[str, int], float]:
    """(metric, gpu) -> value from the node's dcgm-exporter, read through the API server's pod proxy."""
    exporter = target.spec.selectors.dcgm_exporter
    core = client.CoreV1Api(target.kube(context))
    pods = core.list_namespaced_pod(exporter.namespace, label_selector=exporter.label_selector,
                                    field_selector=f"spec.nodeName={node}").items
    out: dict[tuple[str, int], float] = {}
    for pod in pods:
        text = core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod.metadata.name}:{target.spec.selectors.dcgm_exporter_port}", exporter.namespace, "metrics")
        for sample in parse_samples(text):
            gpu = sample.labels.get("gpu")
            if sample.name in METRIC_BY_FIELD.values() and gpu is not None and gpu.isdigit():
                out[(sample.name, int(gpu))] = float(sample.value)
        break
    return out


class GpuThermalThrottleParams(FaultParams):
    """DCGM field injection of GPU temperature above the 83 °C alarm and the matching SM clock."""

    node: NodeSelector = Field(default_factory=NodeSelector)
    gpu: GpuIndex | Literal["all"] = 0
    temperature: float = Field(90.0, gt=0, le=150, description="°C injected into DCGM_FI_DEV_GPU_TEMP")
    sm_clock_mhz: int | None = Field(None, ge=100, le=5000, description="throttled SM clock; default derived")


@register
class GpuThermalThrottle(Fault):
    name = "gpu-thermal-throttle"
    params_model = GpuThermalThrottleParams
    params: GpuThermalThrottleParams
    holder: Holder | None = None

    def plan(self) -> str:
        self.nodes = pick_nodes(self.ctx.target, self.params.node, self.ctx.rng)
        gpu = self.params.gpu
        dcgm = self.ctx.target.spec.selectors.dcgm
        self.dcgm_pods = {}
        unobservable: dict[str, str] = {}
        for node in self.nodes:
            node.gpus = list(range(node_gpu_count(self.ctx.target, node.context, node.name))) if gpu == "all" \
                else [int(gpu)]
            self.dcgm_pods[node.name] = pod_on_node(self.ctx.target, node.context, dcgm.namespace,
                                                    dcgm.label_selector, node.name)
            _, blind = blind_spots(self.ctx.target, node.context, node.name, TEMP_METRIC)
            if blind:
                unobservable[node.name] = "; ".join(blind)
        if unobservable:
            self.unobservable[TEMP_METRIC] = unobservable
        self.clock = self.params.sm_clock_mhz or THROTTLED_SM_CLOCK_MHZ
        return "; ".join(
            f"dcgmi test --inject -f {FIELD_GPU_TEMP} -v {self.params.temperature:g} and -f {FIELD_SM_CLOCK} "
            f"-v {self.clock} --offset {HOLD_S} (held) on GPU(s) {','.join(map(str, n.gpus))} in "
            f"{dcgm.namespace}/{self.dcgm_pods[n.name].metadata.name} on {n.describe()}" for n in self.nodes)

    def _node_args(self, node: Any) -> dict[str, Any]:
        """What one node's revert needs: its DCGM pod and the values the injection overwrites, read first."""
        try:
            before = exporter_fields(self.ctx.target, node.context, node.name)
        except client.ApiException:
            before = {}
        restore = {str(g): {str(f): before.get((metric, g), DEFAULT_RESTORE[f]) for f, metric in METRIC_BY_FIELD.items()}
                   for g in node.gpus}
        pod = self.dcgm_pods[node.name]
        return {"context": node.context, "namespace": pod.metadata.namespace, "pod": pod.metadata.name,
                "node": node.name, "gpus": node.gpus, "restore": restore}

    def inject(self) -> None:
        self.args = {"nodes": [self._node_args(node) for node in self.nodes]}
        self.owe_revert(self.args)         # every node's old values are on record before the first is changed
        self._inject_all()
        self.holder = Holder(lambda: self._inject_all(skip_gone=True), self.ctx.wall(REFRESH_S), "thermal-hold")
        self.holder.start()

    def _inject_all(self, skip_gone: bool = False) -> None:
        for node in self.args["nodes"]:
            inject_values(self.ctx.target, node, [(gpu, field, value) for gpu in node["gpus"] for field, value in
                                                  ((FIELD_GPU_TEMP, self.params.temperature),
                                                   (FIELD_SM_CLOCK, self.clock))], skip_gone)

    def before_revert(self) -> None:
        if self.holder is not None:
            self.holder.stop()

    def check_landed(self) -> dict[str, Any] | None:
        return self.landed_on_every_node(self._landed_on)

    def _landed_on(self, node: Any) -> dict[str, Any] | None:
        try:
            fields = exporter_fields(self.ctx.target, node.context, node.name)
        except client.ApiException:
            return None
        hot = {g: fields.get(("DCGM_FI_DEV_GPU_TEMP", g)) for g in node.gpus}
        if all(v is not None and v >= self.params.temperature for v in hot.values()):
            return {"source": "dcgm-exporter", "metric": "DCGM_FI_DEV_GPU_TEMP", "gpus": node.gpus,
                    "temperature": max(hot.values()),
                    "sm_clock_mhz": min(fields.get(("DCGM_FI_DEV_SM_CLOCK", g), 0.0) for g in node.gpus)}
        return None

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        """Put back every node's values; a journal entry from a single-node run holds its node at the top."""
        revert_each(args.get("nodes") or [args], lambda node: _restore(target, node), "temperature/clock not restored")


def _restore(target: Any, node: dict[str, Any]) -> None:
    # temperature first: with the GPU cool again, the restored clock is not throttled back down; each value is
    # stamped as far ahead as the held one, so it supersedes it at once
    inject_values(target, node, [(int(gpu), field, float(fields[str(field)])) for gpu, fields in node["restore"].items()
                                 for field in (FIELD_GPU_TEMP, FIELD_SM_CLOCK)], skip_gone=True)
