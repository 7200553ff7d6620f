"""The twin's Kubernetes API server: one Starlette app per cluster, over that cluster's ObjectStore.

Real kubectl and the official Python client talk to it unchanged, so the harness's Kubernetes code
path is the one it runs against EKS. The surface is what they use (see TWIN-WIRE.md): discovery,
list/get/watch with resourceVersion and label/field selectors, create/replace/three PATCH flavours,
status subresources, graceful pod deletion, the eviction subresource honouring PodDisruptionBudgets,
pod exec over the websocket channel protocol, pod proxy, and server-side Table printing for kubectl.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from harness.twin.kube import discovery, disruption, objects, patch, tables
from harness.twin.kube.exec import ExecHandler, ExecResult, serve_exec
from harness.twin.kube.selectors import SelectorError, predicate
from harness.twin.kube.store import RESOURCES, Conflict, Gone, NotFound, ObjectStore, Resource, WatchEvent

Obj = dict[str, Any]
ProxyHandler = Callable[[str, str, "int | None", str], Awaitable[tuple[int, str, bytes]]]

DEFAULT_WATCH_TIMEOUT_S = 1800.0
PODS = RESOURCES["pods"]
CORE_EVENTS = RESOURCES["events"]
V1_EVENTS = RESOURCES["events.events.k8s.io"]

_BY_GV: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES.values()}


class ApiError(Exception):
    """An error the API answers with a Status body."""

    def __init__(self, code: int, reason: str, message: str, **details: Any):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def response(self) -> JSONResponse:
        return JSONResponse(objects.status(self.code, self.reason, self.message, **self.details), status_code=self.code)


def _not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(res)} "{name}" not found', name=name, kind=res.plural,
                    group=res.group or None)


def _qualified(res: Resource) -> str:
    return res.plural if not res.group else f"{res.plural}.{res.group}"


@dataclass
class _Target:
    group: str
    version: str
    resource: Resource
    namespace: str | None
    name: str | None
    sub: str | None
    sub_path: str
    watch: bool


def _json(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")), status_code=status, media_type="application/json")


class KubeApi:
    """Request handling over one cluster's store; `build_kube_app` wraps it in Starlette routes."""

    def __init__(self, store: ObjectStore, exec_handler: ExecHandler | None, proxy_handler: ProxyHandler | None,
                 deletion_grace_seconds: float, log_handler: Callable[[str, str], str] | None = None):
        self.store = store
        self.log_handler = log_handler
        self.exec_handler = exec_handler
        self.proxy_handler = proxy_handler
        self.grace = deletion_grace_seconds
        self._timers: set[asyncio.Task] = set()

    # -- routing -----------------------------------------------------------------------------------
    def parse(self, prefix: str, rest: str) -> _Target | Obj:
        """Resolve a path under /api or /apis to a resource target, or to a discovery document."""
        parts = [p for p in rest.split("/") if p != ""] if rest else []
        if prefix == "api":
            if not parts:
                raise _Discovery("api")
            if parts[0] != "v1":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            group, version, remainder = "", "v1", parts[1:]
        else:
            if not parts:
                raise _Discovery("apis")
            if len(parts) == 1:
                raise _Discovery("group", parts[0])
            group, version, remainder = parts[0], parts[1], parts[2:]
        gv = version if not group else f"{group}/{version}"
        if not remainder:
            raise _Discovery("resources", gv)
        watch = False
        if remainder[0] == "watch":
            watch, remainder = True, remainder[1:]
        namespace = None
        if (remainder and remainder[0] == "namespaces" and len(remainder) >= 3
                and (group, version, remainder[2]) in _BY_GV):
            namespace, remainder = remainder[1], remainder[2:]
        if not remainder or (group, version, remainder[0]) not in _BY_GV:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = _BY_GV[(group, version, remainder[0])]
        name = remainder[1] if len(remainder) > 1 else None
        sub = remainder[2] if len(remainder) > 2 else None
        sub_path = "/".join(remainder[3:])
        if res.namespaced is False and namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _Target(group, version, res, namespace, name, sub, sub_path, watch)

    async def handle(self, request: Request) -> Response:
        prefix = request.url.path.split("/", 2)[1]
        try:
            try:
                target = self.parse(prefix, request.path_params.get("rest", ""))
            except _Discovery as d:
                return self.discovery(request, d)
            return await self.dispatch(request, target)
        except ApiError as e:
            return e.response()
        except SelectorError as e:
            return ApiError(400, "BadRequest", str(e)).response()
        except patch.PatchError as e:
            return ApiError(422, "Invalid", str(e)).response()

    def discovery(self, request: Request, d: "_Discovery") -> Response:
        if d.kind == "api":
            return _json(discovery.api_versions(f"{request.url.hostname}:{request.url.port}"))
        if d.kind == "apis":
            return _json(discovery.api_group_list())
        if d.kind == "group":
            if d.arg not in discovery.GROUPS:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(discovery.api_group(d.arg))
        doc = discovery.resource_list(d.arg)
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(doc)

    async def dispatch(self, request: Request, t: _Target) -> Response:
        method = request.method
        q = request.query_params
        if t.name is None:
            if method == "GET":
                if t.watch or q.get("watch") in ("true", "1"):
                    return self.watch(request, t)
                return self.list(request, t)
            if method == "POST":
                return self.create(t, await _body(request), dry_run=_dry(request))
            if method == "DELETE":
                return await self.delete_collection(request, t)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        if t.sub in (None, "status"):
            if method == "GET":
                return self.get(request, t)
            if method == "PUT":
                return self.replace(t, await _body(request), dry_run=_dry(request))
            if method == "PATCH":
                return self.patch(t, request.headers.get("content-type", ""), await _body(request), _dry(request))
            if method == "DELETE" and t.sub is None:
                return await self.delete(t, await _body(request, allow_empty=True), request, _dry(request))
        elif t.sub == "scale" and t.resource.plural in ("deployments", "replicasets") and method in ("GET", "PUT", "PATCH"):
            return await self.scale(request, t)
        elif t.resource is PODS and t.sub == "eviction" and method == "POST":
            return await self.evict(t, await _body(request, allow_empty=True), _dry(request))
        elif t.resource is PODS and t.sub == "proxy":
            return await self.proxy(t)
        elif t.resource is PODS and t.sub == "log" and method == "GET":
            self._must_get(t.resource, t.namespace, t.name)
            return PlainTextResponse(self.log_handler(t.namespace, t.name) if self.log_handler else "")
        elif t.resource is PODS and t.sub in ("exec", "attach"):
            raise ApiError(400, "BadRequest", "Upgrade request required")
        raise ApiError(405, "MethodNotAllowed", f"{method} {t.sub or ''} is not supported")

    # -- reads -------------------------------------------------------------------------------------
    def _storage(self, res: Resource) -> Resource:
        """events.k8s.io/v1 Events are the core Events seen in another shape, as in a real API server."""
        return CORE_EVENTS if res is V1_EVENTS else res

    def _present(self, res: Resource, obj: Obj) -> Obj:
        if res is V1_EVENTS and obj.get("apiVersion") != "events.k8s.io/v1":
            return objects.core_event_to_v1(obj)
        if res is CORE_EVENTS and obj.get("apiVersion") == "events.k8s.io/v1":
            return objects.v1_event_to_core(obj)
        return obj

    def _must_get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(self._storage(res), namespace, name)
        if obj is None:
            raise _not_found(res, name)
        return self._present(res, obj)

    def _list_objects(self, t: _Target, request: Request) -> tuple[list[Obj], int]:
        q = request.query_params
        match = predicate(q.get("labelSelector"), q.get("fieldSelector"))
        items, rv = self.store.list(self._storage(t.resource), t.namespace)
        if t.resource in (CORE_EVENTS, V1_EVENTS):
            extra, _ = self.store.list(V1_EVENTS, t.namespace)   # written straight to the events.k8s.io bucket
            items = items + extra
        shown = [self._present(t.resource, o) for o in items]
        return [o for o in shown if match(o)], rv

    def list(self, request: Request, t: _Target) -> Response:
        items, rv = self._list_objects(t, request)
        accept = request.headers.get("accept")
        if tables.wants_table(accept):
            return _json(tables.table(t.resource.plural, items, rv, request.query_params.get("includeObject", "Metadata")))
        return _json(objects.list_of(t.resource.api_version, t.resource.kind, items, rv))

    def get(self, request: Request, t: _Target) -> Response:
        assert t.name is not None
        obj = self._must_get(t.resource, t.namespace, t.name)
        if tables.wants_table(request.headers.get("accept")):
            return _json(tables.table(t.resource.plural, [obj], obj["metadata"].get("resourceVersion", ""),
                                      request.query_params.get("includeObject", "Metadata")))
        return _json(obj)

    def watch(self, request: Request, t: _Target) -> Response:
        q = request.query_params
        match = predicate(q.get("labelSelector"), q.get("fieldSelector"))
        if t.name is not None:   # /watch/.../name
            name_match = match
            match = lambda o: o["metadata"]["name"] == t.name and name_match(o)  # noqa: E731
        timeout = DEFAULT_WATCH_TIMEOUT_S
        if q.get("timeoutSeconds"):
            try:
                timeout = float(q["timeoutSeconds"])
            except ValueError:
                raise ApiError(400, "BadRequest", "timeoutSeconds must be a number") from None
        rv_param = q.get("resourceVersion")
        as_table = tables.wants_table(request.headers.get("accept"))
        include = q.get("includeObject", "Metadata")
        storage = self._storage(t.resource)
        known: set[tuple[str | None, str]] = set()
        initial: list[tuple[str, Obj]] = []
        try:
            if rv_param in (None, "", "0"):
                items, rv = self.store.list(storage, t.namespace)
                watcher, backlog = self.store.watch(storage, t.namespace, since_rv=rv)
                for obj in items:
                    shown = self._present(t.resource, obj)
                    if match(shown):
                        initial.append(("ADDED", shown))
                        known.add(_key(shown))
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_param!r}") from None
                watcher, backlog = self.store.watch(storage, t.namespace, since_rv=since)
        except Gone as g:
            err = {"type": "ERROR", "object": objects.status(410, "Expired", str(g))}
            return Response(json.dumps(err) + "\n", media_type="application/json")

        def encode(type_: str, obj: Obj) -> bytes:
            payload = obj
            if as_table:
                payload = tables.table(t.resource.plural, [obj], obj["metadata"].get("resourceVersion", ""), include)
            return (json.dumps({"type": type_, "object": payload}, separators=(",", ":")) + "\n").encode()

        def translate(ev: WatchEvent) -> tuple[str, Obj] | None:
            """Selector-aware event type: an object entering the selection is ADDED, leaving it DELETED."""
            obj = self._present(t.resource, ev.obj)
            key, now_in = _key(obj), match(obj)
            was_known = key in known
            if ev.prev is not None:
                was_in = match(self._present(t.resource, ev.prev))
            else:
                was_in = was_known or (ev.type == "MODIFIED" and now_in)
            if ev.type == "DELETED":
                known.discard(key)
                return ("DELETED", obj) if (was_in or now_in) else None
            if now_in:
                known.add(key)
                return ("MODIFIED" if was_in and ev.type == "MODIFIED" else "ADDED", obj)
            known.discard(key)
            return ("DELETED", obj) if was_in else None

        async def stream() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            try:
                for type_, obj in initial:
                    yield encode(type_, obj)
                for ev in backlog:
                    if (out := translate(ev)) is not None:
                        yield encode(*out)
                while True:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return
                    try:
                        ev = await asyncio.wait_for(watcher.queue.get(), timeout=remaining)
                    except asyncio.TimeoutError:
                        return
                    if (out := translate(ev)) is not None:
                        yield encode(*out)
            finally:
                self.store.unwatch(watcher)

        return StreamingResponse(stream(), media_type="application/json")

    # -- writes ------------------------------------------------------------------------------------
    def create(self, t: _Target, body: Obj, dry_run: bool = False) -> Response:
        res = t.resource
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and not meta.get("generateName"):
            raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Required value: name or generateName is required",
                           kind=res.kind)
        if res.namespaced:
            if meta.get("namespace") and t.namespace and meta["namespace"] != t.namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = t.namespace or meta.get("namespace") or "default"
        for server_owned in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"):
            meta.pop(server_owned, None)
        if res is PODS:
            body.setdefault("status", {}).setdefault("phase", "Pending")
        storage = self._storage(res)
        if res is V1_EVENTS:
            body.setdefault("eventTime", objects.now_micro())
            body = objects.v1_event_to_core({**body, "apiVersion": "events.k8s.io/v1"})
        if dry_run:
            probe = copy.deepcopy(body)
            if probe["metadata"].get("generateName") and not probe["metadata"].get("name"):
                probe["metadata"]["name"] = probe["metadata"]["generateName"] + "dryrun"
            if self.store.get(storage, probe["metadata"].get("namespace"), probe["metadata"]["name"]) is not None:
                raise self._exists(res, probe["metadata"]["name"])
            probe.update(apiVersion=storage.api_version, kind=storage.kind)
            return _json(self._present(res, probe), 201)
        try:
            created = self.store.create(storage, body, actor="kube-api")
        except Conflict:
            raise self._exists(res, meta.get("name", "")) from None
        self._after_write(res)
        return _json(self._present(res, created), 201)

    def _exists(self, res: Resource, name: str) -> ApiError:
        return ApiError(409, "AlreadyExists", f'{_qualified(res)} "{name}" already exists', name=name,
                        kind=res.plural, group=res.group or None)

    def _conflict(self, res: Resource, name: str) -> ApiError:
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(res)} "{name}": the object '
                                         "has been modified; please apply your changes to the latest version and try again",
                        name=name, kind=res.plural, group=res.group or None)

    def _merge_for_write(self, t: _Target, current: Obj, proposed: Obj) -> Obj:
        """What an update may change: spec+metadata on the main resource, only status on /status."""
        if not isinstance(proposed, dict) or not isinstance(proposed.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        gv = t.resource.api_version
        if t.sub == "status":
            out = copy.deepcopy(current)
            out["status"] = copy.deepcopy(proposed.get("status", {}))
            return out
        out = copy.deepcopy(proposed)
        meta = out.setdefault("metadata", {})
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation"):
            if immutable in current["metadata"]:
                meta[immutable] = current["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        if discovery.has_status_subresource(gv, t.resource.plural) and "status" in current:
            out["status"] = copy.deepcopy(current["status"])
        if "spec" in current and out.get("spec") != current.get("spec"):
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        out["apiVersion"], out["kind"] = current["apiVersion"], current["kind"]
        return out

    def _write(self, t: _Target, new: Obj, expect_rv: str | None, dry_run: bool) -> Response:
        res, storage = t.resource, self._storage(t.resource)
        assert t.name is not None
        current = self.store.get(storage, t.namespace, t.name)
        if current is None:
            raise _not_found(res, t.name)
        if expect_rv and expect_rv != current["metadata"].get("resourceVersion"):
            raise self._conflict(res, t.name)
        if res is V1_EVENTS:
            new = objects.v1_event_to_core(new)
        if dry_run:
            return _json(self._present(res, new))

        def change(obj: Obj) -> None:
            obj.clear()
            obj.update(copy.deepcopy(new))
        try:
            updated = self.store.mutate(storage, t.namespace, t.name, change, actor="kube-api")
        except NotFound:
            raise _not_found(res, t.name) from None
        self._after_write(res)
        return _json(self._present(res, updated))

    def replace(self, t: _Target, body: Obj, dry_run: bool = False) -> Response:
        assert t.name is not None
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        if body.get("metadata", {}).get("name") not in (None, t.name):
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        current = self._must_get(t.resource, t.namespace, t.name)
        expect = body.get("metadata", {}).get("resourceVersion")
        return self._write(t, self._merge_for_write(t, current, body), expect, dry_run)

    def patch(self, t: _Target, content_type: str, body: Any, dry_run: bool = False) -> Response:
        assert t.name is not None
        current = self._must_get(t.resource, t.namespace, t.name)
        try:
            patched = patch.apply(content_type, current, body)
        except patch.PatchError as e:
            if "unsupported patch content type" in str(e):
                raise ApiError(415, "UnsupportedMediaType", str(e)) from None
            raise
        expect = None
        if isinstance(patched, dict):
            rv = patched.get("metadata", {}).get("resourceVersion")
            if rv and rv != current["metadata"].get("resourceVersion"):
                expect = rv
        return self._write(t, self._merge_for_write(t, current, patched), expect, dry_run)

    async def scale(self, request: Request, t: _Target) -> Response:
        """autoscaling/v1 Scale of a Deployment or ReplicaSet (`kubectl scale`); writes spec.replicas."""
        assert t.name is not None
        current = self._must_get(t.resource, t.namespace, t.name)
        scale = _scale_of(current)
        if request.method == "GET":
            return _json(scale)
        body = await _body(request)
        wanted = body if request.method == "PUT" else patch.apply(request.headers.get("content-type", ""), scale, body)
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", "Scale.spec.replicas: Invalid value: must be a non-negative integer")
        expect = (wanted.get("metadata") or {}).get("resourceVersion")
        if expect and expect != current["metadata"]["resourceVersion"]:
            raise self._conflict(t.resource, t.name)
        new = copy.deepcopy(current)
        new["spec"]["replicas"] = replicas
        main = _Target(t.group, t.version, t.resource, t.namespace, t.name, None, "", False)
        self._write(main, self._merge_for_write(main, current, new), None, _dry(request))
        return _json(_scale_of(self._must_get(t.resource, t.namespace, t.name)))

    # -- deletion ----------------------------------------------------------------------------------
    async def delete(self, t: _Target, body: Obj, request: Request, dry_run: bool = False) -> Response:
        assert t.name is not None
        options = body if isinstance(body, dict) else {}
        dry_run = dry_run or "All" in (options.get("dryRun") or [])   # DeleteOptions may carry it in the body
        grace = options.get("gracePeriodSeconds", request.query_params.get("gracePeriodSeconds"))
        policy = options.get("propagationPolicy") or request.query_params.get("propagationPolicy") or "Background"
        current = self._must_get(t.resource, t.namespace, t.name)
        precondition = (options.get("preconditions") or {})
        if precondition.get("uid") and precondition["uid"] != current["metadata"]["uid"]:
            raise self._conflict(t.resource, t.name)
        if dry_run:
            return _json(current)
        if t.resource is PODS:
            return _json(self.delete_pod(t.namespace or "default", t.name, None if grace is None else int(grace)))
        removed = self.store.delete(self._storage(t.resource), t.namespace, t.name, actor="kube-api")
        if policy != "Orphan":
            self._cascade(removed["metadata"]["uid"])
        self._after_write(t.resource)
        return _json(objects.success_status({"name": t.name, "group": t.resource.group, "kind": t.resource.plural,
                                             "uid": removed["metadata"]["uid"]}))

    def delete_pod(self, namespace: str, name: str, grace_seconds: int | None = None, actor: str = "kube-api") -> Obj:
        """Graceful deletion: deletionTimestamp now (the pod shows Terminating), gone after the grace lag.

        gracePeriodSeconds=0 removes it at once, as `kubectl delete --grace-period=0 --force` does, and so does
        a pod bound to no node (the API server's own rule: no kubelet would ever confirm its exit).
        """
        current = self.store.get(PODS, namespace, name)
        if current is None:
            raise _not_found(PODS, name)
        if grace_seconds == 0 or not current["spec"].get("nodeName"):    # unbound: no kubelet to wait for
            removed = self.store.delete(PODS, namespace, name, actor=actor)
            self._after_write(PODS)
            return removed
        if current["metadata"].get("deletionTimestamp"):
            return current
        period = grace_seconds if grace_seconds is not None else current["spec"].get("terminationGracePeriodSeconds", 30)

        def mark(obj: Obj) -> None:
            obj["metadata"]["deletionTimestamp"] = objects.now_rfc3339()
            obj["metadata"]["deletionGracePeriodSeconds"] = period
        marked = self.store.mutate(PODS, namespace, name, mark, actor=actor)
        self._after_write(PODS)
        uid = marked["metadata"]["uid"]

        async def finish() -> None:
            await asyncio.sleep(self.grace)
            live = self.store.get(PODS, namespace, name)
            if live is not None and live["metadata"]["uid"] == uid:
                with contextlib.suppress(NotFound):
                    self.store.delete(PODS, namespace, name, actor=actor)
                self._after_write(PODS)
        task = asyncio.get_running_loop().create_task(finish())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)
        return marked

    def _cascade(self, owner_uid: str) -> None:
        """Garbage collection of dependents (background propagation), pods gracefully."""
        for res in RESOURCES.values():
            for obj in list(self.store.iter_raw(res)):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == owner_uid for r in refs):
                    continue
                ns, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]
                if res is PODS:
                    with contextlib.suppress(ApiError, NotFound):
                        self.delete_pod(ns, name)
                    continue
                with contextlib.suppress(NotFound):
                    removed = self.store.delete(res, ns, name, actor="garbage-collector")
                    self._cascade(removed["metadata"]["uid"])

    async def delete_collection(self, request: Request, t: _Target) -> Response:
        items, _ = self._list_objects(t, request)
        for obj in items:
            if t.resource is PODS:
                with contextlib.suppress(ApiError, NotFound):
                    self.delete_pod(obj["metadata"]["namespace"], obj["metadata"]["name"])
            else:
                with contextlib.suppress(NotFound):
                    self.store.delete(self._storage(t.resource), obj["metadata"].get("namespace"),
                                      obj["metadata"]["name"], actor="kube-api")
        self._after_write(t.resource)
        return _json(objects.list_of(t.resource.api_version, t.resource.kind, items, self.store.resource_version))

    async def evict(self, t: _Target, body: Obj, dry_run: bool = False) -> Response:
        assert t.name is not None and t.namespace is not None
        options = ((body or {}).get("deleteOptions") or {}) if isinstance(body, dict) else {}
        # `kubectl drain --dry-run=server` sends dryRun inside the Eviction's deleteOptions, not the query
        dry_run = dry_run or "All" in (options.get("dryRun") or [])
        decision = disruption.decide_eviction(self.store, t.namespace, t.name)
        if decision.code == 404:
            raise _not_found(PODS, t.name)
        if decision.code == 429:
            refused = ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                               causes=[{"reason": "DisruptionBudget", "message": decision.message}]).response()
            # kubectl drain retries in exactly 5 s, uvicorn's default keep-alive: reusing this connection
            # would race the server's idle close and fail the drain with EOF. A fresh connection cannot.
            refused.headers["Connection"] = "close"
            return refused
        if not decision.allowed:
            raise ApiError(decision.code, "InternalError", decision.message)
        if not dry_run:
            grace = options.get("gracePeriodSeconds")
            with contextlib.suppress(NotFound):
                self.delete_pod(t.namespace, t.name, None if grace is None else int(grace), actor="eviction")
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)

    def _after_write(self, res: Resource) -> None:
        if res is PODS or res.plural in ("poddisruptionbudgets", "replicasets", "deployments"):
            disruption.refresh_statuses(self.store)

    # -- pod proxy and exec ------------------------------------------------------------------------
    async def proxy(self, t: _Target) -> Response:
        assert t.name is not None and t.namespace is not None
        name, port = _split_name_port(t.name)
        self._must_get(PODS, t.namespace, name)
        if self.proxy_handler is None:
            raise ApiError(503, "ServiceUnavailable", f"no endpoints available for pod {name!r}")
        status, content_type, body = await self.proxy_handler(t.namespace, name, port, t.sub_path)
        return Response(body, status_code=status, media_type=content_type)

    async def exec_ws(self, ws: WebSocket) -> None:
        ns, name = ws.path_params["namespace"], ws.path_params["name"]
        pod = self.store.get(PODS, ns, name)
        if pod is None:
            denial = ApiError(404, "NotFound", f'pods "{name}" not found', name=name, kind="pods").response()
            try:
                await ws.send_denial_response(denial)
            except RuntimeError:   # server without the websocket denial-response extension: plain 403
                await ws.close(code=1008)
            return
        command = ws.query_params.getlist("command")
        container = ws.query_params.get("container") or None
        handler = self.exec_handler

        async def run() -> ExecResult:
            if handler is None or not command:
                exe = command[0] if command else ""
                return ExecResult(127, b"", f"OCI runtime exec failed: exec: {exe!r}: executable file not found in $PATH\n".encode())
            return await handler(ns, name, container, command)
        await serve_exec(ws, run)

    # -- background --------------------------------------------------------------------------------
    async def pdb_status_loop(self) -> None:
        """Keep PodDisruptionBudget status current however pods or their controllers' scale change,
        whether through this API or by controllers writing the store directly."""
        watchers = [self.store.watch(res, None, since_rv=None)[0]
                    for res in (PODS, disruption.REPLICASETS, disruption.DEPLOYMENTS, disruption.PDBS)]
        try:
            while True:
                getters = [asyncio.ensure_future(w.queue.get()) for w in watchers]
                try:
                    await asyncio.wait(getters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for g in getters:
                        g.cancel()
                events = [g.result() for g in getters if g.done() and not g.cancelled()]
                for w in watchers:               # coalesce a burst into one refresh
                    while not w.queue.empty():
                        events.append(w.queue.get_nowait())
                if all(ev.resource is disruption.PDBS and ev.type != "ADDED"
                       and (ev.prev or {}).get("spec") == ev.obj.get("spec") for ev in events):
                    continue                     # only status writes to budgets (ours): nothing to recompute
                disruption.refresh_statuses(self.store)
        finally:
            for w in watchers:
                self.store.unwatch(w)

    async def aclose(self) -> None:
        for task in list(self._timers):
            task.cancel()


class _Discovery(Exception):
    def __init__(self, kind: str, arg: str = ""):
        super().__init__(kind)
        self.kind, self.arg = kind, arg


def _scale_of(obj: Obj) -> Obj:
    meta = obj["metadata"]
    selector = ",".join(f"{k}={v}" for k, v in (obj["spec"].get("selector", {}).get("matchLabels") or {}).items())
    return {"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
            "spec": {"replicas": obj["spec"].get("replicas", 0)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": selector}}


def _key(obj: Obj) -> tuple[str | None, str]:
    return obj["metadata"].get("namespace"), obj["metadata"]["name"]


def _split_name_port(text: str) -> tuple[str, int | None]:
    """`pod`, `pod:9400` or `https:pod:9400`, as in the pod proxy URL."""
    parts = text.split(":")
    if len(parts) == 3:
        parts = parts[1:]
    if len(parts) == 2 and parts[1]:
        try:
            return parts[0], int(parts[1])
        except ValueError:
            return parts[0], None
    return parts[0], None


def _dry(request: Request) -> bool:
    return "All" in request.query_params.getlist("dryRun")


async def _body(request: Request, allow_empty: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "BadRequest", "the request body is empty")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        if request.headers.get("content-type", "").startswith("application/apply-patch+yaml"):
            raise ApiError(415, "UnsupportedMediaType", "server-side apply is not supported; use --validate=false") from None
        raise ApiError(400, "BadRequest", "the request body is not JSON") from None


def build_kube_app(store: ObjectStore, *, exec_handler: ExecHandler | None = None,
                   proxy_handler: ProxyHandler | None = None, deletion_grace_seconds: float = 0.2,
                   log_handler: Callable[[str, str], str] | None = None) -> Starlette:
    """The Kubernetes API for one cluster. Any bearer token is accepted (the twin binds 127.0.0.1 only)."""
    api = KubeApi(store, exec_handler, proxy_handler, deletion_grace_seconds, log_handler)

    async def version(_: Request) -> Response:
        # kubectl's dispatcher picks its minor from /version and caches it unless told not to
        return JSONResponse(discovery.KUBE_VERSION, headers={"Cache-Control": "no-store"})

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def openapi(_: Request) -> Response:
        return ApiError(404, "NotFound", "OpenAPI is not served; use kubectl with --validate=false").response()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        disruption.refresh_statuses(store)
        task = asyncio.get_running_loop().create_task(api.pdb_status_loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await api.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route("/version", version), Route("/version/", version),
        Route("/healthz", health), Route("/readyz", health), Route("/livez", health),
        Route("/openapi/{rest:path}", openapi),
        WebSocketRoute("/api/v1/namespaces/{namespace}/pods/{name}/exec", api.exec_ws),
        Route("/api", api.handle, methods=methods), Route("/apis", api.handle, methods=methods),
        Route("/api/{rest:path}", api.handle, methods=methods),
        Route("/apis/{rest:path}", api.handle, methods=methods),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.kube_api = api
    return app
