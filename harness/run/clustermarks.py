"""The run's cluster lane: every change the watches saw, every fault step, every probe's finding, as marks.

Written once at the end of a run to `cluster.jsonl` (harness/report/marks.py) so the report, and anyone
rebuilding it later, reads what the harness saw rather than what the cluster looks like now. A change is found
by comparing each observation of an object with the one before it: a node's `spec.unschedulable` turning true
is a cordon, a condition whose status or reason changed is a condition mark (with its reason), a pod that gets
a deletion timestamp is evicted, a pod whose Ready condition turns false is a replica pulled from service.
Objects seen in the first list are the fleet as the run found it: their first sight is no change (except a
pod's placement, which a drain milestone needs). Only Kubernetes Events that arrive during the run are marks;
the backlog the first list returns is history.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from harness.faults import Fault
from harness.observe import Observation
from harness.report.marks import ClusterMark
from harness.report.model import StopRecord

ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_EVENT_MARKS = 400        # a report stays readable (and small) however chatty the cluster's Events are


def _conditions(obj: Any) -> dict[str, tuple[str, str, str]]:
    status = getattr(obj, "status", None)
    return {c.type: (c.status, c.reason or "", c.message or "") for c in (getattr(status, "conditions", None) or [])}


def _pod_ready(pod: Any) -> bool | None:
    status = _conditions(pod).get("Ready")
    return None if status is None else status[0] == "True"


def _stamp(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


class MarkDeriver:
    """Folds observations in order, remembering the last one of each object, and emits a mark per change."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[str, str], Any] = {}
        self.pods: dict[tuple[str, str | None, str], Any] = {}
        self.zones: dict[str, str] = {}
        self.marks: list[ClusterMark] = []
        self.events = 0

    def fold(self, observations: Iterable[Observation]) -> list[ClusterMark]:
        for obs in observations:
            if obs.kind == "Node":
                self._node(obs)
            elif obs.kind == "Pod":
                self._pod(obs)
            elif obs.kind == "Event":
                self._event(obs)
        return self.marks

    def _add(self, at: float, kind: str, subject: str, label: str, node: str | None = None, detail: str = "") -> None:
        self.marks.append(ClusterMark(at=at, kind=kind, subject=subject, label=label, node=node,
                                      zone=self.zones.get(node or ""), detail=detail))

    def _node(self, obs: Observation) -> None:
        key, name, node = (obs.context, obs.name), obs.name, obs.obj
        zone = ((node.metadata.labels or {}) if node.metadata else {}).get(ZONE_LABEL)
        if zone:
            self.zones[name] = zone
        before = self.nodes.get(key)
        if obs.type == "DELETED":
            self.nodes.pop(key, None)
            self._add(obs.at, "node-deleted", name, f"node {name} deleted", name)
            return
        self.nodes[key] = node
        if before is None:
            if obs.type == "ADDED":
                self._add(obs.at, "node-joined", name, f"node {name} joined", name)
                if _conditions(node).get("Ready", ("",))[0] == "True":
                    self._add(obs.at, "node-ready", name, f"node {name} Ready", name)
            return
        if bool(node.spec.unschedulable) != bool(before.spec.unschedulable):
            kind = "cordon" if node.spec.unschedulable else "uncordon"
            self._add(obs.at, kind, name, f"{'cordoned' if kind == 'cordon' else 'uncordoned'} {name}", name)
        old, new = _conditions(before), _conditions(node)
        for ctype, (status, reason, message) in new.items():
            if old.get(ctype, ("", "", ""))[:2] == (status, reason):
                continue
            if ctype == "Ready":
                kind = "node-ready" if status == "True" else "node-not-ready"
                self._add(obs.at, kind, name, f"node {name} {'Ready' if status == 'True' else 'NotReady'}", name,
                          f"{reason}: {message}".strip(": "))
            else:
                self._add(obs.at, "node-condition", name, f"{ctype}={status} on {name}" + (f" ({reason})" if reason
                                                                                         else ""),
                          name, f"{ctype} {status} {reason}: {message}".strip(": "))

    def _pod(self, obs: Observation) -> None:
        key, pod = (obs.context, obs.namespace, obs.name), obs.obj
        before = self.pods.get(key)
        node = pod.spec.node_name if pod.spec else None
        if obs.type == "DELETED":
            self.pods.pop(key, None)
            if before is not None and not before.metadata.deletion_timestamp:
                self._add(obs.at, "pod-deleted", obs.name, f"pod {obs.name} deleted", node)
            return
        self.pods[key] = pod
        if node and (before is None or not before.spec.node_name):
            self._add(obs.at, "pod-placed", obs.name, f"pod {obs.name} on {node}", node)
        if before is None:
            return
        if pod.metadata.deletion_timestamp and not before.metadata.deletion_timestamp:
            self._add(obs.at, "pod-evicted", obs.name, f"pod {obs.name} evicted", node)
            return
        ready, was = _pod_ready(pod), _pod_ready(before)
        if ready is not None and was is not None and ready != was:
            kind = "pod-ready" if ready else "pod-not-ready"
            self._add(obs.at, kind, obs.name, f"pod {obs.name} {'Ready' if ready else 'pulled (not Ready)'}", node)

    def _event(self, obs: Observation) -> None:
        if obs.type not in ("ADDED", "MODIFIED") or self.events >= MAX_EVENT_MARKS:
            return
        event = obs.obj
        involved = event.involved_object
        kind, name = (involved.kind or "", involved.name or "") if involved else ("", "")
        node = name if kind == "Node" else None
        if kind == "Pod":
            pod = self.pods.get((obs.context, involved.namespace, name))
            node = pod.spec.node_name if pod is not None and pod.spec else None
        self.events += 1
        self._add(obs.at, "event", f"{kind}/{name}", f"{event.reason or 'Event'} {kind}/{name}", node,
                  f"{event.type or ''} {event.reason or ''}: {event.message or ''}".strip())


def fault_marks(faults: Iterable[Fault]) -> list[ClusterMark]:
    """Each fault's own steps (injected, landed, reverted) and the moments it offers (notice, loss...)."""
    marks: list[ClusterMark] = []
    for fault in faults:
        node = fault.nodes[0].name if fault.nodes else None
        zone = fault.nodes[0].zone if fault.nodes else None
        for at, kind, what in ((fault.injected_at, "fault-injected", "injected"),
                               (fault.landed_at, "fault-landed", "landed"),
                               (fault.reverted_at, "fault-reverted", "reverted")):
            if at is not None:
                marks.append(ClusterMark(at=at, kind=kind, subject=fault.name, label=f"{fault.name} {what}",
                                         node=node, zone=zone, fault=fault.index))
        for at, label in fault.moments():
            marks.append(ClusterMark(at=at, kind="fault-moment", subject=fault.name, label=label, node=node,
                                     zone=zone, fault=fault.index))
    return marks


def stop_marks(stop: StopRecord | None) -> list[ClusterMark]:
    if stop is None or stop.fired_at is None:
        return []
    return [ClusterMark(at=stop.fired_at.timestamp(), kind="stop-condition", subject=stop.condition,
                        label=f"stop: {stop.condition}", detail=stop.reason)]
