"""A flaky AWS control plane (see harness/twin/flaky.py): failures as botocore meets them from AWS.

moto's own endpoint stays reliable, because the twin's controllers and behaviour loop call it with boto3
and must never fail. Clients get a second endpoint, `FlakyAwsFront`: a threaded WSGI server over the same
in-process moto backends (they are process-wide) that fails a fraction of calls before they reach moto,
so nothing is half-applied. The ARC zonal shift app is wrapped the same way (`FlakyAsgi`).

Each failure is written in the protocol of the service that was called, so botocore classifies it exactly
as it would AWS's own: EC2's `<Response><Errors>` XML, the query protocol's `<ErrorResponse>`, JSON
`__type` (awsJson), REST-JSON's `x-amzn-ErrorType` header, and CBOR for the rpc-v2-cbor protocol
CloudWatch now speaks. Throttling uses codes botocore's retry modes recognise (`RequestLimitExceeded`,
`Throttling`, `ThrottlingException`); a timeout holds the answer, then says 504 `RequestTimeout`.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from typing import Any, Awaitable, Callable, Iterable

from harness.twin.flaky import Failure, FlakyApi

_CREDENTIAL_SERVICE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_CODES: dict[str, dict[str, tuple[int, str]]] = {
    # protocol -> failure -> (HTTP status, error code)
    "ec2": {"error": (500, "InternalError"), "throttle": (503, "RequestLimitExceeded"),
            "timeout": (504, "RequestTimeout")},
    "query": {"error": (500, "InternalFailure"), "throttle": (400, "Throttling"),
              "timeout": (504, "RequestTimeout")},
    "json": {"error": (500, "InternalFailure"), "throttle": (400, "ThrottlingException"),
             "timeout": (504, "RequestTimeout")},
}
_MESSAGES = {"error": "We encountered an internal error. Please try again.",
             "throttle": "Rate exceeded", "timeout": "Your request timed out before completing."}


def service_of(headers: dict[str, str]) -> str:
    """The signing name of the called service, from the SigV4 Authorization header ('' when unsigned)."""
    match = _CREDENTIAL_SERVICE.search(headers.get("authorization", ""))
    return match.group(1) if match else ""


def protocol_of(headers: dict[str, str]) -> str:
    """ec2 | query | cbor | awsjson | restjson, from what the client sent."""
    if headers.get("smithy-protocol", "").startswith("rpc-v2-cbor"):
        return "cbor"
    if headers.get("x-amz-target"):
        return "awsjson"
    if service_of(headers) == "ec2":
        return "ec2"
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return "query"
    return "restjson"


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 24:
        return bytes([0x60 + len(raw)]) + raw
    if len(raw) < 256:
        return bytes([0x78, len(raw)]) + raw
    return bytes([0x79]) + len(raw).to_bytes(2, "big") + raw


def _cbor_map(items: dict[str, str]) -> bytes:
    """A CBOR map of short text strings (RFC 8949 major types 5 and 3): all an error body needs."""
    out = bytes([0xA0 + len(items)])
    for key, value in items.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


def error_response(failure: Failure, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of an AWS error for this failure, in the protocol of the request."""
    protocol = protocol_of(headers)
    family = "ec2" if protocol == "ec2" else "query" if protocol == "query" else "json"
    status, code = _CODES[family][failure]
    message, request_id = _MESSAGES[failure], str(uuid.uuid4())
    out_headers = [("x-amzn-RequestId", request_id)]
    if protocol == "ec2":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
        return status, out_headers + [("Content-Type", "text/xml")], body.encode()
    if protocol == "query":
        kind = "Receiver" if failure != "throttle" else "Sender"
        body = (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        return status, out_headers + [("Content-Type", "text/xml")], body.encode()
    if protocol == "cbor":
        return status, out_headers + [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")], \
            _cbor_map({"__type": code, "message": message})
    body = json.dumps({"__type": code, "message": message}).encode()
    return status, out_headers + [("Content-Type", "application/x-amz-json-1.1" if protocol == "awsjson"
                                   else "application/json"), ("x-amzn-ErrorType", code)], body


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FlakyWsgi:
    """WSGI middleware: a fraction of calls get an AWS error instead of reaching the wrapped app."""

    def __init__(self, app: WSGIApp, flaky: FlakyApi, surface: str = "aws") -> None:
        self.app, self.flaky, self.surface = app, flaky, surface

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        service = service_of(headers) or "unsigned"
        failure = self.flaky.decide(f"{self.surface}:{service}")
        if failure is None:
            return self.app(environ, start_response)
        if failure == "timeout":
            time.sleep(self.flaky.config.hold_s)
        status, out_headers, body = error_response(failure, headers)
        reason = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable",
                  504: "Gateway Timeout"}[status]
        start_response(f"{status} {reason}", out_headers + [("Content-Length", str(len(body)))])
        return [body]


class FlakyAwsFront:
    """The flaky AWS endpoint clients are given: moto's app behind `FlakyWsgi`, on 127.0.0.1:<free port>."""

    def __init__(self, flaky: FlakyApi) -> None:
        self.flaky = flaky
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = FlakyWsgi(DomainDispatcherApplication(create_backend_app), self.flaky)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="g7-twin-flaky-aws", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]],
                                                                                   Awaitable[None]]], Awaitable[None]]


class FlakyAsgi:
    """ASGI middleware for the AWS APIs the twin serves itself (ARC zonal shift): REST-JSON errors."""

    def __init__(self, app: ASGIApp, flaky: FlakyApi, surface: str) -> None:
        self.app, self.flaky, self.surface = app, flaky, surface

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        failure = self.flaky.decide(self.surface)
        if failure is None:
            return await self.app(scope, receive, send)
        if failure == "timeout":
            await asyncio.sleep(self.flaky.config.hold_s)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        status, out_headers, body = error_response(failure, headers)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in out_headers]})
        await send({"type": "http.response.body", "body": body})
