"""A flaky Kubernetes API: ASGI middleware around one cluster's API app (see harness/twin/flaky.py).

What a client meets, as a real API server sends it:
- 500 InternalError Status, before the request is applied;
- 429 TooManyRequests Status with `Retry-After` (API Priority and Fairness rejecting the request);
- a timeout: the request is held, then answered 504 Timeout Status. A create (POST) is applied first and its
  answer lost, as when a client gives up on a slow API server that did the work: a retry meets 409;
- watches: the request itself may fail (500/429) or, when resumed from a resourceVersion, be answered with
  a 410 Gone ERROR event; every stream that opens is cut without its final chunk after a few seconds;
- pod exec: the websocket handshake is refused with a 500 or a 429.

Only `/api` and `/apis` paths and exec fail; `/version` and health endpoints answer normally.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from typing import Any, Awaitable, Callable

from harness.twin.flaky import WATCH_START_KINDS, Failure, FlakyApi

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_INJECTED: contextvars.ContextVar[bool] = contextvars.ContextVar("g7_flaky_injected", default=False)
_UNFINISHED = ("ASGI callable returned without completing response",     # a watch cut on purpose
               "ASGI callable returned without completing handshake")    # an exec refused on purpose


class _QuietDrops(logging.Filter):
    """uvicorn reports an unfinished response or a refused websocket as an error; one injected on purpose is not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_INJECTED.get() and any(text in record.getMessage() for text in _UNFINISHED))


_quiet = _QuietDrops()


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code}).encode()


_ANSWERS: dict[str, tuple[int, str, str]] = {
    "error": (500, "InternalError", "Internal error occurred: injected by the twin's flaky control plane"),
    "throttle": (429, "TooManyRequests", "Too many requests, please try again later."),
    "timeout": (504, "Timeout", "Timeout: request did not complete within the allotted timeout"),
}


def _is_watch(scope: Scope) -> bool:
    if "/watch/" in scope.get("path", ""):
        return True
    query = scope.get("query_string", b"").decode("latin-1")
    return any(part in ("watch=true", "watch=1") for part in query.split("&"))


def _resumes(scope: Scope) -> bool:
    """A watch that names a resourceVersion to resume from (0 or none means: list, then watch)."""
    for part in scope.get("query_string", b"").decode("latin-1").split("&"):
        if part.startswith("resourceVersion="):
            return part.split("=", 1)[1] not in ("", "0")
    return False


class FlakyKubeApp:
    """Wraps one cluster's Kubernetes API app; `surface` names it in the injector's counts."""

    def __init__(self, app: ASGIApp, flaky: FlakyApi, surface: str) -> None:
        self.app, self.flaky, self.surface = app, flaky, surface
        logging.getLogger("uvicorn.error").addFilter(_quiet)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "websocket" and path.endswith("/exec"):
            return await self._exec(scope, receive, send)
        if scope["type"] != "http" or not (path.startswith("/api/") or path in ("/api", "/apis")
                                           or path.startswith("/apis/")):
            return await self.app(scope, receive, send)
        if _is_watch(scope):
            return await self._watch(scope, receive, send)
        failure = self.flaky.decide(self.surface)
        if failure is None:
            return await self.app(scope, receive, send)
        if failure == "timeout":
            if scope.get("method") == "POST":      # applied, and the answer lost on the way back
                await self.app(scope, receive, _swallow)
            await asyncio.sleep(self.flaky.config.hold_s)
        await self._answer(send, failure)

    async def _answer(self, send: Send, failure: Failure) -> None:
        code, reason, message = _ANSWERS[failure]
        headers = [(b"content-type", b"application/json")]
        if failure == "throttle":
            headers.append((b"retry-after", str(self.flaky.config.retry_after_s).encode()))
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": _status(code, reason, message)})

    async def _watch(self, scope: Scope, receive: Receive, send: Send) -> None:
        failure = self.flaky.decide(f"{self.surface}:watch", WATCH_START_KINDS)
        if failure == "expire" and not _resumes(scope):
            failure = "error"
        if failure == "expire":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            event = {"type": "ERROR", "object": json.loads(_status(410, "Expired", "too old resource version"))}
            await send({"type": "http.response.body", "body": (json.dumps(event) + "\n").encode()})
            return
        if failure is not None:
            return await self._answer(send, failure)
        if not self.flaky.config.enabled:
            return await self.app(scope, receive, send)
        task = asyncio.ensure_future(self.app(scope, receive, send))
        done, _ = await asyncio.wait({task}, timeout=self.flaky.watch_lifetime())
        if task in done:
            return task.result()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        self.flaky.count_drop(f"{self.surface}:watch")
        _INJECTED.set(True)     # returning with the body unfinished: uvicorn closes the connection mid-stream

    async def _exec(self, scope: Scope, receive: Receive, send: Send) -> None:
        failure = self.flaky.decide(f"{self.surface}:exec", (("error", 0.6), ("throttle", 0.4)))
        if failure is None:
            return await self.app(scope, receive, send)
        await receive()    # websocket.connect
        _INJECTED.set(True)
        code, reason, message = _ANSWERS[failure]
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": code,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "websocket.http.response.body", "body": _status(code, reason, message)})
        else:
            await send({"type": "websocket.close", "code": 1011})


async def _swallow(message: dict[str, Any]) -> None:
    return None
