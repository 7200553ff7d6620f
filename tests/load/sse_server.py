"""A tiny OpenAI-compatible SSE server that paces tokens and keeps the truth about what it sent.

Every event carries `server_send_ts` (epoch seconds, stamped just before the event is written), and the
server keeps, per request, its arrival time and every send stamp — the ground truth the load generator's
TTFT/TBT must match. Modes make it misbehave the ways real servers do: `truncate` (connection dropped
mid-body), `no_done` (clean end without [DONE]), `error_event` ({"error": ...} inside a 200 stream),
`stall` (stops sending), `ping_stall` (only keep-alive comments after two tokens), `500_then_ok` (first attempt of each Idempotency-Key fails with 500),
`hang_then_ok` (first attempt gets no bytes at all), `pause` (one pause of `pause_s` on top of the pace before the
fourth token, then the pace again).
"""
from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from support.polling import wait_for


@dataclass
class Served:
    key: str | None
    arrival: float
    sends: list[float] = field(default_factory=list)   # send stamps of content events
    late: list[float] = field(default_factory=list)    # how late each event was on the server's own schedule
    canary: bool = False
    status: int = 200
    attempt: int = 1
    mode: str = "ok"
    session: str | None = None
    messages: int = 0


class SSEServer:
    def __init__(self, tokens: int = 10, gap_s: float = 0.02, ttft_s: float = 0.05, host: str = "127.0.0.1") -> None:
        self.host = host              # loopback, or the host end of a test's own veth link
        self.tokens = tokens
        self.gap_s = gap_s
        self.ttft_s = ttft_s
        self.pause_s = 0.25
        self.mode = "ok"
        self.rng = random.Random(7)   # TTFT jitter, so streams do not tick in lock-step as real ones don't
        self.corrupt = False          # canary answers change (silent corruption)
        self.served: list[Served] = []
        self.attempts_by_key: dict[str, int] = {}
        self.keys_seen: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[Route("/v1/completions", self.completions, methods=["POST"]),
                                     Route("/v1/chat/completions", self.completions, methods=["POST"])])

    async def completions(self, request: Request):
        arrival = time.time()
        body = await request.json()
        key = request.headers.get("idempotency-key")
        self.keys_seen.append(key)
        n = self.attempts_by_key.get(key or "", 0) + 1
        if key:
            self.attempts_by_key[key] = n
        temperature = body.get("temperature", 1.0)
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        canary = temperature == 0.0
        mode = self.mode
        record = Served(key=key, arrival=arrival, canary=canary, attempt=n, mode=mode,
                        session=request.headers.get("x-session-id"), messages=len(body.get("messages", [])))
        self.served.append(record)
        if mode == "hang_then_ok" and n == 1:
            await asyncio.sleep(2.0)            # no bytes at all, like a request sent to a dead node
            record.status = 0
            return JSONResponse({"late": True})
        if mode == "500_then_ok" and n == 1:
            record.status = 500
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        chat = "messages" in body
        n_tokens = min(int(body.get("max_tokens", self.tokens)), self.tokens)
        words = (prompt.split() or ["x"]) if canary else ["tok"]
        if canary and self.corrupt:
            words = ["garbled"]

        def event(i: int, t: float) -> bytes:
            text = words[i % len(words)] + " "
            if chat:
                choice = {"index": 0, "delta": {"content": text}}
            else:
                choice = {"index": 0, "text": text}
            return b"data: " + json.dumps({"choices": [choice], "server_send_ts": t}).encode() + b"\n\n"

        async def stream():
            try:
                async for chunk in paced():
                    yield chunk
            finally:
                self.in_flight -= 1

        async def paced():
            await asyncio.sleep(self.ttft_s * self.rng.uniform(0.6, 1.4))
            t0 = time.monotonic()
            for i in range(n_tokens):
                if mode in ("truncate", "no_done") and i == 3:
                    if mode == "truncate":
                        raise ConnectionAbortedError("cut")
                    return
                if mode == "error_event" and i == 2:
                    yield b'data: {"error": {"message": "replica failed", "type": "server_error"}}\n\n'
                    yield b"data: [DONE]\n\n"
                    return
                if mode == "stall" and i == 2:
                    await asyncio.sleep(3.0)
                    return
                if mode == "ping_stall" and i == 2:
                    for _ in range(30):          # bytes keep coming, events do not
                        yield b": ping\n\n"
                        await asyncio.sleep(0.1)
                    return
                if mode == "pause" and i == 3:
                    t0 += self.pause_s            # the tokens after it keep the pace, from the pause's end
                    await asyncio.sleep(max(0.0, t0 + i * self.gap_s - time.monotonic()))
                t = time.time()
                record.late.append(time.monotonic() - (t0 + i * self.gap_s))
                record.sends.append(t)
                yield event(i, t)
                if i + 1 < n_tokens:
                    delay = t0 + (i + 1) * self.gap_s - time.monotonic()
                    await asyncio.sleep(max(0.0, delay))
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"x-served-by": "replica-1", "cache-control": "no-cache"})

    def start(self) -> "SSEServer":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="critical", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        wait_for(lambda: self._server.started, 10, "the SSE test server to start", interval=0.01)
        self.url = f"http://{self.host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset(self, mode: str = "ok") -> None:
        self.mode = mode
        self.corrupt = False
        self.served.clear()
        self.attempts_by_key.clear()
        self.keys_seen.clear()
        self.max_in_flight = 0
