"""The replica autoscaler on a fleet stepped by hand: what each recipe does when replicas queue on I/O.

The serving layer is replaced by replicas whose queue and GPU utilisation the test sets, so each recipe is
judged on exactly the signals it reads: Triton's pending requests (queue-depth, the article) and DCGM GPU
utilisation (gpu-util). Rescaling must go through the Deployment, reach pods through the controllers, and
never ask for more replicas than the nodegroup has GPUs.
"""
from __future__ import annotations

from harness.twin.controllers import autoscaler as hpa
from harness.twin.controllers.manager import build_manager
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet.runtime import PODS, Fleet, FleetHooks
from harness.twin.kube.store import resource
from harness.twin.profiles import parse_profile
from harness.twin.topology import build_world
from twinkit import ManualClock

DEPLOYMENTS = resource("deployments.apps")
EVENTS = resource("events")


class StubReplica:
    def __init__(self, cluster: str, pod: str, waiting: int, util: float):
        self.cluster, self.pod, self.waiting, self.util = cluster, pod, [object()] * waiting, util


class StubServing:
    """Every Ready triton-13b pod is a replica with the queue and utilisation the test dictates."""

    def __init__(self, rig: "Rig"):
        self.rig = rig
        self.waiting, self.util = 0, 50.0

    @property
    def replicas(self) -> dict[str, StubReplica]:
        out = {}
        for cname, cluster in self.rig.world.clusters.items():
            for pod in cluster.store.iter_raw(PODS):
                name = pod["metadata"]["name"]
                if name.startswith("triton-13b-") and ko.is_ready(pod) and not ko.is_terminating(pod):
                    out[f"{cname}/{name}"] = StubReplica(cname, name, self.waiting, self.util)
        return out

    def serving(self, r: StubReplica) -> bool:
        return True

    def utilisation(self, r: StubReplica) -> float:
        return r.util


class Rig:
    def __init__(self, profile: str):
        self.world = build_world(parse_profile(profile), 1, 30.0)
        self.clock = ManualClock(30.0)
        self.world.clock = self.clock  # type: ignore[assignment]
        self.fleet = Fleet(self.world)
        self.hooks = self.fleet.hooks = FleetHooks(self.fleet)
        self.manager = build_manager(self.fleet)
        for n, group in enumerate(self.world.nodegroups.values()):
            for i in range(group.desired):
                self.hooks.launched(f"i-{n:08x}{i:09x}", group.name, group.azs[0], f"subnet-{group.azs[0]}",
                                    f"10.0.{n}.{10 + i}", group.capacity_type, group.placement_group)
        self.manager.settle()
        self.fleet.instant = False
        self.serving = self.fleet.serving = StubServing(self)

    def run(self, seconds: float, step: float = 0.05) -> None:
        end = self.clock.t + seconds
        while self.clock.t < end:
            self.clock.t += step
            self.manager.step(self.clock.t)

    def replicas(self, cluster: str = "g7-use2a") -> int:
        return self.world.clusters[cluster].store.get(DEPLOYMENTS, "inference", "triton-13b")["spec"]["replicas"]

    def ready_pods(self, cluster: str = "g7-use2a") -> int:
        return sum(1 for p in self.world.clusters[cluster].store.iter_raw(PODS)
                   if p["metadata"]["name"].startswith("triton-13b-") and ko.is_ready(p) and not ko.is_terminating(p))

    def pending_pods(self) -> list[str]:
        return [p["metadata"]["name"] for c in self.world.clusters.values() for p in c.store.iter_raw(PODS)
                if p["metadata"]["name"].startswith("triton-13b-") and not p["spec"].get("nodeName")]


def test_gpu_util_recipe_removes_replicas_that_are_queueing_on_io():
    rig = Rig("gpu-util-autoscaling")
    assert rig.replicas() == 8 and rig.ready_pods() == 8
    rig.serving.waiting, rig.serving.util = 6, 12.0        # clients queue, the GPUs idle on I/O
    rig.run(rig.clock.wall(hpa.SCALE_DOWN_WINDOW_S) + 2)
    assert rig.replicas("g7-use2a") == 2 and rig.replicas("g7-use2b") == 2     # the 25 % floor of 8
    scaler = rig.manager.get("autoscaler")
    downs = [d for d in scaler.decisions if d.after < d.before]
    assert downs and all(d.metric == "DCGM_FI_DEV_GPU_UTIL" and d.value == 12.0 for d in downs)
    events = [e for e in rig.world.clusters["g7-use2a"].store.iter_raw(EVENTS) if e.get("reason") == "SuccessfulRescale"]
    assert events and "New size: 2" in events[-1]["message"] and "DCGM_FI_DEV_GPU_UTIL" in events[-1]["message"]
    rig.run(5)
    assert rig.ready_pods() == 2, "the Deployment's new size reached its pods"


def test_gpu_util_recipe_waits_out_its_stabilization_window_before_scaling_in():
    rig = Rig("gpu-util-autoscaling")
    rig.serving.util = 12.0
    rig.run(rig.clock.wall(hpa.SCALE_DOWN_WINDOW_S) / 2)
    assert rig.replicas() == 8
    rig.serving.util = 100.0
    rig.run(rig.clock.wall(hpa.SCALE_DOWN_WINDOW_S) + 1)
    assert rig.replicas() == 8, "busy GPUs inside the window hold the fleet (and no GPU is left to add)"


def test_queue_depth_recipe_holds_the_fleet_while_clients_queue():
    rig = Rig("article")
    rig.serving.waiting, rig.serving.util = 6, 12.0
    rig.run(rig.clock.wall(hpa.SCALE_DOWN_WINDOW_S) + 2)
    assert rig.replicas("g7-use2a") == 8 and rig.replicas("g7-use2b") == 8
    assert rig.manager.get("autoscaler").decisions == [], "every GPU already serves: nothing to add, nothing removed"


def test_queue_depth_recipe_scales_out_onto_spare_gpus_and_no_further():
    rig = Rig("article")
    index = next(i for i, c in enumerate(rig.manager.controllers) if c.name == "autoscaler")
    scaler = rig.manager.controllers[index] = hpa.ReplicaAutoscaler(rig.fleet, floor=2)
    for cluster in rig.world.clusters.values():
        cluster.store.mutate(DEPLOYMENTS, "inference", "triton-13b", lambda o: o["spec"].__setitem__("replicas", 2))
    rig.run(5)
    assert rig.ready_pods() == 2
    rig.serving.waiting = 6                                   # 3x the target of 2 pending per replica
    rig.run(rig.clock.wall(hpa.SYNC_S) * 1.5)
    assert rig.replicas() == 6, "first step: +4 pods (the HPA's scale-up policy)"
    rig.run(rig.clock.wall(hpa.SYNC_S) * 4 + 2)
    assert rig.replicas() == 8 and rig.ready_pods() == 8, "up to the nodegroup's 8 GPUs"
    assert rig.pending_pods() == [], "never more replicas than GPUs"
    ups = [d for d in scaler.decisions if d.cluster == "g7-use2a"]
    assert [(d.before, d.after) for d in ups] == [(2, 6), (6, 8)] and ups[0].metric == "nv_inference_pending_request_count"
    rig.serving.waiting = 0                                   # the queue is gone: back to the floor after the window
    rig.run(rig.clock.wall(hpa.SCALE_DOWN_WINDOW_S) + 2)
    assert rig.replicas() == 2


def test_a_scale_in_removes_pending_replicas_at_once_instead_of_leaving_them_terminating():
    rig = Rig("gpu-util-autoscaling")
    store = rig.world.clusters["g7-use2a"].store
    store.mutate(DEPLOYMENTS, "inference", "triton-13b", lambda o: o["spec"].__setitem__("replicas", 10))
    rig.run(1)
    assert len([p for p in rig.pending_pods() if p in {q["metadata"]["name"] for q in store.iter_raw(PODS)}]) == 2
    store.mutate(DEPLOYMENTS, "inference", "triton-13b", lambda o: o["spec"].__setitem__("replicas", 8))
    rig.run(rig.clock.wall(60))
    left = [p["metadata"]["name"] for p in store.iter_raw(PODS)
            if p["metadata"]["name"].startswith("triton-13b-") and not p["spec"].get("nodeName")]
    assert left == [], f"unbound replicas never go once marked for deletion: {left}"
    assert rig.ready_pods() == 8
