"""One cluster's object store: what etcd plus the API server's watch cache are to a real cluster.

Objects are plain JSON dicts exactly as the API serves them. Every change bumps a cluster-wide
resourceVersion and is fanned out to watchers; a bounded history lets a watch resume from a recent
resourceVersion and answers 410 Gone when it is too old, as a real API server does. A mutation log
records every change with who made it, so tests can prove that a dry run touched nothing.
"""
from __future__ import annotations

import asyncio
import copy
import datetime as dt
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    group: str          # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return self.version if not self.group else f"{self.group}/{self.version}"


RESOURCES: dict[str, Resource] = {r.plural if r.group in ("",) else f"{r.plural}.{r.group}": r for r in [
    Resource("", "v1", "namespaces", "Namespace", False),
    Resource("", "v1", "nodes", "Node", False),
    Resource("", "v1", "pods", "Pod", True),
    Resource("", "v1", "events", "Event", True),
    Resource("", "v1", "services", "Service", True),
    Resource("", "v1", "configmaps", "ConfigMap", True),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True),
    Resource("apps", "v1", "deployments", "Deployment", True),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    Resource("events.k8s.io", "v1", "events", "Event", True),
]}


def resource(name: str) -> Resource:
    """Look a resource up by plural, or plural.group for non-core groups ("daemonsets.apps")."""
    return RESOURCES[name]


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conflict(Exception):
    pass


class NotFound(Exception):
    pass


class Gone(Exception):
    """The requested resourceVersion is older than the watch history."""


@dataclass
class WatchEvent:
    rv: int
    type: str            # ADDED | MODIFIED | DELETED
    resource: Resource
    obj: Obj
    prev: Obj | None = None   # the object before a MODIFIED change: lets a filtered watch see it leave


@dataclass
class Mutation:
    at: float
    verb: str
    resource: str
    namespace: str | None
    name: str
    actor: str


@dataclass
class _Watcher:
    resource: Resource
    namespace: str | None
    queue: asyncio.Queue
    loop: asyncio.AbstractEventLoop


class ObjectStore:
    HISTORY = 20000

    def __init__(self, cluster: str):
        self.cluster = cluster
        self._lock = threading.RLock()
        self._rv = 1
        self._objects: dict[Resource, dict[tuple[str | None, str], Obj]] = {r: {} for r in RESOURCES.values()}
        self._history: deque[WatchEvent] = deque(maxlen=self.HISTORY)
        self._watchers: list[_Watcher] = []
        self.mutations: list[Mutation] = []
        self.listeners: list[Callable[[WatchEvent], None]] = []   # synchronous hooks for controllers

    # -- reads -------------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        with self._lock:
            obj = self._objects[res].get((namespace if res.namespaced else None, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, res: Resource, namespace: str | None = None,
             predicate: Callable[[Obj], bool] | None = None) -> tuple[list[Obj], int]:
        with self._lock:
            items = [copy.deepcopy(o) for (ns, _), o in sorted(self._objects[res].items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
                     if (namespace is None or ns == namespace) and (predicate is None or predicate(o))]
            return items, self._rv

    def iter_raw(self, res: Resource) -> Iterable[Obj]:
        """Objects without copying, for controllers that only read."""
        with self._lock:
            return list(self._objects[res].values())

    # -- writes ------------------------------------------------------------------------------------
    def create(self, res: Resource, obj: Obj, actor: str = "twin") -> Obj:
        with self._lock:
            meta = obj.setdefault("metadata", {})
            ns = meta.get("namespace") if res.namespaced else None
            if res.namespaced and not ns:
                ns = meta["namespace"] = "default"
            if "generateName" in meta and not meta.get("name"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            key = (ns, meta["name"])
            if key in self._objects[res]:
                raise Conflict(f"{res.plural} {meta['name']!r} already exists")
            obj["apiVersion"] = res.api_version
            obj["kind"] = res.kind
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta.setdefault("generation", 1)
            meta.setdefault("labels", {})
            meta.setdefault("annotations", {})
            self._objects[res][key] = obj
            self._commit("ADDED", res, obj, "create", actor)
            return copy.deepcopy(obj)

    def replace(self, res: Resource, obj: Obj, actor: str = "twin", expect_rv: str | None = None) -> Obj:
        with self._lock:
            meta = obj["metadata"]
            key = (meta.get("namespace") if res.namespaced else None, meta["name"])
            current = self._objects[res].get(key)
            if current is None:
                raise NotFound(meta["name"])
            if expect_rv and expect_rv != current["metadata"]["resourceVersion"]:
                raise Conflict(f"the object has been modified; resourceVersion {expect_rv} is stale")
            for keep in ("uid", "creationTimestamp"):
                meta[keep] = current["metadata"][keep]
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            self._objects[res][key] = obj
            self._commit("MODIFIED", res, obj, "update", actor, prev=current)
            return copy.deepcopy(obj)

    def mutate(self, res: Resource, namespace: str | None, name: str, change: Callable[[Obj], Any],
               actor: str = "twin") -> Obj:
        """Apply `change` to a copy of the object in place and store it if it changed anything."""
        with self._lock:
            key = (namespace if res.namespaced else None, name)
            current = self._objects[res].get(key)
            if current is None:
                raise NotFound(name)
            updated = copy.deepcopy(current)
            change(updated)
            updated["metadata"].pop("resourceVersion", None)
            stripped = {**current, "metadata": {k: v for k, v in current["metadata"].items() if k != "resourceVersion"}}
            if updated == stripped:
                return copy.deepcopy(current)
            self._objects[res][key] = updated
            self._commit("MODIFIED", res, updated, "patch", actor, prev=current)
            return copy.deepcopy(updated)

    def delete(self, res: Resource, namespace: str | None, name: str, actor: str = "twin") -> Obj:
        """Remove the object now (the API layer implements graceful deletion on top of this)."""
        with self._lock:
            key = (namespace if res.namespaced else None, name)
            obj = self._objects[res].pop(key, None)
            if obj is None:
                raise NotFound(name)
            self._commit("DELETED", res, obj, "delete", actor)
            return copy.deepcopy(obj)

    def _commit(self, type_: str, res: Resource, obj: Obj, verb: str, actor: str, prev: Obj | None = None) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        event = WatchEvent(self._rv, type_, res, copy.deepcopy(obj), prev)
        self._history.append(event)
        self.mutations.append(Mutation(now_ts(), verb, res.plural, obj["metadata"].get("namespace"),
                                       obj["metadata"]["name"], actor))
        for w in list(self._watchers):
            if w.resource == res and (w.namespace is None or w.namespace == obj["metadata"].get("namespace")):
                _deliver(w, event)
        for listener in list(self.listeners):
            listener(event)

    # -- watch -------------------------------------------------------------------------------------
    def watch(self, res: Resource, namespace: str | None, since_rv: int | None) -> tuple[_Watcher, list[WatchEvent]]:
        """Register a watcher; returns it with the history events after `since_rv` (raises Gone if too old)."""
        with self._lock:
            backlog: list[WatchEvent] = []
            if since_rv is not None and since_rv < self._rv:
                oldest = self._history[0].rv if self._history else self._rv + 1
                if since_rv + 1 < oldest:
                    raise Gone(f"too old resource version: {since_rv} ({oldest - 1})")
                backlog = [e for e in self._history if e.rv > since_rv and e.resource == res
                           and (namespace is None or e.obj["metadata"].get("namespace") == namespace)]
            watcher = _Watcher(res, namespace, asyncio.Queue(), asyncio.get_running_loop())
            self._watchers.append(watcher)
            return watcher, backlog

    def unwatch(self, watcher: _Watcher) -> None:
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)


def _deliver(w: _Watcher, event: WatchEvent) -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is w.loop:
        w.queue.put_nowait(event)
    else:
        w.loop.call_soon_threadsafe(w.queue.put_nowait, event)


def now_ts() -> float:
    import time
    return time.time()
