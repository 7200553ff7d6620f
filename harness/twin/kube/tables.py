"""Server-side printing: the meta.k8s.io/v1 Table kubectl asks for with `Accept: ...;as=Table`.

Without it kubectl prints only NAME and AGE; with it `get nodes` shows STATUS (Ready, NotReady,
SchedulingDisabled) and `get pods` shows READY, STATUS (Terminating, Pending...) exactly as against EKS.
Each row carries the object's metadata (PartialObjectMetadata) so `-L label` and `-A` work.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from harness.twin.kube.objects import node_condition

Obj = dict[str, Any]


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "", desc: str = "") -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": desc or name, "priority": priority}


def human_age(ts: str | None, now: dt.datetime | None = None) -> str:
    """kubectl's duration.HumanDuration."""
    if not ts:
        return "<unknown>"
    try:
        then = dt.datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return "<unknown>"
    secs = int(((now or dt.datetime.now(dt.timezone.utc)) - then).total_seconds())
    if secs < 0:
        secs = 0
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        return f"{minutes}m{secs % 60}s" if secs % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _age(obj: Obj) -> str:
    return human_age(obj["metadata"].get("creationTimestamp"))


# -- per-kind printers ----------------------------------------------------------------------------
def node_status(obj: Obj) -> str:
    ready = node_condition(obj, "Ready")
    # kubectl's printer: a Ready condition that is not True (False or Unknown) reads NotReady
    state = "Unknown" if ready is None else ("Ready" if ready["status"] == "True" else "NotReady")
    if obj.get("spec", {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    return state


def _node_roles(obj: Obj) -> str:
    roles = sorted(k.split("/", 1)[1] for k in obj["metadata"].get("labels", {})
                   if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1])
    return ",".join(roles) or "<none>"


def _node_ip(obj: Obj, kind: str) -> str:
    return next((a["address"] for a in obj.get("status", {}).get("addresses", []) if a["type"] == kind), "<none>")


NODE_COLUMNS = [_col("Name", desc="Name must be unique within a namespace."), _col("Status"), _col("Roles"),
                _col("Age"), _col("Version"), _col("Internal-IP", priority=1), _col("External-IP", priority=1),
                _col("OS-Image", priority=1), _col("Kernel-Version", priority=1),
                _col("Container-Runtime", priority=1)]


def _node_row(obj: Obj) -> list[Any]:
    info = obj.get("status", {}).get("nodeInfo", {})
    return [obj["metadata"]["name"], node_status(obj), _node_roles(obj), _age(obj), info.get("kubeletVersion", ""),
            _node_ip(obj, "InternalIP"), _node_ip(obj, "ExternalIP"), info.get("osImage", ""),
            info.get("kernelVersion", ""), info.get("containerRuntimeVersion", "")]


def pod_status(obj: Obj) -> str:
    """The STATUS column as kubectl computes it (Terminating wins, then waiting reasons, then the phase)."""
    status = obj.get("status", {})
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if obj["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


POD_COLUMNS = [_col("Name", desc="Name must be unique within a namespace."), _col("Ready"), _col("Status"),
               _col("Restarts", "string"), _col("Age"), _col("IP", priority=1), _col("Node", priority=1),
               _col("Nominated Node", priority=1), _col("Readiness Gates", priority=1)]


def _pod_row(obj: Obj) -> list[Any]:
    status = obj.get("status", {})
    statuses = status.get("containerStatuses") or []
    total = len(obj.get("spec", {}).get("containers", []))
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(cs.get("restartCount", 0) for cs in statuses)
    return [obj["metadata"]["name"], f"{ready}/{total}", pod_status(obj), str(restarts), _age(obj),
            status.get("podIP") or "<none>", obj.get("spec", {}).get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", "<none>"]


DEPLOYMENT_COLUMNS = [_col("Name"), _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                      _col("Age"), _col("Containers", priority=1), _col("Images", priority=1),
                      _col("Selector", priority=1)]


def _selector_text(obj: Obj) -> str:
    return ",".join(f"{k}={v}" for k, v in (obj.get("spec", {}).get("selector", {}).get("matchLabels") or {}).items())


def _containers(obj: Obj) -> tuple[str, str]:
    cs = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return ",".join(c["name"] for c in cs), ",".join(c.get("image", "") for c in cs)


def _deployment_row(obj: Obj) -> list[Any]:
    st, spec = obj.get("status", {}), obj.get("spec", {})
    names, images = _containers(obj)
    return [obj["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), _age(obj), names, images, _selector_text(obj)]


DAEMONSET_COLUMNS = [_col("Name"), _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                     _col("Up-to-date", "integer"), _col("Available", "integer"), _col("Node Selector"), _col("Age"),
                     _col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)]


def _daemonset_row(obj: Obj) -> list[Any]:
    st = obj.get("status", {})
    sel = obj.get("spec", {}).get("template", {}).get("spec", {}).get("nodeSelector") or {}
    names, images = _containers(obj)
    return [obj["metadata"]["name"], st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sel.items()) or "<none>", _age(obj), names, images, _selector_text(obj)]


REPLICASET_COLUMNS = [_col("Name"), _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                      _col("Age"), _col("Containers", priority=1), _col("Images", priority=1),
                      _col("Selector", priority=1)]


def _replicaset_row(obj: Obj) -> list[Any]:
    st = obj.get("status", {})
    names, images = _containers(obj)
    return [obj["metadata"]["name"], obj.get("spec", {}).get("replicas", 0), st.get("replicas", 0),
            st.get("readyReplicas", 0), _age(obj), names, images, _selector_text(obj)]


PDB_COLUMNS = [_col("Name"), _col("Min Available"), _col("Max Unavailable"), _col("Allowed Disruptions", "integer"),
               _col("Age")]


def _pdb_row(obj: Obj) -> list[Any]:
    spec = obj.get("spec", {})
    return [obj["metadata"]["name"], str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
            obj.get("status", {}).get("disruptionsAllowed", 0), _age(obj)]


EVENT_COLUMNS = [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message"),
                 _col("Source", priority=1), _col("First Seen", priority=1), _col("Count", "integer", 1),
                 _col("Name", priority=1)]


def _event_row(obj: Obj) -> list[Any]:
    inv = obj.get("involvedObject") or obj.get("regarding") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    first = obj.get("firstTimestamp") or last
    src = obj.get("source") or {}
    return [human_age(last), obj.get("type", ""), obj.get("reason", ""),
            f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}", obj.get("message") or obj.get("note") or "",
            ", ".join(v for v in (src.get("component"), src.get("host")) if v) or obj.get("reportingController", ""),
            human_age(first), obj.get("count", 1), obj["metadata"]["name"]]


NAMESPACE_COLUMNS = [_col("Name"), _col("Status"), _col("Age")]


def _namespace_row(obj: Obj) -> list[Any]:
    return [obj["metadata"]["name"], obj.get("status", {}).get("phase", "Active"), _age(obj)]


GENERIC_COLUMNS = [_col("Name"), _col("Age")]


def _generic_row(obj: Obj) -> list[Any]:
    return [obj["metadata"]["name"], _age(obj)]


PRINTERS: dict[str, tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    "nodes": (NODE_COLUMNS, _node_row), "pods": (POD_COLUMNS, _pod_row),
    "deployments": (DEPLOYMENT_COLUMNS, _deployment_row), "daemonsets": (DAEMONSET_COLUMNS, _daemonset_row),
    "replicasets": (REPLICASET_COLUMNS, _replicaset_row), "poddisruptionbudgets": (PDB_COLUMNS, _pdb_row),
    "events": (EVENT_COLUMNS, _event_row), "namespaces": (NAMESPACE_COLUMNS, _namespace_row),
}


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in accept


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(plural: str, objects: list[Obj], resource_version: int | str, include_object: str = "Metadata",
          with_headers: bool = True) -> Obj:
    columns, row = PRINTERS.get(plural, (GENERIC_COLUMNS, _generic_row))
    rows = []
    for obj in objects:
        r: Obj = {"cells": row(obj)}
        ro = _row_object(obj, include_object)
        if ro is not None:
            r["object"] = ro
        rows.append(r)
    out: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": str(resource_version)}, "rows": rows}
    out["columnDefinitions"] = columns if with_headers else []
    return out
