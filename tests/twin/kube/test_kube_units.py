"""Selector grammar, patch semantics, budget arithmetic and printing, without a server."""
from __future__ import annotations

import pytest

from harness.twin.kube import disruption, objects as o, patch, tables
from harness.twin.kube.selectors import SelectorError, field_value, parse_label_selector, predicate
from harness.twin.kube.store import ObjectStore, resource


@pytest.mark.parametrize("selector,labels,expected", [
    ("app=triton", {"app": "triton"}, True),
    ("app==triton", {"app": "x"}, False),
    ("app!=triton", {}, True),
    ("app in (a, triton),tier", {"app": "triton", "tier": "gpu"}, True),
    ("app in (a, triton),tier", {"app": "triton"}, False),
    ("app notin (triton)", {}, True),
    ("app notin (triton)", {"app": "triton"}, False),
    ("!spot", {"app": "x"}, True),
    ("!spot", {"spot": ""}, False),
    ("", {"anything": "1"}, True),
])
def test_label_selectors(selector: str, labels: dict, expected: bool) -> None:
    assert predicate(selector, None)({"metadata": {"labels": labels}}) is expected


def test_bad_selectors_raise() -> None:
    for bad in ("a in (b", "=x", "a b c"):
        with pytest.raises(SelectorError):
            parse_label_selector(bad) if bad != "=x" else predicate(None, bad)


def test_field_selectors() -> None:
    pod = o.pod("p", "ns", containers=[o.container("c", "i")], node_name="n1")
    assert predicate(None, "spec.nodeName=n1,metadata.namespace=ns,status.phase!=Failed")(pod)
    assert not predicate(None, "spec.nodeName=n2")(pod)
    node = {"metadata": {"name": "n"}, "spec": {}}
    assert field_value(node, "spec.unschedulable") == "false"
    node["spec"]["unschedulable"] = True
    assert predicate(None, "spec.unschedulable=true")(node)


def test_strategic_merge_keys_and_directives() -> None:
    node = {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "True"}]},
            "metadata": {"finalizers": ["f1"]}}
    out = patch.strategic_merge_patch(node, {
        "spec": {"unschedulable": True, "taints": [{"key": "b", "effect": "NoExecute"}]},
        "status": {"$setElementOrder/conditions": [{"type": "Ready"}],
                   "conditions": [{"type": "Ready", "status": "False"}, {"type": "X", "$patch": "delete"}]},
        "metadata": {"finalizers": ["f2"]}})
    assert out["spec"] == {"unschedulable": True, "taints": [{"key": "b", "effect": "NoExecute"}]}  # taints replace
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "False"}]
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    assert node["spec"]["taints"] == [{"key": "a", "effect": "NoSchedule"}]    # input untouched


def test_merge_and_json_patch() -> None:
    doc = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"list": [1, 2]}}
    assert patch.merge_patch(doc, {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"list": [9]}}) == \
        {"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"list": [9]}}
    out = patch.json_patch(doc, [{"op": "add", "path": "/metadata/labels/x~1y", "value": "z"},
                                 {"op": "remove", "path": "/spec/list/0"},
                                 {"op": "add", "path": "/spec/list/-", "value": 3},
                                 {"op": "test", "path": "/metadata/labels/a", "value": "1"},
                                 {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/d"},
                                 {"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/e"},
                                 {"op": "replace", "path": "/metadata/labels/a", "value": "0"}])
    assert out == {"metadata": {"labels": {"a": "0", "x/y": "z", "d": "1", "e": "2"}}, "spec": {"list": [2, 3]}}
    with pytest.raises(patch.PatchError):
        patch.json_patch(doc, [{"op": "test", "path": "/metadata/labels/a", "value": "nope"}])
    with pytest.raises(patch.PatchError):
        patch.apply("text/plain", doc, {})


def _budget_fleet(pdb_kwargs: dict, replicas: int = 4, ready: int = 4) -> tuple[ObjectStore, dict]:
    s = ObjectStore("c")
    dep = s.create(resource("deployments.apps"), o.deployment("d", "ns", selector={"app": "a"}, replicas=replicas,
                                                              containers=[o.container("c", "i")]))
    rs = s.create(resource("replicasets.apps"), o.replicaset(dep))
    for i in range(replicas):
        s.create(resource("pods"), o.pod_for(rs, f"p{i}", node_name="n", ready=i < ready))
    pdb = s.create(resource("poddisruptionbudgets.policy"), o.poddisruptionbudget("b", "ns", selector={"app": "a"}, **pdb_kwargs))
    return s, pdb


@pytest.mark.parametrize("kwargs,ready,expected", [
    ({"max_unavailable": 1}, 4, (4, 3, 1, 4)),
    ({"max_unavailable": "25%"}, 4, (4, 3, 1, 4)),
    ({"max_unavailable": "30%"}, 4, (4, 2, 2, 4)),     # percentages of maxUnavailable round up
    ({"min_available": 4}, 4, (4, 4, 0, 4)),
    ({"min_available": "50%"}, 3, (3, 2, 1, 4)),
    ({"max_unavailable": 1}, 2, (2, 3, 0, 4)),
])
def test_budget_arithmetic(kwargs: dict, ready: int, expected: tuple) -> None:
    s, pdb = _budget_fleet(kwargs, ready=ready)
    st = disruption.budget_status(s, pdb)
    assert (st.current_healthy, st.desired_healthy, st.disruptions_allowed, st.expected_pods) == expected


def test_unhealthy_pod_may_go_while_budget_is_met() -> None:
    s, _ = _budget_fleet({"max_unavailable": 1}, replicas=5, ready=4)
    assert disruption.decide_eviction(s, "ns", "p4").allowed           # not Ready, 4 healthy >= 4 desired
    assert disruption.decide_eviction(s, "ns", "p0").code == 429       # a healthy one may not: 0 allowed
    s.mutate(resource("pods"), "ns", "p4", lambda p: o.set_pod_ready(p, True))
    assert disruption.decide_eviction(s, "ns", "p0").code == 201
    s.mutate(resource("pods"), "ns", "p0", lambda p: p["metadata"].update(deletionTimestamp=o.now_rfc3339()))
    assert disruption.decide_eviction(s, "ns", "p1").code == 429
    assert disruption.decide_eviction(s, "ns", "p0").code == 201       # already terminating: accepted
    disruption.refresh_statuses(s)
    assert s.get(resource("poddisruptionbudgets.policy"), "ns", "b")["status"]["disruptionsAllowed"] == 0


def test_printing() -> None:
    pod = o.pod("p", "ns", containers=[o.container("c", "i")], node_name="n")
    assert tables.pod_status(pod) == "Running"
    pod["metadata"]["deletionTimestamp"] = o.now_rfc3339()
    assert tables.pod_status(pod) == "Terminating"
    assert tables.pod_status(o.pod("q", "ns", containers=[o.container("c", "i")], phase="Pending", ready=False)) == "Pending"
    creating = o.pod("r", "ns", containers=[o.container("c", "i")], node_name="n", phase="Pending", ready=False)
    assert tables.pod_status(creating) == "ContainerCreating"
    import datetime as dt
    now = dt.datetime(2026, 1, 2, 0, 0, 0, tzinfo=dt.timezone.utc)
    assert tables.human_age("2026-01-01T23:59:30Z", now) == "30s"
    assert tables.human_age("2026-01-01T23:55:30Z", now) == "4m30s"
    assert tables.human_age("2026-01-01T20:00:00Z", now) == "4h"
    assert tables.human_age("2025-12-30T00:00:00Z", now) == "3d"


def test_node_status_column() -> None:
    node = o.node("n", instance_id="i", instance_type="g7.48xlarge", zone="z", region="r", nodegroup="g",
                  capacity_type="SPOT", private_ip="10.0.0.1", gpus=8)
    assert tables.node_status(node) == "Ready"
    o.set_node_condition(node, "Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    node["spec"]["unschedulable"] = True
    assert tables.node_status(node) == "NotReady,SchedulingDisabled"
    node["status"]["conditions"] = []
    assert tables.node_status(node) == "Unknown,SchedulingDisabled"
