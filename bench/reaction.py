"""How soon the harness knows what the control plane did: time from a change on the twin to the harness's
record of it, p50/p99 over each kind of event.

A check such as "node drained within 2 minutes" subtracts the harness's record times; if those lag the
cluster, the harness blames the deployment for its own slowness. Four kinds of change, each made with a
real client call and timed from the twin's own audit log (`GET /_twin/audit`: the wall time the API server
received the call) to the moment the harness recorded the result:

- node cordoned (`spec.unschedulable`), node condition set (`status.conditions`), pod evicted (the eviction
  subresource): recorded by `harness.observe.ClusterObserver`, the watch timeline every check reads;
- CloudWatch alarm to ALARM (`SetAlarmState`): recorded by the `alarm-fired` check, which has to sample
  `DescribeAlarms` (every 0.25 s) because CloudWatch offers no watch.

Events are made one at a time, each after the last was recorded, so a figure is a reaction, not a queue.
The twin runs in its own process; both clocks are this machine's `time.time()`. Proof of watching rather
than polling: the list calls the observer made while the events ran (from the same audit log) must be 0.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import threading
import time
from typing import Any, Callable

from kubernetes import client

from bench._twinbench import AuditClock, summary_ms, twin_target
from harness.checks.alarm_fired import AlarmFired, AlarmFiredParams
from harness.observe import ClusterObserver, Observation, Timeline
from harness.twin.kube.auditlog import read_audit

NAME = "reaction"
ORDER = 40
NAMESPACE = "g7bench-reaction"
CONDITION = "G7BenchProbe"
ALARM_METRIC = "G7BenchReaction"
ALARM_NAMESPACE = "G7Bench"
RECORD_DEADLINE_S = 10.0          # an event not recorded by then counts as missed
POD_BATCH = 10

KINDS = {
    "node-cordoned": "node cordoned: PATCH spec.unschedulable=true received by the API server -> watch event in "
                     "the observer's timeline",
    "node-condition": "node condition set: PATCH status.conditions received -> watch event in the timeline",
    "pod-evicted": "pod evicted: POST pods/eviction received -> watch event (deletionTimestamp or DELETED) in the "
                   "timeline",
    "alarm-state": "CloudWatch alarm to ALARM: SetAlarmState received -> first ALARM sample of the alarm-fired "
                   "check (polls DescribeAlarms every 0.25 s)",
}


class _Ctx:
    """What a check's start() reads: the target."""

    def __init__(self, target: Any) -> None:
        self.target = target


def _record(timeline: Timeline, start: int, match: Callable[[Observation], bool]) -> Observation | None:
    """The first observation after index `start` that matches, waited for on the timeline's own condition."""
    return timeline.wait_for(lambda observations: next((o for o in observations[start:] if match(o)), None),
                             time.time() + RECORD_DEADLINE_S)


def _kube_events(core: client.CoreV1Api, timeline: Timeline, audit: AuditClock, nodes: list[str],
                 n: int) -> dict[str, Any]:
    out: dict[str, list[float]] = {"node-cordoned": [], "node-condition": [], "pod-evicted": []}
    missed = {k: 0 for k in out}
    audit.take(lambda c: False)      # the mark after setup
    for i in range(n):
        node = nodes[i % len(nodes)]
        for unschedulable in (True, False):      # cordon timed; uncordon restores the node before the next event
            start = len(timeline.observations)
            core.patch_node(node, {"spec": {"unschedulable": unschedulable}})
            seen = _record(timeline, start, lambda o, node=node, u=unschedulable: o.kind == "Node" and o.name == node
                           and bool(o.obj.spec.unschedulable) == u)
            call, _ = audit.take(lambda c, node=node: c["api"] == "kube" and c["verb"] == "patch"
                                 and c["resource"] == "nodes" and c["name"] == node and not c["subresource"])
            if unschedulable:
                if seen is None or call is None:
                    missed["node-cordoned"] += 1
                else:
                    out["node-cordoned"].append(seen.at - call["at"])
        status = "True" if i % 2 == 0 else "False"
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        start = len(timeline.observations)
        core.patch_node_status(node, {"status": {"conditions": [
            {"type": CONDITION, "status": status, "reason": "Benchmark", "message": f"event {i}",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}})
        seen = _record(timeline, start, lambda o, node=node, s=status: o.kind == "Node" and o.name == node and any(
            c.type == CONDITION and c.status == s for c in (o.obj.status.conditions or [])))
        call, _ = audit.take(lambda c, node=node: c["api"] == "kube" and c["verb"] == "patch"
                             and c["resource"] == "nodes" and c["name"] == node and c["subresource"] == "status")
        if seen is None or call is None:
            missed["node-condition"] += 1
        else:
            out["node-condition"].append(seen.at - call["at"])
    _evictions(core, timeline, audit, n, out, missed)
    return {"seconds": out, "missed": missed}


def _pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE,
                                                            "labels": {"app": "g7bench-reaction"}},
            "spec": {"containers": [{"name": "sleep", "image": "public.ecr.aws/docker/library/busybox:1.36",
                                     "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
                     "terminationGracePeriodSeconds": 0, "tolerations": [{"operator": "Exists"}]}}


def _evictions(core: client.CoreV1Api, timeline: Timeline, audit: AuditClock, n: int,
               out: dict[str, list[float]], missed: dict[str, int]) -> None:
    """Pods are made in batches and evicted once the timeline holds them, so creation and scheduling are
    over before the timed eviction."""
    made = 0
    while made < n:
        names = [f"probe-{made + k:03d}" for k in range(min(POD_BATCH, n - made))]
        made += len(names)
        for name in names:
            core.create_namespaced_pod(NAMESPACE, _pod(name))
        wanted = set(names)
        timeline.wait_for(lambda obs: wanted <= {o.name for o in obs if o.kind == "Pod" and o.obj.spec.node_name},
                          time.time() + RECORD_DEADLINE_S)
        audit.take(lambda c: False)
        for name in names:
            start = len(timeline.observations)
            core.create_namespaced_pod_eviction(name, NAMESPACE, client.V1Eviction(
                metadata=client.V1ObjectMeta(name=name, namespace=NAMESPACE)))
            seen = _record(timeline, start, lambda o, name=name: o.kind == "Pod" and o.name == name and (
                o.type == "DELETED" or o.obj.metadata.deletion_timestamp is not None))
            call, _ = audit.take(lambda c, name=name: c["api"] == "kube" and c["verb"] == "create"
                                 and c["subresource"] == "eviction" and c["name"] == name)
            if seen is None or call is None:
                missed["pod-evicted"] += 1
            else:
                out["pod-evicted"].append(seen.at - call["at"])


def _alarm_events(target: Any, audit: AuditClock, n: int) -> tuple[list[float], int]:
    """One alarm per event (no data, missing data ignored, so the twin's evaluator leaves them alone): each
    goes to ALARM once, the check records its first ALARM sample."""
    cloudwatch = target.aws("cloudwatch")
    names = [f"g7bench-reaction-{i:03d}" for i in range(n)]
    for name in names:
        cloudwatch.put_metric_alarm(AlarmName=name, Namespace=ALARM_NAMESPACE, MetricName=ALARM_METRIC,
                                    Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=0.0,
                                    ComparisonOperator="GreaterThanThreshold", TreatMissingData="ignore")
    check = AlarmFired(AlarmFiredParams(metric=ALARM_METRIC))
    sampled = threading.Condition()
    real = check._read

    def matching() -> list[dict]:     # let the wait below wake on each sample instead of polling it
        found = real()
        with sampled:
            sampled.notify_all()
        return found

    check._read = matching            # type: ignore[method-assign]
    check.start(_Ctx(target))
    out: list[float] = []
    missed = 0
    try:
        audit.take(lambda c: False)
        pace = threading.Event()
        phase = random.Random(7)
        for name in names:
            # each event would otherwise land just after the sample that saw the last one, a whole poll
            # interval before the next: a random phase gives the reaction an alarm really meets
            pace.wait(phase.uniform(0.0, AlarmFired.POLL_S))
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="benchmark")
            deadline = time.time() + RECORD_DEADLINE_S
            with sampled:
                while name not in check.entered and time.time() < deadline:
                    sampled.wait(timeout=0.5)
            call, _ = audit.take(lambda c, name=name: c["api"] == "aws" and c["verb"] == "SetAlarmState")
            if name not in check.entered or call is None:
                missed += 1
            else:
                out.append(check.entered[name][0] - call["at"])
    finally:
        check.stop()
        cloudwatch.delete_alarms(AlarmNames=names)
    return out, missed


def run(tiny: bool = False) -> dict[str, Any]:
    n = 5 if tiny else 100
    with twin_target() as (target, twin, start_s):
        endpoints = json.loads(twin.endpoints_path.read_text())
        context = target.contexts[0]
        audit = AuditClock(endpoints["kube_urls"][context])
        core = client.CoreV1Api(target.kube(context))
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        timeline = Timeline()
        observer = ClusterObserver(context, target.kube(context), timeline, pod_namespaces=[NAMESPACE])
        observer.start()
        if not observer.ready.wait(30):
            raise RuntimeError("the observer did not list the cluster within 30 s")
        nodes = [item.metadata.name for item in core.list_node().items]
        load_before = os.getloadavg()
        audit.take(lambda c: False)
        began = audit.mark
        kube = _kube_events(core, timeline, audit, nodes, n)
        # every call the twin served while the events ran: the benchmark lists nothing, so a list is the observer polling
        during = read_audit(audit.kube_url, since=began)["calls"]
        observer.stop()
        alarm_s, alarm_missed = _alarm_events(target, audit, n)
    events: dict[str, Any] = {}
    for kind, seconds in kube["seconds"].items():
        events[kind] = {"measures": KINDS[kind], "unit": "ms", **summary_ms(seconds), "missed": kube["missed"][kind]}
    events["alarm-state"] = {"measures": KINDS["alarm-state"], "unit": "ms", **summary_ms(alarm_s),
                             "missed": alarm_missed}
    observer_lists = sum(1 for c in during if c["api"] == "kube" and c["verb"] == "list")
    return {"name": NAME, "tiny": tiny, "events_per_kind": n, "load_average": load_before,
            "twin_start_s": round(start_s, 2), "events": events,
            "observer_list_calls_during_events": observer_lists,
            "observer_list_calls_measures": "Kubernetes list calls the twin served while the kube "
                                            "events ran (the benchmark makes none: 0 means the observer only watched)"}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for kind, e in result["events"].items():
        watched = kind != "alarm-state"
        what = f"reaction: {kind} ({'watch' if watched else 'poll every 0.25 s'})"
        if e["count"] == 0:
            out.append((what, f"no event recorded ({e['missed']} missed)", "FAILED"))
            continue
        figures = (f"twin received change -> harness record: p50 {e['p50_ms']:.2f} ms, p99 {e['p99_ms']:.2f} ms, "
                   f"max {e['max_ms']:.2f} ms over {e['count']} events" + (f", {e['missed']} missed" if e["missed"] else ""))
        if watched:
            verdict = "watch (p50 < 20 ms)" if e["p50_ms"] < 20 else "slow for a watch"
        else:
            verdict = "within one poll" if e["p99_ms"] <= 400 else "slower than one poll"
        out.append((what, figures, verdict))
    out.append(("reaction: observer list calls during the kube events",
                f"{result['observer_list_calls_during_events']} list calls (audit log)",
                "watches only" if result["observer_list_calls_during_events"] == 0 else "polled"))
    return out
