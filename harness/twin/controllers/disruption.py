"""PodDisruptionBudgets and drains: the same rules the API's eviction endpoint applies.

A controller that drains (Node Auto Repair, the spot handler) must go through eviction, so a drain
can only take replicas away as fast as the PDB allows; that pace is what the chaos checks observe.
Both bounded drains give up waiting on the PDB at a deadline and delete what is left, as the real
tools do (a spot instance goes away at its time whether or not the PDB agrees).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from harness.twin.controllers.base import Controller
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet.runtime import NODES
from harness.twin.kube.disruption import decide_eviction, refresh_statuses
from harness.twin.kube.store import NotFound, ObjectStore


def cordon(store: ObjectStore, node_name: str, actor: str) -> None:
    try:
        store.mutate(NODES, None, node_name, lambda o: o.setdefault("spec", {}).__setitem__("unschedulable", True), actor=actor)
    except NotFound:
        pass


@dataclass
class DrainJob:
    cluster: str
    node: str
    deadline: float
    actor: str
    on_done: Callable[[], None] | None = None
    done: bool = False
    evicted: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)


class Drainer(Controller):
    """Drains nodes by eviction; a job finishes when only DaemonSet pods remain on its node."""

    name = "drainer"

    def __init__(self, fleet):
        super().__init__(fleet)
        self.jobs: dict[str, DrainJob] = {}

    def start(self, cluster: str, node: str, deadline: float, actor: str,
              on_done: Callable[[], None] | None = None) -> DrainJob:
        job = self.jobs.get(node)
        if job is None or job.done:
            job = self.jobs[node] = DrainJob(cluster, node, deadline, actor, on_done)
            cordon(self.world.clusters[cluster].store, node, actor)
        return job

    def reconcile(self, now: float) -> None:
        for job in [j for j in self.jobs.values() if not j.done]:
            store = self.world.clusters[job.cluster].store
            remaining = [p for p in self.fleet.pods_on(store, job.node) if ko.owner_kind(p) != "DaemonSet"]
            if not remaining:
                job.done = True
                if job.on_done is not None:
                    job.on_done()
                continue
            for pod in remaining:
                if ko.is_terminating(pod):
                    continue
                name = pod["metadata"]["name"]
                if decide_eviction(store, pod["metadata"]["namespace"], name).allowed:
                    job.evicted.append(name)
                    reason, message = "Evicted", f"Evicted by {job.actor}: draining node {job.node}"
                elif now >= job.deadline:
                    job.forced.append(name)
                    reason, message = "Killing", f"Deleted by {job.actor}: node {job.node} must go before its disruption budget allows"
                else:
                    continue
                # even a forced drain deletes with the pod's own grace period: in-flight streams may finish
                self.fleet.mark_terminating(store, pod, actor=job.actor, grace_seconds=None)
                self.fleet.event(store, pod, reason, message, component=job.actor)


class DisruptionController(Controller):
    """Keeps each PodDisruptionBudget's status current (kubectl and the checks read it)."""

    name = "disruption"
    store_driven = True

    def reconcile(self, now: float) -> None:
        for cluster in self.world.clusters.values():
            refresh_statuses(cluster.store)
