"""The twin's API audit log: every Kubernetes and AWS call its servers answer, for tests to prove what a run did.

A real cluster has an audit log and CloudTrail; the twin keeps the same facts so a test can prove "a dry run
made no mutating call" or "every call the harness made is allowed by deploy/rbac.yaml" from the server's
side, whatever the client thought it did. Kubernetes calls are described as the API server's authorizer
sees them (verb, API group, resource, subresource, namespace, name) plus the user agent; AWS calls as IAM
sees them (`fis:StartExperiment`), see harness.twin.aws.auditlog.

Who called: the twin's controllers write to the store directly, never over HTTP, so every Kubernetes call
here came from a client. On the AWS side the twin's own behaviour does call moto over HTTP (launching
replacement instances, Node Auto Repair); those clients are marked and their calls recorded as
`internal`, so `calls(internal=False)` is what clients such as the harness asked for.

Readable in-process (`audit_of(twin).calls()`) and over loopback from any process: `GET /_twin/audit` on
every Kubernetes API endpoint of the twin (`?since=<seq>` for the calls after a mark). Harness code never
reads it: it exists for tests only.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Callable
from urllib.parse import parse_qs

AUDIT_PATH = "/_twin/audit"
MAX_CALLS = 50_000                        # a long twin session keeps the newest calls (~20 MB at most)
KUBE_READ_VERBS = frozenset({"get", "list", "watch"})
KUBE_MUTATING_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})   # a GET that runs something
AWS_READ_PREFIXES = ("Describe", "List", "Get", "BatchGet")
NON_RESOURCE_PREFIXES = ("/version", "/healthz", "/readyz", "/livez", "/openapi")
_KUBE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass
class ApiCall:
    """One request the twin served. `status` is filled in when the response starts (None: no response)."""

    seq: int
    at: float
    api: str                     # "kube" or "aws"
    endpoint: str                # kube: the cluster (context) name; aws: the IAM service prefix
    verb: str                    # kube: get/list/watch/create/update/patch/delete/deletecollection; aws: action
    path: str
    user_agent: str = ""
    internal: bool = False       # made by the twin's own behaviour, not by a client
    group: str = ""              # kube API group ("" = core)
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    status: int | None = None

    @property
    def action(self) -> str:
        """`service:Action` for AWS, `verb resource[/subresource]` for Kubernetes."""
        if self.api == "aws":
            return f"{self.endpoint}:{self.verb}"
        return f"{self.verb} {self.resource}{'/' + self.subresource if self.subresource else ''}"

    @property
    def mutating(self) -> bool:
        if self.api == "aws":
            return not self.verb.startswith(AWS_READ_PREFIXES)
        if not self.resource:
            return False             # discovery, version, openapi: non-resource reads
        return self.verb not in KUBE_READ_VERBS or self.subresource in KUBE_MUTATING_SUBRESOURCES

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "action": self.action, "mutating": self.mutating}


class AuditLog:
    """Calls in arrival order. Appended from the twin's loop (Kubernetes) and moto's threads (AWS)."""

    def __init__(self, max_calls: int = MAX_CALLS) -> None:
        self._lock = threading.Lock()
        self._calls: deque[ApiCall] = deque(maxlen=max_calls)
        self._seq = 0

    def record(self, **fields: Any) -> ApiCall:
        with self._lock:
            self._seq += 1
            call = ApiCall(seq=self._seq, at=time.time(), **fields)
            self._calls.append(call)
            return call

    def mark(self) -> int:
        """The sequence number of the latest call: `calls(since=mark)` are the calls made after it."""
        with self._lock:
            return self._seq

    def calls(self, *, since: int = 0, api: str | None = None, internal: bool | None = False,
              mutating: bool | None = None) -> list[ApiCall]:
        """Calls after `since`; by default only those clients made (`internal=None` for all)."""
        with self._lock:
            snapshot = [c for c in self._calls if c.seq > since]
        return [c for c in snapshot if (api is None or c.api == api)
                and (internal is None or c.internal == internal)
                and (mutating is None or c.mutating == mutating)]

    def to_json(self, since: int = 0) -> bytes:
        return json.dumps({"mark": self.mark(),
                           "calls": [c.as_dict() for c in self.calls(since=since, internal=None)]}).encode()


def describe_kube(method: str, path: str, query: str) -> dict[str, str]:
    """A request as Kubernetes' RequestInfo sees it: verb, group, resource, subresource, namespace, name."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return {"verb": method.lower()}
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    group = parts[1] if parts[0] == "apis" and len(parts) > 1 else ""
    if (parts[0] == "api" and len(parts) < 3) or (parts[0] == "apis" and len(parts) < 4):
        return {"verb": method.lower(), "group": group}      # discovery
    watch_prefix = bool(rest) and rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace = rest[1]
        if len(rest) > 2:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method == "GET":
        watching = watch_prefix or parse_qs(query).get("watch", [""])[0] in ("1", "true", "True")
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _KUBE_VERBS.get(method, method.lower())
    return {"verb": verb, "group": group, "resource": resource, "subresource": subresource,
            "namespace": namespace, "name": name}


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


class KubeAuditApp:
    """ASGI wrapper around one cluster's Kubernetes API: records each request, serves the log's JSON."""

    def __init__(self, app: Any, cluster: str, log: AuditLog) -> None:
        self.app = app
        self.cluster = cluster
        self.log = log

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        query = (scope.get("query_string") or b"").decode("latin-1")
        if path == AUDIT_PATH and scope["type"] == "http":
            since = parse_qs(query).get("since", ["0"])[0]
            body = self.log.to_json(int(since) if since.isdigit() else 0)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        call = self.log.record(api="kube", endpoint=self.cluster, path=path,
                               user_agent=_header(scope, b"user-agent"), **describe_kube(method, path, query))

        async def recording_send(message: dict[str, Any]) -> None:
            kind = message.get("type")
            if call.status is None:
                if kind in ("http.response.start", "websocket.http.response.start"):   # the latter: a refused upgrade
                    call.status = int(message.get("status", 0))
                elif kind == "websocket.accept":
                    call.status = 101
                elif kind == "websocket.close":
                    call.status = 403
            await send(message)

        await self.app(scope, receive, recording_send)


def wrap_served_app(server: Any, wrap: Callable[[Any], Any]) -> None:
    """Put `wrap(app)` in front of a uvicorn server's app, before or after it started serving.

    uvicorn hands `config.loaded_app` to each new connection, so wrapping it covers every later request."""
    config = server.config
    if getattr(config, "loaded_app", None) is not None:
        config.loaded_app = wrap(config.loaded_app)
    else:
        config.app = wrap(config.app)


def install_audit(twin: Any) -> AuditLog:
    """Attach one audit log to a started TwinServer: its Kubernetes APIs here, its AWS APIs in aws.auditlog."""
    from harness.twin.aws.auditlog import install_aws_audit
    log = AuditLog()
    for served in twin._served:
        if served.name.startswith("kube:"):
            cluster = served.name.split(":", 1)[1]
            wrap_served_app(served.server, lambda app, cluster=cluster: KubeAuditApp(app, cluster, log))
    install_aws_audit(twin, log)
    twin.audit = log
    return log


def audit_of(twin: Any) -> AuditLog:
    """The audit log of a TwinServer (or of the TwinHandle that runs one in a thread)."""
    server = getattr(twin, "twin", twin)
    log = getattr(server, "audit", None)
    if log is None:
        raise LookupError("this twin has no audit log (started before install_audit was wired in)")
    return log


def read_audit(kube_url: str, since: int = 0, timeout_s: float = 10.0) -> dict[str, Any]:
    """The audit log of a twin in another process, from `GET /_twin/audit` on one of its Kubernetes URLs."""
    import httpx
    response = httpx.get(f"{kube_url.rstrip('/')}{AUDIT_PATH}", params={"since": since}, timeout=timeout_s)
    response.raise_for_status()
    return response.json()
