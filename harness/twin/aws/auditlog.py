"""The AWS half of the twin's audit log: each call moto or the ARC zonal shift endpoint answers, as IAM names it.

The action is read the way AWS routes the request, from botocore's own service models: the signing scope of
the Authorization header gives the service, then the `Action` form field (query protocols), the
`X-Amz-Target` header (JSON), the `/service/X/operation/Op` path (CBOR) or the operation whose HTTP method
and request URI match (REST). The log records it with the IAM prefix (`monitoring` signs CloudWatch,
`elasticloadbalancing` ELBv2), so a test can hold it against deploy/iam-policy.json as written.

The twin's own behaviour calls moto over HTTP too (replacement launches, Node Auto Repair): its clients
add a header that marks the call `internal`, so clients' calls can be told apart.
"""
from __future__ import annotations

import functools
import io
import re
from typing import Any, Callable
from urllib.parse import parse_qs

from harness.twin.kube.auditlog import AuditLog, wrap_served_app

INTERNAL_HEADER = "x-g7twin-caller"
INTERNAL_VALUE = "twin"
MAX_AUDITED_BODY = 1 << 20                   # query-protocol bodies are small; larger ones are not parsed
# signing name -> (botocore service name, IAM action prefix)
SERVICES: dict[str, tuple[str, str]] = {
    "ec2": ("ec2", "ec2"), "autoscaling": ("autoscaling", "autoscaling"), "monitoring": ("cloudwatch", "cloudwatch"),
    "elasticloadbalancing": ("elbv2", "elasticloadbalancing"), "fis": ("fis", "fis"), "sts": ("sts", "sts"),
    "iam": ("iam", "iam"), "eks": ("eks", "eks"), "arc-zonal-shift": ("arc-zonal-shift", "arc-zonal-shift"),
    "ssm": ("ssm", "ssm"), "logs": ("logs", "logs"),
}
_SCOPE_RE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_CBOR_RE = re.compile(r"^/service/[^/]+/operation/([A-Za-z0-9]+)$")


@functools.lru_cache(maxsize=32)
def _rest_routes(service: str) -> list[tuple[str, re.Pattern[str], int, str]]:
    """(method, path regex, literal length, operation) for a REST service, most specific first."""
    import botocore.session
    model = botocore.session.get_session().get_service_model(service)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http.get("requestUri", "/").split("?", 1)[0]
        pattern = re.sub(r"\\\{[^}]+?\\\+\\\}", ".+", re.escape(uri))
        pattern = re.sub(r"\\\{[^}]+?\\\}", "[^/]+", pattern)
        literal = len(re.sub(r"\{[^}]+\}", "", uri))
        routes.append((http.get("method", "POST"), re.compile(f"^{pattern}/?$"), literal, name))
    routes.sort(key=lambda route: -route[2])
    return routes


def describe_aws(method: str, path: str, query: str, headers: dict[str, str], body: bytes,
                 signing_name: str | None = None) -> tuple[str, str]:
    """(IAM prefix, action) of one request; ("unknown", method path) when it cannot be told."""
    scope = _SCOPE_RE.search(headers.get("authorization", ""))
    signing = signing_name or (scope.group(1) if scope else "")
    service, prefix = SERVICES.get(signing, (signing, signing or "unknown"))
    target = headers.get("x-amz-target", "")
    if target:
        return prefix, target.rsplit(".", 1)[-1]
    cbor = _CBOR_RE.match(path)
    if cbor:
        return prefix, cbor.group(1)
    form = parse_qs(query)
    if "Action" not in form and body and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", errors="replace"))
    if "Action" in form:
        return prefix, form["Action"][0]
    try:
        for route_method, pattern, _, operation in _rest_routes(service):
            if route_method == method and pattern.match(path):
                return prefix, operation
    except Exception:   # an unknown service model: name the raw request instead
        pass
    return prefix, f"{method} {path}"


class AwsAuditWsgi:
    """WSGI wrapper around moto's dispatcher: records each request with its IAM action."""

    def __init__(self, app: Any, log: AuditLog) -> None:
        self.app = app
        self.log = log

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        body = b""
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit() and 0 < int(length) <= MAX_AUDITED_BODY:
            body = environ["wsgi.input"].read(int(length))
            environ["wsgi.input"] = io.BytesIO(body)       # moto reads the same bytes after us
        method = environ.get("REQUEST_METHOD", "GET")
        prefix, action = describe_aws(method, path, environ.get("QUERY_STRING", ""), headers, body)
        call = self.log.record(api="aws", endpoint=prefix, verb=action, path=path,
                               user_agent=headers.get("user-agent", ""),
                               internal=headers.get(INTERNAL_HEADER) == INTERNAL_VALUE)

        def recording_start(status: str, response_headers: Any, exc_info: Any = None) -> Any:
            if call.status is None:
                call.status = int(status.split(" ", 1)[0])
            return start_response(status, response_headers, exc_info)

        return self.app(environ, recording_start)


class AwsAuditAsgi:
    """ASGI wrapper for the twin's own AWS endpoints (ARC zonal shift): same records as moto's."""

    def __init__(self, app: Any, signing_name: str, log: AuditLog) -> None:
        self.app = app
        self.signing_name = signing_name
        self.log = log

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        method, path = scope.get("method", "GET"), scope.get("path", "")
        prefix, action = describe_aws(method, path, (scope.get("query_string") or b"").decode("latin-1"), headers,
                                      b"", signing_name=self.signing_name)
        call = self.log.record(api="aws", endpoint=prefix, verb=action, path=path,
                               user_agent=headers.get("user-agent", ""),
                               internal=headers.get(INTERNAL_HEADER) == INTERNAL_VALUE)

        async def recording_send(message: dict[str, Any]) -> None:
            if call.status is None and message.get("type") == "http.response.start":
                call.status = int(message.get("status", 0))
            await send(message)

        await self.app(scope, receive, recording_send)


def _mark_request(request: Any, **_: Any) -> None:
    request.headers[INTERNAL_HEADER] = INTERNAL_VALUE


def mark_internal(client: Any) -> Any:
    """Make a boto3 client's calls recognisable as the twin's own (idempotent)."""
    events = client.meta.events
    events.register("request-created", _mark_request, unique_id="g7twin-audit-internal")
    return client


def marking(factory: Callable[[str], Any]) -> Callable[[str], Any]:
    """A client factory whose clients are all marked internal."""
    @functools.wraps(factory)
    def client(service: str) -> Any:
        return mark_internal(factory(service))
    return client


def install_aws_audit(twin: Any, log: AuditLog) -> None:
    """Record the AWS side of a started TwinServer into `log`: moto's WSGI app, the ARC endpoint, and mark
    the twin's own boto3 clients (AwsTwin's and the fleet's)."""
    aws = twin.aws
    server = getattr(getattr(aws, "_server", None), "_server", None)   # ThreadedMotoServer -> werkzeug server
    if server is not None:
        server.app = AwsAuditWsgi(server.app, log)
    for served in twin._served:
        if served.name == "arc-zonal-shift":
            wrap_served_app(served.server, lambda app: AwsAuditAsgi(app, "arc-zonal-shift", log))
    for client in list(getattr(aws, "_clients", {}).values()):
        mark_internal(client)
    if callable(getattr(aws, "client", None)):
        aws.client = marking(aws.client)
    fleet = getattr(twin, "fleet", None)
    if fleet is not None and fleet.aws_client is not None:
        fleet.aws_client = marking(fleet.aws_client)
