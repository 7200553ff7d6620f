"""The replica autoscaler of the inference Deployments: a HorizontalPodAutoscaler fed by a KEDA-style scaler.

Which signal it follows is the deployment's choice (profiles.Behaviour.autoscale_metric), and it is the
article's point about I/O-bound saturation:

- `queue-depth` (the article): Triton's own queue, nv_inference_pending_request_count per replica. Requests
  that wait (for the batch, or for a read from the node's volume) are counted whatever the GPU is doing, so
  the queue reads high exactly when clients are kept waiting. The fleet it was sized for is its floor; it
  adds replicas while requests queue, up to the GPUs its nodegroup offers.
- `gpu-util` (anti-pattern `gpu-util-autoscaling`): DCGM_FI_DEV_GPU_UTIL averaged over the replicas' GPUs
  against a 70 % target, both ways, with a low floor, the common GPU-utilisation recipe. A replica stuck
  on I/O has an idle GPU, so under an I/O stall the signal reads "over-provisioned": it removes replicas
  while clients queue, and never adds any.

The arithmetic is the HPA's (autoscaling/v2): desired = ceil(current * metric / target), no change within a
10 % tolerance, scale-up at once (at most double, or +4, per sync), scale-down only to the highest
recommendation of the stabilization window, both clamped to [min, max]. The upper bound is the allocatable
GPUs of the Deployment's nodegroup, so scaling never leaves a replica Pending. Rescaling patches the
Deployment's replicas through the store (the Deployment controller carries it to the ReplicaSet and pods),
with the HPA's `SuccessfulRescale` event, so the harness sees it through watches as on a real cluster.

Sync period and stabilization are real-world seconds (scaled by the twin clock); the metrics are read
from the serving layer and the DCGM field cache, which is what the Prometheus scrape of the real signals
would return.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.twin.controllers.base import Controller
from harness.twin.kube.store import NotFound, Obj, resource

DEPLOYMENTS = resource("deployments.apps")
INFERENCE_NS = "inference"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"

SYNC_S = 15.0                  # --horizontal-pod-autoscaler-sync-period
TOLERANCE = 0.1                # --horizontal-pod-autoscaler-tolerance
SCALE_DOWN_WINDOW_S = 120.0    # behavior.scaleDown.stabilizationWindowSeconds
SCALE_UP_PODS = 4              # behavior.scaleUp policies: +100 % or +4 pods per sync, whichever is more


@dataclass(frozen=True)
class ScalerSpec:
    """One autoscaling recipe: which metric, its per-replica target, and the floor relative to the sized fleet."""

    metric: str
    target: float
    floor_share: float          # minReplicas as a share of the replicas the Deployment was created with
    unit: str


SPECS: dict[str, ScalerSpec] = {
    "queue-depth": ScalerSpec("nv_inference_pending_request_count", 2.0, 1.0, "pending requests per replica"),
    "gpu-util": ScalerSpec("DCGM_FI_DEV_GPU_UTIL", 70.0, 0.25, "% GPU utilisation"),
}


@dataclass
class Decision:
    """One rescale, kept for tests and the twin's own log."""

    at: float
    cluster: str
    deployment: str
    metric: str
    value: float
    before: int
    after: int


@dataclass
class _Scaled:
    floor: int
    last_sync: float = 0.0
    recommendations: list[tuple[float, int]] = field(default_factory=list)


class ReplicaAutoscaler(Controller):
    name = "autoscaler"

    def __init__(self, fleet, spec: ScalerSpec | None = None, floor: int | None = None):
        super().__init__(fleet)
        self.spec = spec or SPECS[self.world.behaviour.autoscale_metric]
        self._floor_override = floor
        self._scaled: dict[tuple[str, str], _Scaled] = {}
        self.decisions: list[Decision] = []

    def reconcile(self, now: float) -> None:
        serving = self.fleet.serving
        if serving is None:
            return
        sync_wall = self.world.clock.wall(SYNC_S)
        for cname, cluster in self.world.clusters.items():
            for dep in cluster.store.iter_raw(DEPLOYMENTS):
                if dep["metadata"].get("namespace") != INFERENCE_NS or not self._autoscaled(dep):
                    continue
                key = (cname, dep["metadata"]["name"])
                state = self._scaled.get(key)
                if state is None:
                    created = int(dep["spec"].get("replicas", 0))
                    floor = self._floor_override if self._floor_override is not None else \
                        max(1, math.ceil(created * self.spec.floor_share))
                    # the size it was running at counts as a recommendation: a scale-in waits a full window
                    state = self._scaled[key] = _Scaled(floor=floor, last_sync=now, recommendations=[(now, created)])
                    continue
                if now - state.last_sync < sync_wall:
                    continue
                state.last_sync = now
                self._sync(cluster.store, cname, dep, state, now)

    @staticmethod
    def _autoscaled(dep: Obj) -> bool:
        """Single-GPU Triton Deployments: a tensor-parallel group is sized by its topology, not by load."""
        labels = dep["spec"].get("template", {}).get("metadata", {}).get("labels") or {}
        return labels.get("app") == "triton" and "tp-group" not in labels

    def _replicas(self, cname: str, dep: Obj) -> list:
        prefix = f"{dep['metadata']['name']}-"
        serving = self.fleet.serving
        return [r for r in list(serving.replicas.values())
                if r.cluster == cname and r.pod.startswith(prefix) and serving.serving(r)]

    def _reading(self, replicas: list) -> float:
        if self.spec.metric == "nv_inference_pending_request_count":
            return sum(len(r.waiting) for r in replicas) / len(replicas)
        return sum(self.fleet.serving.utilisation(r) for r in replicas) / len(replicas)

    def _ceiling(self, dep: Obj) -> int:
        group = (dep["spec"].get("template", {}).get("spec", {}).get("nodeSelector") or {}).get(NODEGROUP_LABEL)
        return sum(n.allocatable_gpus for n in self.world.nodes.values()
                   if n.nodegroup == group and n.power == "running")

    def _sync(self, store, cname: str, dep: Obj, state: _Scaled, now: float) -> None:
        replicas = self._replicas(cname, dep)
        current = int(dep["spec"].get("replicas", 0))
        ceiling = max(state.floor, self._ceiling(dep))
        if not replicas:
            desired, value = current, float("nan")
        else:
            value = self._reading(replicas)
            ratio = value / self.spec.target
            # HPA: usage ratio over the pods that report, applied to the Deployment's replicas
            desired = current if abs(ratio - 1.0) <= TOLERANCE else math.ceil(len(replicas) * ratio)
        desired = max(desired, state.floor)
        window = self.world.clock.wall(SCALE_DOWN_WINDOW_S)
        state.recommendations = [(t, d) for t, d in state.recommendations if now - t < window] + [(now, desired)]
        if desired > current:
            # up at once, as far as the policy and the GPUs allow; never down because GPUs went missing
            target = min(desired, max(current * 2, current + SCALE_UP_PODS), ceiling)
            if target <= current:
                return
        elif desired < current:
            target = max(d for _, d in state.recommendations)     # the highest of the window: no flapping
            if target >= current:
                return
        else:
            return
        self._rescale(store, cname, dep, current, target, value, now)

    def _rescale(self, store, cname: str, dep: Obj, before: int, after: int, value: float, now: float) -> None:
        name = dep["metadata"]["name"]
        try:
            updated = store.mutate(DEPLOYMENTS, INFERENCE_NS, name, lambda o: o["spec"].__setitem__("replicas", after),
                                   actor="horizontal-pod-autoscaler")
        except NotFound:
            return
        shown = "unknown" if math.isnan(value) else f"{value:.1f}"
        reason = "above" if after > before else "below"
        self.fleet.event(store, updated, "SuccessfulRescale",
                         f"New size: {after}; reason: {self.spec.metric} ({shown} {self.spec.unit}) {reason} target "
                         f"{self.spec.target:g}", component="horizontal-pod-autoscaler")
        self.decisions.append(Decision(now, cname, name, self.spec.metric, value, before, after))
