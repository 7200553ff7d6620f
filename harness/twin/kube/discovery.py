"""Discovery documents: what kubectl and client-go read before any other call.

The core group's APIResourceList must say `groupVersion: "v1"`, and `pods/eviction` must be listed
with group `policy`, version `v1`, kind `Eviction`: kubectl drain looks for exactly that entry and,
without it, falls back to plain DELETE and bypasses every PodDisruptionBudget.
"""
from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

KUBE_VERSION = {
    "major": "1", "minor": "32", "emulationMajor": "1", "emulationMinor": "32",
    "gitVersion": "v1.32.3-eks-473151a", "gitCommit": "4df5b4ab8cdd4c4b1a4bb6b9ba0c2a07bf9b6dc1",
    "gitTreeState": "clean", "buildDate": "2025-04-16T20:05:29Z", "goVersion": "go1.23.6",
    "compiler": "gc", "platform": "linux/amd64",
}

_RW = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _r(name: str, singular: str, kind: str, namespaced: bool, verbs: list[str] | None = None,
       short: list[str] | None = None, categories: list[str] | None = None, group: str | None = None,
       version: str | None = None) -> Obj:
    out: Obj = {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
                "verbs": verbs if verbs is not None else _RW}
    if short:
        out["shortNames"] = short
    if categories:
        out["categories"] = categories
    if group is not None:
        out["group"] = group
    if version is not None:
        out["version"] = version
    return out


RESOURCE_LISTS: dict[str, list[Obj]] = {
    "v1": [
        _r("configmaps", "configmap", "ConfigMap", True, short=["cm"]),
        _r("events", "event", "Event", True, short=["ev"]),
        _r("namespaces", "namespace", "Namespace", False, ["create", "delete", "get", "list", "patch", "update", "watch"], ["ns"]),
        _r("namespaces/status", "", "Namespace", False, ["get", "patch", "update"]),
        _r("nodes", "node", "Node", False, short=["no"]),
        _r("nodes/proxy", "", "NodeProxyOptions", False, ["create", "delete", "get", "patch", "update"]),
        _r("nodes/status", "", "Node", False, ["get", "patch", "update"]),
        _r("pods", "pod", "Pod", True, short=["po"], categories=["all"]),
        _r("pods/eviction", "", "Eviction", True, ["create"], group="policy", version="v1"),
        _r("pods/exec", "", "PodExecOptions", True, ["create", "get"]),
        _r("pods/log", "", "Pod", True, ["get"]),
        _r("pods/proxy", "", "PodProxyOptions", True, ["create", "delete", "get", "patch", "update"]),
        _r("pods/status", "", "Pod", True, ["get", "patch", "update"]),
        _r("services", "service", "Service", True, short=["svc"], categories=["all"]),
    ],
    "apps/v1": [
        _r("daemonsets", "daemonset", "DaemonSet", True, short=["ds"], categories=["all"]),
        _r("daemonsets/status", "", "DaemonSet", True, ["get", "patch", "update"]),
        _r("deployments", "deployment", "Deployment", True, short=["deploy"], categories=["all"]),
        _r("deployments/scale", "", "Scale", True, ["get", "patch", "update"], group="autoscaling", version="v1"),
        _r("deployments/status", "", "Deployment", True, ["get", "patch", "update"]),
        _r("replicasets", "replicaset", "ReplicaSet", True, short=["rs"], categories=["all"]),
        _r("replicasets/scale", "", "Scale", True, ["get", "patch", "update"], group="autoscaling", version="v1"),
        _r("replicasets/status", "", "ReplicaSet", True, ["get", "patch", "update"]),
    ],
    "policy/v1": [
        _r("poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True, short=["pdb"]),
        _r("poddisruptionbudgets/status", "", "PodDisruptionBudget", True, ["get", "patch", "update"]),
    ],
    "events.k8s.io/v1": [
        _r("events", "event", "Event", True, short=["ev"]),
    ],
}

GROUPS = ["apps", "events.k8s.io", "policy"]


def api_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group(name: str) -> Obj:
    gv = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": [gv], "preferredVersion": gv}


def api_group_list() -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")} for g in GROUPS]}


def resource_list(group_version: str) -> Obj | None:
    resources = RESOURCE_LISTS.get(group_version)
    if resources is None:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def has_status_subresource(group_version: str, plural: str) -> bool:
    return any(r["name"] == f"{plural}/status" for r in RESOURCE_LISTS.get(group_version, []))
