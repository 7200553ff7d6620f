"""The regional gateway: what a client of the deployment talks to (NLB + API gateway in front of Triton).

It speaks the OpenAI-compatible API the harness's load generator uses (SSE streaming and plain JSON),
Triton's metric names on /metrics, and the per-node health endpoint the NLB model probes. Every answer
names the replica, node and AZ that served it (x-served-by-*), because checks such as "no corrupted
response reached a client" and "traffic failed over" need attribution.

Failure modes are the ones a client of a real deployment sees, not HTTP errors invented for the twin:
a request routed to an unreachable node hangs (no bytes at all) until the client gives up; a stream whose
node loses power is closed without `data: [DONE]`; a stopped replica stops emitting mid-stream.
"""
from __future__ import annotations

import asyncio
import gc
import json
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from harness.twin.serving import textgen
from harness.twin.serving.replicas import DEFAULT_MODEL, MODELS, ServingFleet
from harness.twin.serving.idempotency import StoredResponse, fingerprint
from harness.twin.serving.replica import Replica, Sequence
from harness.twin.serving.textgen import WordStream

HANG_MAX_S = 300.0          # an unreachable target never answers; give up on our side after this long
DEFAULT_MAX_TOKENS = 16     # OpenAI's default for completions
STAMP_HEADER = "x-g7-stamp"
CONVERSATION_HEADER = "x-conversation-id"
VERSION = "1"


class StreamCut(Exception):
    """Raised inside a response to drop the connection without a terminator, as a dead target does."""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[Any] | None = None


class CompletionBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = DEFAULT_MODEL
    prompt: str | list[str] = ""
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float = 0.0
    stream: bool = False
    user: str | None = None


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = DEFAULT_MODEL
    messages: list[ChatMessage]
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float = 0.0
    stream: bool = False
    user: str | None = None


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status, headers=headers)


def _prompt_of(chat: bool, body: CompletionBody | ChatBody) -> tuple[str, int]:
    """The text the model conditions on, and its length in tokens (one word = one token)."""
    if chat:
        assert isinstance(body, ChatBody)
        parts = []
        for m in body.messages:
            content = m.content if isinstance(m.content, str) else " ".join(
                str(p.get("text", "")) for p in (m.content or []) if isinstance(p, dict))
            parts.append(f"{m.role}: {content}")
        text = "\n".join(parts)
        return text, sum(textgen.count_tokens(p) for p in parts) + 3 * len(parts)
    assert isinstance(body, CompletionBody)
    text = body.prompt if isinstance(body.prompt, str) else "\n".join(body.prompt)
    return text, max(1, textgen.count_tokens(text))


class Gateway:
    def __init__(self, fleet: ServingFleet):
        self.fleet = fleet

    # -- small endpoints -----------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        created = int(time.time())
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "created": created, "owned_by": "g7chaos-twin"} for m in self.fleet.models()]})

    async def ready(self, request: Request) -> Response:
        self.fleet.refresh()
        ok = any(self.fleet.routable(r) for r in self.fleet.replicas.values())
        return PlainTextResponse("ready\n" if ok else "no routable replica\n", 200 if ok else 503)

    async def target_ready(self, request: Request) -> Response:
        node = request.path_params["node"]
        ok = self.fleet.node_healthy(node)
        return PlainTextResponse("", 200 if ok else 503)

    async def metrics(self, request: Request) -> Response:
        fleet = self.fleet
        gauges = []
        per_model: dict[str, list[float]] = {}
        for r in fleet.replicas.values():
            row = per_model.setdefault(r.model.name, [0, 0, 0, 0, 0])
            row[0] += r.stats.steps
            row[1] += r.stats.queue_us
            row[2] += len(r.waiting)
            row[3] += r.stats.admitted
            row[4] += 1 if r.active else 0
        for model, (steps, queue_us, pending, _admitted, busy) in per_model.items():
            key = (("model", model), ("version", VERSION))
            gauges += [("nv_inference_exec_count", key, steps), ("nv_inference_queue_duration_us", key, int(queue_us)),
                       ("nv_inference_pending_request_count", key, pending)]
        for r in fleet.replicas.values():
            for node, idx in r.gpus[:1]:
                gauges.append(("nv_gpu_utilization", (("gpu_uuid", f"{node}/{idx}"), ("pod", r.pod)),
                               round(fleet.utilisation(r) / 100.0, 3)))
        return PlainTextResponse(fleet.metrics.render(gauges), media_type="text/plain; version=0.0.4")

    # -- inference -----------------------------------------------------------------------------------
    async def completions(self, request: Request) -> Response:
        return await self._infer(request, chat=False)

    async def chat(self, request: Request) -> Response:
        return await self._infer(request, chat=True)

    async def _infer(self, request: Request, chat: bool) -> Response:
        fleet = self.fleet
        try:
            raw = await request.json()
            body: CompletionBody | ChatBody = (ChatBody if chat else CompletionBody).model_validate(raw)
        except (ValueError, ValidationError) as exc:
            return _error(400, f"invalid request: {exc}", "invalid_request_error")
        if body.model not in MODELS:
            return _error(404, f"The model `{body.model}` does not exist.", "invalid_request_error")

        key = request.headers.get("idempotency-key")
        if key is not None and fleet.world.behaviour.idempotency:
            verdict, entry = fleet.ledger.begin(key, fingerprint(raw))
            if verdict == "mismatch":
                fleet.metrics.inc("g7_gateway_idempotency_rejections_total", reason="mismatch")
                return _error(422, "Idempotency-Key reused with a different request payload", "idempotency_error")
            if verdict == "conflict":
                fleet.metrics.inc("g7_gateway_idempotency_rejections_total", reason="in_flight")
                return _error(409, "A request with this Idempotency-Key is still being processed", "idempotency_error")
            if verdict == "replay":
                assert entry is not None and entry.response is not None
                fleet.metrics.inc("g7_gateway_idempotent_replays_total", model=body.model)
                return _replay(entry.response)
        else:
            key = None

        try:
            return await self._execute(request, body, chat, key)
        except BaseException:
            if key is not None:
                fleet.ledger.abandon(key)
            raise

    async def _execute(self, request: Request, body: CompletionBody | ChatBody, chat: bool, key: str | None) -> Response:
        fleet = self.fleet
        model = MODELS[body.model]
        conversation = request.headers.get(CONVERSATION_HEADER) or body.user
        fleet.start()                              # idempotent: an app served without lifespan still sweeps
        fleet.refresh(full=False)
        replica = fleet.route(model.name, conversation)
        if replica is None:
            fleet.metrics.inc("nv_inference_request_failure", model=model.name, version=VERSION, reason="REJECTED")
            if key is not None:
                fleet.ledger.abandon(key)
            return _error(503, f"no healthy replica serves {model.name}", "service_unavailable")
        fleet.metrics.inc("g7_gateway_executions_total", model=model.name)
        if not fleet.reachable(replica):
            if not await self._hang(request, replica):
                if key is not None:
                    fleet.ledger.abandon(key)
                fleet.metrics.inc("nv_inference_request_failure", model=model.name, version=VERSION, reason="CANCELED")
                return Response(status_code=499)   # nobody is listening any more
        prompt, prompt_tokens = _prompt_of(chat, body)
        max_tokens = (getattr(body, "max_completion_tokens", None) or body.max_tokens or DEFAULT_MAX_TOKENS)
        plan = fleet.sessions.plan(conversation, replica.key, prompt_tokens, model)
        seq = Sequence(prompt=prompt, prefill_tokens=plan.prefill_tokens, context_tokens=prompt_tokens,
                       max_tokens=max_tokens, stream=WordStream(model.name, prompt, body.temperature),
                       restore_s=plan.restore_s)
        started = time.time()
        fleet.update_physics(replica)
        replica.submit(seq)
        headers = {"x-served-by-pod": replica.pod, "x-served-by-node": replica.node, "x-served-by-az": replica.az,
                   "x-kv-cache": plan.source, "x-prefill-tokens": str(plan.prefill_tokens)}
        ctx = _Ctx(fleet, replica, seq, model.name, chat, conversation, prompt_tokens, started, key, headers,
                   stamp=request.headers.get(STAMP_HEADER, "") not in ("", "0"))
        if body.stream:
            headers["cache-control"] = "no-cache"
            # A frozen (cgroup.freeze) replica sends nothing, not even its response headers, so the client
            # sees silence from the first byte on; a running one answers headers at once.
            return _SSEResponse(ctx.sse(), headers, ctx.seq if ctx.cancel_on_leave else None,  # type: ignore[return-value]
                                withhold_headers=lambda: replica.stopped)
        try:
            return await ctx.whole()
        except StreamCut as cut:
            # an L7 gateway whose upstream connection died answers 502 (the stream case cannot: its
            # status is already on the wire, so that connection is simply closed)
            return _error(502, f"upstream replica lost: {cut}", "bad_gateway", headers=headers)

    async def _hang(self, request: Request, replica: Replica) -> bool:
        """Packets to an unreachable target go nowhere: wait until it is reachable again or the client leaves."""
        deadline = time.monotonic() + HANG_MAX_S
        while time.monotonic() < deadline:
            if self.fleet.reachable(replica):
                return True
            if await request.is_disconnected():
                return False
            await asyncio.sleep(0.05)
        return False


class _Ctx:
    """One executing request: turns the replica's token events into SSE or a JSON body."""

    def __init__(self, fleet: ServingFleet, replica: Replica, seq: Sequence, model: str, chat: bool,
                 conversation: str | None, prompt_tokens: int, started: float, key: str | None,
                 headers: dict[str, str], stamp: bool):
        self.fleet, self.replica, self.seq, self.model, self.chat = fleet, replica, seq, model, chat
        self.conversation, self.prompt_tokens, self.started, self.key = conversation, prompt_tokens, started, key
        self.headers, self.stamp = headers, stamp
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(started)
        self.first_at: float | None = None
        # Who stops an execution whose client left: the gateway that owns keyed executions cancels it, so
        # the client's retry is the only execution of that key. Without a ledger the gateway is a plain
        # proxy, and Triton does not abandon an HTTP inference whose client went away: a frozen replica
        # runs it to the end after it is thawed, an answer nobody reads (the retry ran it again).
        self.cancel_on_leave = fleet.world.behaviour.idempotency
        self._head: bytes | None = None
        self._tail = b""

    def _chunk(self, text: str, finish: str | None, index: int) -> dict:
        if self.chat:
            delta: dict[str, str] = {"content": text}
            if index == 0:
                delta = {"role": "assistant", "content": text}
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": [choice]}

    def _usage(self, completion: int) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}

    def _succeeded(self, generated: int) -> None:
        now = time.time()
        m = self.fleet.metrics
        m.inc("nv_inference_request_success", model=self.model, version=VERSION)
        m.inc("nv_inference_count", model=self.model, version=VERSION)
        m.inc("nv_inference_request_duration_us", int((now - self.started) * 1e6), model=self.model, version=VERSION)
        m.inc("nv_inference_compute_infer_duration_us", int((now - (self.first_at or now)) * 1e6),
              model=self.model, version=VERSION)
        self.fleet.sessions.commit(self.conversation, self.replica.key, self.replica.node, self.prompt_tokens + generated)

    def _first(self) -> None:
        if self.first_at is None:
            self.first_at = time.time()
            self.fleet.metrics.observe_first_response((self.first_at - self.started) * 1e3, model=self.model,
                                                      version=VERSION)

    def _failed(self, reason: str) -> None:
        m = self.fleet.metrics
        m.inc("nv_inference_request_failure", model=self.model, version=VERSION, reason=reason)
        if reason == "BACKEND":
            m.inc("g7_gateway_streams_cut_total", model=self.model)
        if self.key is not None:
            self.fleet.ledger.abandon(self.key)

    async def sse(self) -> AsyncIterator[bytes]:
        seq, q = self.seq, self.seq.queue
        record: list[bytes] | None = [] if self.key is not None else None
        index = 0
        done = False
        try:
            while True:
                kind, value, due = await q.get()
                if kind == "cut":
                    self._failed("BACKEND")
                    raise StreamCut(value)
                last = kind == "last"
                out = self._event(value, "length" if last else None, index, due)
                if index == 0:
                    self._first()
                index += 1
                if record is not None:
                    record.append(out)
                yield out
                if last:
                    break
            tail = b"data: [DONE]\n\n"
            if record is not None:
                record.append(tail)
            yield tail
            done = True
            self._succeeded(index)
            if self.key is not None and record is not None:
                self.fleet.ledger.complete(self.key, StoredResponse(200, dict(self.headers), "text/event-stream", record))
        finally:
            if not done:
                if self.cancel_on_leave:
                    seq.cancelled = True
                else:
                    asyncio.get_running_loop().create_task(self._orphan(index), name=f"orphan:{seq.id}")
                if self.key is not None:
                    self.fleet.ledger.abandon(self.key)

    async def _orphan(self, index: int) -> None:
        """The client left but the execution goes on: consume it to its end and count it as Triton would."""
        q = self.seq.queue
        try:
            while True:
                kind, _value, _due = await asyncio.wait_for(q.get(), HANG_MAX_S)
                if kind == "cut":
                    return
                index += 1
                if kind == "last":
                    self._succeeded(index)
                    return
        except asyncio.TimeoutError:
            self.seq.cancelled = True

    def _event(self, text: str, finish: str | None, index: int, due: float) -> bytes:
        if index == 0 or finish is not None:
            chunk = self._chunk(text, finish, index)
            if self.stamp:
                chunk["server_due_ts"] = due
                chunk["server_send_ts"] = time.time()
            return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
        # The hot path (every middle token): the same JSON, spliced from bytes prepared once per request.
        if self._head is None:
            head = json.dumps(self._chunk("\x00", None, 1), separators=(",", ":"))
            cut = head.index('"\\u0000"')
            self._head, self._tail = ("data: " + head[:cut]).encode(), head[cut + 8:-1].encode()
        body = self._head + _json_str(text).encode() + self._tail
        if self.stamp:
            body += b',"server_due_ts":%r,"server_send_ts":%r' % (due, time.time())
        return body + b"}\n\n"

    async def whole(self) -> Response:
        seq, q = self.seq, self.seq.queue
        words: list[str] = []
        finish = "length"
        try:
            while True:
                kind, value, _due = await q.get()
                if kind == "cut":
                    self._failed("BACKEND")
                    raise StreamCut(value)
                if not words:
                    self._first()
                words.append(value)
                if kind == "last":
                    break
        except BaseException:
            seq.cancelled = True
            raise
        text = "".join(words)
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "logprobs": None, "finish_reason": finish}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        payload = {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                   "choices": [choice], "usage": self._usage(len(words))}
        data = json.dumps(payload, separators=(",", ":")).encode()
        self._succeeded(len(words))
        if self.key is not None:
            self.fleet.ledger.complete(self.key, StoredResponse(200, dict(self.headers), "application/json", [data]))
        return Response(data, 200, headers=self.headers, media_type="application/json")


_json_str = json.encoder.encode_basestring_ascii   # type: ignore[attr-defined]


class _SSEResponse:
    """Streams SSE events straight to the ASGI server, one send per token.

    Why not StreamingResponse: at hundreds of streams the per-token cost is the gateway's capacity, and
    this keeps it to one await per event. A listener on `receive` notices the client leaving (the server
    only reports that through receive) and stops the sequence so the replica's batch shrinks.
    """

    def __init__(self, events: AsyncIterator[bytes], headers: dict[str, str], seq: Sequence | None = None,
                 withhold_headers: Any = None):
        self.events, self.seq = events, seq
        self.withhold_headers = withhold_headers
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8")] + [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        me = asyncio.current_task()
        left = False

        async def listen() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            if self.seq is not None:
                self.seq.cancelled = True
            if me is not None:
                me.cancel()

        listener = asyncio.get_running_loop().create_task(listen())
        try:
            first: bytes | None = None
            if self.withhold_headers is not None and self.withhold_headers():
                try:
                    first = await self.events.__anext__()   # type: ignore[attr-defined]
                except StopAsyncIteration:
                    first = None
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if first is not None:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            async for chunk in self.events:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except StreamCut:
            # return without the final empty chunk: the server drops the connection, and the client sees
            # the stream end without `data: [DONE]`, as when the target behind an NLB dies
            return
        except asyncio.CancelledError:
            if not left:
                raise
        finally:
            listener.cancel()
            await self.events.aclose()   # type: ignore[attr-defined]


def _replay(stored: StoredResponse) -> Response:
    headers = {**stored.headers, "idempotent-replayed": "true"}
    if stored.media_type == "text/event-stream":
        async def chunks() -> AsyncIterator[bytes]:
            for c in stored.chunks:
                yield c
        return _SSEResponse(chunks(), headers)  # type: ignore[return-value]
    return Response(b"".join(stored.chunks), stored.status, headers=headers, media_type=stored.media_type)


def _settle_heap() -> None:
    """Move everything allocated at start-up out of the collector's reach.

    The twin's process holds large long-lived heaps (moto, boto3, the kubernetes client); a full
    collection that walks them pauses the event loop for milliseconds, which reads as token latency.
    Freezing the start-up heap keeps later collections proportional to what the gateway allocates.
    """
    gc.collect()
    gc.freeze()


def build_gateway_app(fleet: ServingFleet) -> Starlette:
    """The gateway as a Starlette app; its lifespan runs the fleet's background sweep."""
    gw = Gateway(fleet)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _settle_heap()
        fleet.start()
        try:
            yield
        finally:
            await fleet.stop()

    routes = [
        Route("/v1/completions", gw.completions, methods=["POST"]),
        Route("/v1/chat/completions", gw.chat, methods=["POST"]),
        Route("/v1/models", gw.models, methods=["GET"]),
        Route("/health/ready", gw.ready, methods=["GET"]),
        Route("/v2/health/ready", gw.ready, methods=["GET"]),
        Route("/metrics", gw.metrics, methods=["GET"]),
        Route("/targets/{node}/v2/health/ready", gw.target_ready, methods=["GET"]),
    ]
    app = _GatewayApp(routes=routes, lifespan=lifespan)
    app.fast = {"/v1/completions": gw.completions, "/v1/chat/completions": gw.chat}
    app.state.fleet = fleet
    return app


class _GatewayApp(Starlette):
    """Starlette, with the two inference routes dispatched before the middleware stack.

    Each middleware layer wraps `send`, which runs once per token; the inference handlers do their own
    error answers, so they skip those layers (every other route keeps the full stack).
    """

    fast: dict[str, Any] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast.get(scope["path"])
            if handler is not None:
                scope["app"] = self
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
