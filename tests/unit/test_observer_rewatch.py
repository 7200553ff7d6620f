"""The observer loses nothing when watches are cut, refused or expire: every change reaches the timeline.

A real Kubernetes API app behind the twin's flaky middleware (30% of calls fail, every watch stream is cut
within half a second, resumed watches sometimes answered 410 Gone) while the test changes a node's labels
and creates and deletes pods through the API. The timeline must end on each object's true last state.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from kubernetes import client

from harness.observe import ClusterObserver, Timeline, _StreamState
from harness.target.model import AwsSpec, TargetSpec
from harness.target.target import Target
from harness.twin.flaky import FlakyApi, FlakyConfig
from harness.twin.kube import objects as o
from harness.twin.kube.api import build_kube_app
from harness.twin.kube.flaky import FlakyKubeApp
from harness.twin.kube.kubeconfig import write_kubeconfig
from harness.twin.kube.store import ObjectStore, resource
from harness.twin.kube.testing import serve_in_thread

NODE = o.node_name_for_ip("10.0.1.10")
STEPS = 10


def test_cut_and_expired_watches_resume_and_the_timeline_ends_on_the_truth(tmp_path: Path) -> None:
    store = ObjectStore("c1")
    for ns in ("default", "inference"):
        store.create(resource("namespaces"), o.namespace(ns))
    store.create(resource("nodes"), o.node(NODE, instance_id="i-0abc", instance_type="g7.48xlarge",
                                           zone="us-east-2a", region="us-east-2", nodegroup="ng", capacity_type="SPOT",
                                           private_ip="10.0.1.10", gpus=8, efa=4, cluster="c1"))
    flaky = FlakyApi(FlakyConfig(rate=0.3, seed=21, hold_s=0.05, retry_after_s=0, watch_lifetime_s=(0.2, 0.5)))
    url, stop = serve_in_thread(FlakyKubeApp(build_kube_app(store, deletion_grace_seconds=0.05), flaky, "kube:c1"))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"c1": url})
    target = Target(TargetSpec(name="flaky", environment="dev", kubeconfig=str(kubeconfig), contexts=["c1"],
                               aws=AwsSpec(region="us-east-2"), inference_url="http://127.0.0.1:9"))
    timeline, errors = Timeline(), []
    observer = ClusterObserver("c1", target.kube("c1"), timeline, ["inference"], on_error=errors.append)
    try:
        observer.start()
        assert observer.ready.wait(20), "the observer never listed"
        core = client.CoreV1Api(target.kube("c1"))
        tick = threading.Event()
        for step in range(STEPS):     # spread over several watch lifetimes, so changes land in the gaps too
            core.patch_node(NODE, {"metadata": {"labels": {"step": str(step)}}})
            name = f"triton-{step}"
            core.create_namespaced_pod("inference", o.pod(name, "inference", containers=[o.container("t", "triton")],
                                                          labels={"app": "triton"}))
            if step % 2:
                core.delete_namespaced_pod(name, "inference", grace_period_seconds=0)
            tick.wait(0.1)

        def last_states(observations) -> tuple[str | None, dict[str, str]]:
            """(the node's last `step` label, pod name -> type of its last observation); called under the lock."""
            step, pods = None, {}
            for obs in observations:
                if obs.kind == "Node" and obs.name == NODE:
                    step = (obs.obj.metadata.labels or {}).get("step")
                elif obs.kind == "Pod":
                    pods[obs.name] = obs.type
            return step, pods

        truth = {f"triton-{step}": step % 2 == 1 for step in range(STEPS)}     # name -> deleted

        def caught_up(observations) -> bool:
            """The node's last label, every live pod present, no deleted pod still shown alive. (A pod created
            and deleted inside one gap that ended in a relist is never seen at all, as with any informer.)"""
            step, pods = last_states(observations)
            return step == str(STEPS - 1) and all(
                pods.get(name) in (None, "DELETED") if deleted else pods.get(name) not in (None, "DELETED")
                for name, deleted in truth.items()) and "DELETED" in pods.values()
        assert timeline.wait_for(caught_up, time.time() + 20), f"timeline behind: {last_states(timeline.observations)}"
    finally:
        observer.stop()
        stop()
    assert flaky.injected("kube:c1:watch", "drop") >= 3, flaky.summary()
    assert errors, "cut watches are reported to the run's journal"


def test_a_relist_records_what_vanished_while_no_watch_was_open() -> None:
    """After a 410 the observer lists again: an object it knew that the list no longer holds was deleted in
    the gap, and the timeline says so (a drained pod must not linger as present)."""
    def item(name: str) -> SimpleNamespace:
        return SimpleNamespace(metadata=SimpleNamespace(name=name, namespace="inference", resource_version="7"))

    timeline = Timeline()
    observer = ClusterObserver("c1", client.ApiClient(), timeline, ["inference"])
    observer._pending_ready = 1
    state = _StreamState(resource_version=None, known={("inference", "gone"): item("gone"),
                                                       ("inference", "kept"): item("kept")})
    listing = SimpleNamespace(items=[item("kept"), item("new")], metadata=SimpleNamespace(resource_version="9"))
    observer._relist("Pod", lambda **_: listing, {}, state)
    by_name = {(obs.name, obs.type) for obs in timeline.select("Pod")}
    assert by_name == {("kept", "LISTED"), ("new", "LISTED"), ("gone", "DELETED")}
    assert state.resource_version == "9" and set(state.known) == {("inference", "kept"), ("inference", "new")}
    assert observer.ready.is_set()
