"""PodDisruptionBudgets: the disruption controller's arithmetic and the eviction decision.

A drain is only as safe as the budget it honours: the eviction subresource answers 429 while evicting
a pod would leave fewer healthy pods than the budget wants, and kubectl drain retries until it may.
"Healthy" is what the disruption controller counts: Ready and not already terminating.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.twin.kube.objects import pod_is_ready
from harness.twin.kube.selectors import label_selector_from_dict, labels_match
from harness.twin.kube.store import ObjectStore, resource

Obj = dict[str, Any]

PODS = resource("pods")
PDBS = resource("poddisruptionbudgets.policy")
REPLICASETS = resource("replicasets.apps")
DEPLOYMENTS = resource("deployments.apps")


@dataclass(frozen=True)
class BudgetStatus:
    current_healthy: int
    desired_healthy: int
    disruptions_allowed: int
    expected_pods: int

    def as_status(self) -> Obj:
        return {"currentHealthy": self.current_healthy, "desiredHealthy": self.desired_healthy,
                "disruptionsAllowed": self.disruptions_allowed, "expectedPods": self.expected_pods}


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_healthy(pod: Obj) -> bool:
    return not is_terminating(pod) and pod.get("status", {}).get("phase") == "Running" and pod_is_ready(pod)


def pods_of(store: ObjectStore, pdb: Obj) -> list[Obj]:
    reqs = label_selector_from_dict(pdb["spec"].get("selector"))
    ns = pdb["metadata"]["namespace"]
    return [p for p in store.iter_raw(PODS)
            if p["metadata"].get("namespace") == ns and labels_match(reqs, p["metadata"].get("labels"))
            and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]


def _expected(store: ObjectStore, pods: list[Obj]) -> int:
    """Expected pods from the owning controllers' scale, as the disruption controller computes it."""
    seen: dict[str, int] = {}
    loose = 0
    for p in pods:
        ref = next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
        if ref is None:
            loose += 1
            continue
        if ref["uid"] in seen:
            continue
        scale = None
        ns = p["metadata"]["namespace"]
        if ref["kind"] == "ReplicaSet":
            rs = store.get(REPLICASETS, ns, ref["name"])
            scale = rs["spec"].get("replicas") if rs else None
        elif ref["kind"] == "Deployment":
            dep = store.get(DEPLOYMENTS, ns, ref["name"])
            scale = dep["spec"].get("replicas") if dep else None
        if scale is None:
            seen[ref["uid"]] = sum(1 for q in pods if any(r.get("uid") == ref["uid"] for r in q["metadata"].get("ownerReferences") or []))
        else:
            seen[ref["uid"]] = int(scale)
    return sum(seen.values()) + loose


def _int_or_percent(value: int | str, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        frac = int(value[:-1]) * total / 100
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(value)


def budget_status(store: ObjectStore, pdb: Obj) -> BudgetStatus:
    pods = pods_of(store, pdb)
    healthy = sum(1 for p in pods if is_healthy(p))
    spec = pdb["spec"]
    if "maxUnavailable" in spec and spec["maxUnavailable"] is not None:
        expected = _expected(store, pods)
        desired = max(0, expected - _int_or_percent(spec["maxUnavailable"], expected, round_up=True))
    else:
        min_available = spec.get("minAvailable", 1)
        if isinstance(min_available, str) and min_available.endswith("%"):
            expected = _expected(store, pods)
            desired = _int_or_percent(min_available, expected, round_up=True)
        else:
            expected = len(pods)
            desired = int(min_available)
    return BudgetStatus(healthy, desired, max(0, healthy - desired), expected)


def refresh_statuses(store: ObjectStore, namespace: str | None = None, actor: str = "disruption-controller") -> None:
    """Write every budget's status (a no-op write is skipped by the store, so this is cheap to call often)."""
    for pdb in list(store.iter_raw(PDBS)):
        ns = pdb["metadata"]["namespace"]
        if namespace is not None and ns != namespace:
            continue
        computed = budget_status(store, pdb).as_status()

        def change(obj: Obj, computed: Obj = computed) -> None:
            st = obj.setdefault("status", {})
            st.update(computed)
            st.setdefault("disruptedPods", {})
            st["observedGeneration"] = obj["metadata"].get("generation", 1)
            allowed = computed["disruptionsAllowed"] > 0
            cond = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
                    "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
                    "observedGeneration": obj["metadata"].get("generation", 1)}
            old = next((c for c in st.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
            cond["lastTransitionTime"] = (old["lastTransitionTime"] if old and old["status"] == cond["status"]
                                          else _now())
            st["conditions"] = [cond]
        try:
            store.mutate(PDBS, ns, pdb["metadata"]["name"], change, actor=actor)
        except Exception:   # deleted concurrently
            continue


def _now() -> str:
    from harness.twin.kube.objects import now_rfc3339
    return now_rfc3339()


@dataclass(frozen=True)
class EvictionDecision:
    allowed: bool
    code: int                      # 201, 404, 429, 500
    message: str
    budget: str | None = None


def decide_eviction(store: ObjectStore, namespace: str, name: str) -> EvictionDecision:
    """What the eviction subresource answers for this pod right now (no side effects)."""
    pod = store.get(PODS, namespace, name)
    if pod is None:
        return EvictionDecision(False, 404, f'pods "{name}" not found')
    if is_terminating(pod) or pod.get("status", {}).get("phase") in ("Succeeded", "Failed", "Pending"):
        return EvictionDecision(True, 201, "")
    budgets = [b for b in store.iter_raw(PDBS) if b["metadata"]["namespace"] == namespace
               and labels_match(label_selector_from_dict(b["spec"].get("selector")), pod["metadata"].get("labels"))]
    if not budgets:
        return EvictionDecision(True, 201, "")
    if len(budgets) > 1:
        return EvictionDecision(False, 500, "This pod has more than one PodDisruptionBudget, which the eviction "
                                            "subresource does not support.")
    pdb = budgets[0]
    st = budget_status(store, pdb)
    pdb_name = pdb["metadata"]["name"]
    # unhealthyPodEvictionPolicy IfHealthyBudget: a not-ready pod may go while the budget is met
    if not is_healthy(pod) and st.current_healthy >= st.desired_healthy > 0:
        return EvictionDecision(True, 201, "", pdb_name)
    if st.disruptions_allowed > 0:
        return EvictionDecision(True, 201, "", pdb_name)
    return EvictionDecision(False, 429, f"The disruption budget {pdb_name} needs {st.desired_healthy} healthy pods "
                                        f"and has {st.current_healthy} currently", pdb_name)
