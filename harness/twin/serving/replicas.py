"""The serving fleet: which replicas exist, which get traffic, and what the World does to them.

Replicas are not configured here; they are derived from what the clusters' Kubernetes API shows (Running
and Ready pods labelled app=triton in namespace `inference`, their node, the GPUs annotated on them) and
from the World's physics (power, network, ECC, clocks, EFA). That is why a drain, an eviction or a pod
replacement done through the Kubernetes API changes where traffic goes, exactly as on a real cluster.

Routing follows the deployment's topology (profiles.Behaviour.topology):
- cluster-per-az (the article): an NLB in front of one cluster per AZ; only targets whose health checks
  pass (World.target_health, written by the NLB model) and whose AZ is not zonally shifted away get new
  requests, so losing an AZ costs the NLB's detection time and then traffic flows through the other AZ.
- single-multi-az-cluster (the anti-pattern): traffic follows Kubernetes endpoints (Ready pods) with no
  health gate, so replicas on an unreachable node keep receiving requests that hang.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass

from harness.twin import hardware
from harness.twin.hardware import ModelSpec
from harness.twin.kube.store import resource
from harness.twin.serving import latency, textgen
from harness.twin.serving.idempotency import Ledger
from harness.twin.serving.metrics import Metrics
from harness.twin.serving.replica import EngineStats, Physics, Replica
from harness.twin.serving.sessions import SessionStore
from harness.twin.world import DCGM_FI_DEV_GPU_UTIL, World

NAMESPACE = "inference"
GPUS_ANNOTATION = "twin.g7chaos.io/gpus"
MODELS: dict[str, ModelSpec] = {m.name: m for m in (hardware.MODEL_13B_FP8, hardware.MODEL_70B_FP16)}
DEFAULT_MODEL = hardware.MODEL_13B_FP8.name

CANARY_PROMPT = "Canary: repeat the reference sentence about the state of the fleet."
CANARY_TOKENS = 12
REFRESH_S = 0.05
UTIL_SAMPLE_S = 1.0       # dcgm-exporter's default collection interval (wall-clock: inference time is never scaled)


@dataclass(frozen=True)
class _PodView:
    name: str
    node: str
    model: str
    gpus: list[int]
    ready: bool
    terminating: bool
    tp_group: str | None


def _pod_view(pod: dict) -> _PodView | None:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    labels = meta.get("labels") or {}
    node = spec.get("nodeName")
    if labels.get("app") != "triton" or not node:
        return None
    raw = (meta.get("annotations") or {}).get(GPUS_ANNOTATION, "")
    gpus = [int(x) for x in raw.split(",") if x.strip().isdigit()]
    ready = status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return _PodView(meta["name"], node, labels.get("model", DEFAULT_MODEL), gpus, ready,
                    bool(meta.get("deletionTimestamp")), labels.get("tp-group"))


class ServingFleet:
    """Everything the gateway needs: replicas, routing, sessions, the idempotency ledger, metrics."""

    def __init__(self, world: World):
        self.world = world
        self.replicas: dict[str, Replica] = {}
        self.sessions = SessionStore()
        self.ledger = Ledger()
        self.metrics = Metrics()
        self.stopped_pods: set[str] = set()
        self.golden: dict[str, str] = {}
        self.retired = EngineStats()
        self._seen_rv: dict[str, int] = {}
        self._noticed: set[str] = set()          # nodes whose spot notice was handled
        self._down: set[str] = set()             # replicas whose node is powered off / unreachable
        self._rr = itertools.count()
        self._task: asyncio.Task | None = None
        self._util_at = time.monotonic()
        self._util_busy: dict[str, float] = {}
        self._util_gpus: dict[str, list[tuple[str, int]]] = {}

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background sweep (spot notices, power, network) on the running loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sweep(), name="serving-fleet")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for r in self.replicas.values():
            r.kill("gateway stopped")

    async def _sweep(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(REFRESH_S)

    # -- deriving replicas ---------------------------------------------------------------------------
    def refresh(self, full: bool = True) -> None:
        """Bring replicas in line with the Kubernetes stores and the World's physics.

        The request path calls it with full=False: pods and spot notices only, since walking every
        replica's GPUs per request would cost more than the request; the background sweep does the rest
        every REFRESH_S and the router reads power and health from the World directly.
        """
        changed = False
        for name, cluster in self.world.clusters.items():
            rv = cluster.store.resource_version
            if self._seen_rv.get(name) != rv:
                self._seen_rv[name] = rv
                changed = True
        if changed:
            self._rebuild()
        self._notices()
        if full:
            self._physics_sweep()

    def _rebuild(self) -> None:
        pods_res = resource("pods")
        seen: set[str] = set()
        for cname, cluster in self.world.clusters.items():
            pods, _ = cluster.store.list(pods_res, NAMESPACE)
            views = [v for v in (_pod_view(p) for p in pods) if v is not None]
            groups: dict[str, list[_PodView]] = {}
            for v in views:
                gkey = f"tp:{v.tp_group}" if v.tp_group else f"pod:{v.name}"
                groups.setdefault(gkey, []).append(v)
            for members in groups.values():
                members.sort(key=lambda v: v.name)
                model = MODELS.get(members[0].model)
                if model is None:
                    continue
                key = f"{cname}/" + "+".join(v.name for v in members)
                seen.add(key)
                r = self.replicas.get(key)
                if r is None:
                    gpus = [(v.node, g) for v in members for g in (v.gpus or [0])]
                    nodes = list(dict.fromkeys(v.node for v in members))
                    r = Replica(key, model, cname, [v.name for v in members], nodes, gpus)
                    self.replicas[key] = r
                r.ready = all(v.ready for v in members) and (
                    model.tensor_parallel <= 1 or sum(len(v.gpus) or 1 for v in members) >= model.tensor_parallel)
                r.draining = any(v.terminating for v in members)
                node = self.world.nodes.get(r.node)
                r.az = node.az if node is not None else r.az
                r.set_stopped(any(p in self.stopped_pods for p in r.pods))
        live = {p for r in self.replicas.values() if r.key in seen for p in r.pods}
        self.stopped_pods &= live               # a deleted pod's cgroup, and its freeze, are gone with it
        for key in [k for k in self.replicas if k not in seen]:
            r = self.replicas.pop(key)
            r.kill("pod deleted")
            self.sessions.replica_gone(key)
            self._retire(r)

    def _retire(self, r: Replica) -> None:
        for f in ("steps", "tokens", "queue_us", "admitted"):
            setattr(self.retired, f, getattr(self.retired, f) + getattr(r.stats, f))

    def _notices(self) -> None:
        """A spot notice under kv_offload: the node's KV caches go to its NVMe now, while there is time."""
        w = self.world
        for node in w.nodes.values():
            if node.spot_notice_at is not None and node.name not in self._noticed:
                self._noticed.add(node.name)
                if w.behaviour.kv_offload:
                    self.sessions.offload_node(node.name)
            elif node.spot_notice_at is None and node.name in self._noticed:
                self._noticed.discard(node.name)
                self.sessions.offloading.discard(node.name)

    def _sample_utilisation(self) -> None:
        """DCGM_FI_DEV_GPU_UTIL of each replica's GPUs: the share of the last sample period spent in engine steps.

        That is what the real counter measures (time a kernel was running), which is why it reads low when a
        replica waits on I/O with clients queueing in front of it.
        """
        now = time.monotonic()
        if now - self._util_at < UTIL_SAMPLE_S:
            return
        elapsed, self._util_at = now - self._util_at, now
        nodes = self.world.nodes
        busy_now: dict[str, float] = {}
        for r in self.replicas.values():
            busy_now[r.key] = r.stats.busy_s
            before = self._util_busy.get(r.key)
            if before is None:
                continue
            util = 0.0 if r.stopped or r.dead else min(100.0, 100.0 * (r.stats.busy_s - before) / elapsed)
            for node_name, idx in r.gpus:
                node = nodes.get(node_name)
                if node is not None and idx < len(node.gpus):
                    node.gpus[idx].fields[DCGM_FI_DEV_GPU_UTIL] = round(util, 1)
        for key in set(self._util_gpus) - set(busy_now):     # a replica gone leaves its GPUs idle
            for node_name, idx in self._util_gpus.pop(key):
                node = nodes.get(node_name)
                if node is not None and idx < len(node.gpus):
                    node.gpus[idx].fields[DCGM_FI_DEV_GPU_UTIL] = 0.0
        self._util_gpus.update({r.key: list(r.gpus) for r in self.replicas.values()})
        self._util_busy = busy_now

    def utilisation(self, r: Replica) -> float:
        """The replica's GPU utilisation as DCGM last sampled it (percent)."""
        node_name, idx = r.gpus[0]
        node = self.world.nodes.get(node_name)
        return node.gpus[idx].fields.get(DCGM_FI_DEV_GPU_UTIL, 0.0) if node is not None and idx < len(node.gpus) else 0.0

    def update_physics(self, r: Replica) -> None:
        r.phys = self._physics(r)

    def _physics_sweep(self) -> None:
        w = self.world
        self._sample_utilisation()
        for r in self.replicas.values():
            r.phys = self._physics(r)
            powered = all((n := w.nodes.get(name)) is not None and n.power == "running" for name in r.nodes)
            reachable = powered and all(w.nodes[name].network_reachable for name in r.nodes)
            if not powered:
                if r.key not in self._down:
                    self._down.add(r.key)
                    self.sessions.replica_gone(r.key)     # GPU memory is gone with the power
                if r.load:
                    r.cut_inflight("node powered off")
            elif not reachable:
                if r.load:
                    r.cut_inflight("node unreachable")
            else:
                self._down.discard(r.key)

    def _physics(self, r: Replica) -> Physics:
        """Live GPU state for one engine step: SM clock, ECC, EFA load and placement.

        The clock is the hardware's (`Gpu.fields`): a temperature injected into DCGM's cache slows nothing, as on a
        real GPU (FIDELITY THERM-2). A double-bit error is what DCGM shows, the twin standing in for a real one."""
        w = self.world
        factor, corrupted = 1.0, None
        for node_name, idx in r.gpus:
            node = w.nodes.get(node_name)
            if node is None or idx >= len(node.gpus):
                continue
            gpu = node.gpus[idx]
            f = gpu.clock_factor
            if gpu.throttled:
                f = min(f, hardware.GPU_SM_CLOCK_THROTTLED_MHZ / hardware.GPU_SM_CLOCK_MHZ)
            factor = min(factor, f)
            if corrupted is None and gpu.double_bit_error:
                corrupted = f"{node_name}/{gpu.uuid}"
        nodes = [w.nodes[n] for n in r.nodes if n in w.nodes]
        groups = {n.placement_group for n in nodes}
        link = latency.Interconnect(
            gpus_per_node=max(1, len(r.gpus) // max(1, len(r.nodes))), nodes=len(r.nodes),
            efa_load=max((n.efa_load for n in nodes), default=0.0),
            placement_group=w.behaviour.placement_group and len(groups) == 1 and None not in groups)
        io = max((w.io_latency_s.get(n, 0.0) for n in r.nodes), default=0.0)
        return Physics(factor, corrupted, link, io)

    # -- routing -------------------------------------------------------------------------------------
    def powered(self, r: Replica) -> bool:
        return all((n := self.world.nodes.get(name)) is not None and n.power == "running" for name in r.nodes)

    def reachable(self, r: Replica) -> bool:
        return self.powered(r) and all(self.world.nodes[n].network_reachable for n in r.nodes)

    def serving(self, r: Replica) -> bool:
        """Kubernetes would list it as an endpoint and it has not been pulled."""
        return r.ready and not r.draining and not r.pulled and not r.dead

    def routable(self, r: Replica) -> bool:
        """Whether new requests may go to `r`. A replica whose GPU took a double-bit error stays routable (and
        answers corrupted) until a detector the deployment runs pulls it: its canary, which the load balancer's
        health check runs on the node every HealthCheckIntervalSeconds (`node_healthy`, FIDELITY ELB-1). No
        readiness probe reads DCGM, so nothing pulls it sooner."""
        if not self.serving(r) or not self.powered(r):
            return False
        w = self.world
        if r.az in w.zonal_shift_away:
            return False
        if w.behaviour.topology == "cluster-per-az":
            return all(w.target_health.get(n, "healthy") != "unhealthy" for n in r.nodes)
        return True

    def route(self, model: str, conversation: str | None = None) -> Replica | None:
        """Least-loaded routable replica of `model`, preferring the one holding the conversation's KV."""
        candidates = [r for r in self.replicas.values() if r.model.name == model and self.routable(r)]
        if not candidates:
            return None
        sticky = self.sessions.affinity(conversation)
        for r in candidates:
            if r.key == sticky:
                return r
        n = len(candidates)
        offset = next(self._rr) % n
        return min(enumerate(candidates), key=lambda ir: (ir[1].load, (ir[0] - offset) % n))[1]

    def models(self) -> list[str]:
        present = {r.model.name for r in self.replicas.values()}
        return sorted(present or MODELS)

    # -- faults --------------------------------------------------------------------------------------
    def freeze(self, pod_name: str, frozen: bool) -> bool:
        """The pod's serving container was frozen (cgroup.freeze 1) or thawed: its replica stops mid-step, sends
        nothing (not even response headers) and resumes where it was. False if no replica has that pod."""
        (self.stopped_pods.add if frozen else self.stopped_pods.discard)(pod_name)
        found = False
        for r in self.replicas.values():
            if pod_name in r.pods:
                r.set_stopped(any(p in self.stopped_pods for p in r.pods))
                found = True
        return found

    def replica_of(self, pod_name: str) -> Replica | None:
        return next((r for r in self.replicas.values() if pod_name in r.pods), None)

    async def await_answering(self, pod_name: str, limit_s: float) -> bool:
        """Whether the pod's server can answer within `limit_s`: at once unless it is frozen, then at its thaw."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while pod_name in self.stopped_pods:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    # -- health and canary ---------------------------------------------------------------------------
    def canary_text(self, r: Replica) -> str:
        return textgen.generate(r.model.name, CANARY_PROMPT, CANARY_TOKENS, self._physics(r).corrupted_by)

    def _golden(self, model: str) -> str | None:
        """Learned in steady state: the answer most replicas of the model give (a lone faulty GPU is outvoted)."""
        if model not in self.golden:
            answers = Counter(self.canary_text(r) for r in self.replicas.values()
                              if r.model.name == model and self.serving(r))
            if not answers:
                return None
            self.golden[model] = answers.most_common(1)[0][0]
        return self.golden[model]

    def node_healthy(self, node_name: str) -> bool:
        """What the NLB health check sees: does this node have a replica that answers (correctly)?

        Pods and notices only: the health check reads no replica's load physics (the canary computes its own),
        and a full sweep per probe made every round of probes cost nodes x replicas (at 64 nodes per AZ, most
        of the twin's CPU)."""
        self.refresh(full=False)
        node = self.world.nodes.get(node_name)
        if node is None or node.power != "running" or not node.network_reachable:
            return False
        healthy = False
        for r in self.replicas.values():
            if node_name not in r.nodes or not r.ready or r.dead or r.stopped:
                continue
            if self.world.behaviour.dbe_remediation:
                golden = self._golden(r.model.name)
                ok = golden is None or self.canary_text(r) == golden
                if not ok and not r.pulled:
                    self.metrics.inc("g7_gateway_canary_pulls_total", model=r.model.name)
                r.pulled = not ok
            if not r.pulled:
                healthy = True
        return healthy

    def engine_totals(self) -> EngineStats:
        t = EngineStats(**vars(self.retired))
        for r in self.replicas.values():
            for f in ("steps", "tokens", "queue_us", "admitted"):
                setattr(t, f, getattr(t, f) + getattr(r.stats, f))
        return t
