"""Everything the harness sees of the cluster during a run, stamped as it arrives.

Checks judge a timeline, not a snapshot: "was the node cordoned within 2 minutes of the fault landing"
needs the moment of each change. One watch per cluster and kind (nodes, pods of interest, events) records
every change from the start of the run; a dropped or expired watch is re-established from the last
resourceVersion (a fresh list when the server answers 410 Gone), so a flaky control plane loses nothing.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from tenacity import Retrying, retry_if_exception_type, wait_exponential


@dataclass
class Observation:
    at: float                 # harness receipt time (time.time())
    context: str
    kind: str                 # Node | Pod | Event
    type: str                 # ADDED | MODIFIED | DELETED | LISTED
    name: str
    namespace: str | None
    obj: Any                  # the client model


@dataclass
class Timeline:
    observations: list[Observation] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def add(self, obs: Observation) -> None:
        with self.changed:
            self.observations.append(obs)
            self.changed.notify_all()

    def select(self, kind: str, predicate: Callable[[Observation], bool] = lambda o: True) -> list[Observation]:
        with self.lock:
            return [o for o in self.observations if o.kind == kind and predicate(o)]

    def wait_for(self, predicate: Callable[[list[Observation]], Any], deadline: float) -> Any:
        """Block until predicate(observations) is truthy or the deadline passes; returns its last value."""
        with self.changed:
            while True:
                value = predicate(self.observations)
                remaining = deadline - time.time()
                if value or remaining <= 0:
                    return value
                self.changed.wait(timeout=min(remaining, 0.5))


class ClusterObserver:
    """Watches nodes, pods in the given namespaces and events of one cluster into a shared Timeline."""

    def __init__(self, context: str, api_client: client.ApiClient, timeline: Timeline,
                 pod_namespaces: list[str], on_error: Callable[[str], None] | None = None):
        self.context = context
        self.core = client.CoreV1Api(api_client)
        self.timeline = timeline
        self.pod_namespaces = pod_namespaces
        self.on_error = on_error or (lambda message: None)
        self._stop = threading.Event()
        self._watches: list[watch.Watch] = []
        self._threads: list[threading.Thread] = []
        self.ready = threading.Event()
        self._pending_ready = 0
        self._ready_lock = threading.Lock()

    def start(self) -> None:
        streams: list[tuple[str, Callable, dict]] = [("Node", self.core.list_node, {})]
        for namespace in self.pod_namespaces:
            streams.append(("Pod", self.core.list_namespaced_pod, {"namespace": namespace}))
        streams.append(("Event", self.core.list_event_for_all_namespaces, {}))
        self._pending_ready = len(streams)
        for kind, lister, kwargs in streams:
            thread = threading.Thread(target=self._run, args=(kind, lister, kwargs), daemon=True,
                                      name=f"observe-{self.context}-{kind}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop every stream. A watch idles in a socket read until its next event: closing the response
        wakes it now rather than at the server's timeout. Threads are joined against one shared deadline."""
        self._stop.set()
        for w in list(self._watches):
            w.stop()
            response = getattr(w, "_resp", None)
            if response is not None:
                with contextlib.suppress(Exception):
                    response.shutdown() if hasattr(response, "shutdown") else response.close()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _mark_ready(self) -> None:
        with self._ready_lock:      # one thread per stream counts down
            self._pending_ready -= 1
            if self._pending_ready <= 0:
                self.ready.set()

    def _run(self, kind: str, lister: Callable, kwargs: dict) -> None:
        """Keep one stream watched until stop(): each pass lists (when there is no resourceVersion to resume
        from) and watches until the stream ends or breaks; failures back off, bounded, and try again."""
        state = _StreamState()
        while not self._stop.is_set():
            retrying = Retrying(retry=retry_if_exception_type(Exception), wait=wait_exponential(multiplier=0.05, max=2.0),
                                stop=lambda _: self._stop.is_set(), sleep=self._stop.wait,
                                before_sleep=lambda rs: self._report(kind, rs.outcome.exception()),
                                retry_error_callback=lambda _: None)
            retrying(self._watch_once, kind, lister, kwargs, state)

    def _report(self, kind: str, exc: BaseException | None) -> None:
        if exc is None or self._stop.is_set():
            return
        if isinstance(exc, ApiException):
            self.on_error(f"{self.context} {kind} watch: HTTP {exc.status}")
        else:
            self.on_error(f"{self.context} {kind} watch: {type(exc).__name__}: {exc}")

    def _watch_once(self, kind: str, lister: Callable, kwargs: dict, state: "_StreamState") -> None:
        if state.resource_version is None:
            self._relist(kind, lister, kwargs, state)
        w = watch.Watch()
        self._watches.append(w)
        try:
            for event in w.stream(lister, resource_version=state.resource_version, timeout_seconds=30,
                                  allow_watch_bookmarks=False, **kwargs):
                if self._stop.is_set():
                    break
                obj = event["object"]
                if event["type"] == "ERROR":
                    state.resource_version = None
                    return
                state.resource_version = obj.metadata.resource_version or state.resource_version
                key = (obj.metadata.namespace, obj.metadata.name)
                if event["type"] == "DELETED":
                    state.known.pop(key, None)
                else:
                    state.known[key] = obj
                self.timeline.add(Observation(time.time(), self.context, kind, event["type"],
                                              obj.metadata.name, obj.metadata.namespace, obj))
        except ApiException as exc:
            if exc.status == 410:      # too old to resume from: list again, then watch from there
                state.resource_version = None
                return
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._watches.remove(w)

    def _relist(self, kind: str, lister: Callable, kwargs: dict, state: "_StreamState") -> None:
        """A fresh list. Objects known before that it no longer holds were deleted while we could not
        watch: they are recorded as DELETED, so a timeline never keeps a pod that is gone."""
        listed = lister(**kwargs)
        now = time.time()
        seen: dict[tuple[str | None, str], Any] = {}
        for item in listed.items:
            seen[(item.metadata.namespace, item.metadata.name)] = item
            self.timeline.add(Observation(now, self.context, kind, "LISTED", item.metadata.name,
                                          item.metadata.namespace, item))
        for (namespace, name), last in state.known.items():
            if (namespace, name) not in seen:
                self.timeline.add(Observation(now, self.context, kind, "DELETED", name, namespace, last))
        state.known = seen
        state.resource_version = listed.metadata.resource_version
        if not state.listed_once:
            state.listed_once = True
            self._mark_ready()


@dataclass
class _StreamState:
    """Where one watched stream stands: the resourceVersion to resume from and the objects it holds."""

    resource_version: str | None = None
    known: dict[tuple[str | None, str], Any] = field(default_factory=dict)
    listed_once: bool = False
