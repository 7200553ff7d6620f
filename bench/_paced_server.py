"""A paced OpenAI-style SSE server in a process of its own, pinned to its own core, that keeps the truth.

Why not the test suite's Starlette server: at 30k+ events per second the framework's per-event cost would
make the server the bottleneck, and a client benchmark must only ever measure the client. This one is a
bare asyncio protocol: one timer per due event, the send stamp (`server_send_ts`, epoch seconds) taken
just before the bytes are handed to the socket, so `receive time - stamp` is the client's lag alone.

The truth it keeps, per measurement window (between `reset` and `truth`): each request's arrival time and
first content send (true TTFT), the pooled gaps between a stream's consecutive sends (true TBT), how late
each send was on the server's own schedule, and the server's CPU share, so a figure can show the server
was not the limit.

Control: the parent writes `reset`, `truth` or `stop` lines to its stdin (`PacedServer.call`).
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")
# ~220 bytes per event, the size of a real completion chunk (and the size that trips Locust's iter_lines)
EVENT = ('data: {"id":"cmpl-%s","object":"text_completion","created":%d,"model":"bench-llm",'
         '"system_fingerprint":"fp_paced","choices":[{"index":0,"text":"tok ","logprobs":null,'
         '"finish_reason":null}],"server_send_ts":%.6f}\n\n')
DONE_CHUNK = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MAX_REQUEST_BYTES = 1 << 20


class Truth:
    """What the server really did since the last reset (times in seconds)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.since = time.time()
        self.cpu_mark = _cpu()
        self.ttft: list[float] = []      # first content send minus request arrival
        self.gaps: list[float] = []      # consecutive content sends of one stream
        self.late: list[float] = []      # send time minus due time on the server's own schedule
        self.events = 0
        self.requests = 0

    def summary(self) -> dict[str, Any]:
        import numpy as np   # only when asked, between measurements

        cpu, wall = _cpu()
        cpu0, wall0 = self.cpu_mark
        out: dict[str, Any] = {"seconds": round(wall - wall0, 3), "events": self.events, "requests": self.requests,
                               "cpu_share": round((cpu - cpu0) / max(1e-9, wall - wall0), 3)}
        for name, values in (("ttft", self.ttft), ("tbt", self.gaps), ("late", self.late)):
            arr = np.asarray(values, dtype=np.float64) * 1000.0
            out[f"{name}_count"] = int(arr.size)
            for pct in (50, 99):
                out[f"{name}_p{pct}_ms"] = round(float(np.percentile(arr, pct)), 3) if arr.size else None
        return out


def _cpu() -> tuple[float, float]:
    t = os.times()
    return t.user + t.system, time.monotonic()


class Stream:
    __slots__ = ("proto", "rid", "left", "t0", "arrival", "last", "handle", "i")

    def __init__(self, proto: "SSEProtocol", rid: str, tokens: int, t0: float, arrival: float) -> None:
        self.proto = proto
        self.rid = rid
        self.left = tokens
        self.t0 = t0              # loop time of the first event
        self.arrival = arrival    # epoch time the request's first byte arrived
        self.last: float | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.i = 0


class SSEProtocol(asyncio.Protocol):
    server: "Server"

    def __init__(self, server: "Server") -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.stream: Stream | None = None
        self.arrival = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None and self.stream.handle is not None:
            self.stream.handle.cancel()
        self.stream = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if not self.buf:
            self.arrival = time.time()
        self.buf += data
        if len(self.buf) > MAX_REQUEST_BYTES:
            self._reject()
            return
        self._maybe_request()

    def _reject(self) -> None:
        if self.transport is not None:
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    def _maybe_request(self) -> None:
        if self.stream is not None:
            return                     # pipelined request: handled when the current stream ends
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).decode("latin-1").lower()
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip() == "content-length":
                length = int(value.strip() or 0)
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        try:
            max_tokens = int(json.loads(body or b"{}").get("max_tokens", self.server.tokens))
        except (ValueError, AttributeError):
            self._reject()
            return
        self.server.begin(self, min(max(1, max_tokens), self.server.tokens), self.arrival)
        if self.buf:
            self.arrival = time.time()

    def finished(self) -> None:
        self.stream = None
        if self.buf:
            self._maybe_request()


class Server:
    def __init__(self, tokens: int, gap_s: float, ttft_s: float, seed: int = 7) -> None:
        self.tokens = tokens
        self.gap_s = gap_s
        self.ttft_s = ttft_s
        self.rng = random.Random(seed)   # TTFT jitter: streams do not tick in lock-step, as real ones don't
        self.truth = Truth()
        self.loop = asyncio.get_event_loop()
        self.seq = 0

    def begin(self, proto: SSEProtocol, tokens: int, arrival: float) -> None:
        self.seq += 1
        t0 = self.loop.time() + self.ttft_s * self.rng.uniform(0.6, 1.4)
        stream = Stream(proto, f"{os.getpid()}-{self.seq}", tokens, t0, arrival)
        proto.stream = stream
        assert proto.transport is not None
        proto.transport.write(HEAD)
        stream.handle = self.loop.call_at(t0, self.send, stream)
        self.truth.requests += 1

    def send(self, stream: Stream) -> None:
        transport = stream.proto.transport
        if transport is None or transport.is_closing():
            return
        now = time.time()
        event = (EVENT % (stream.rid, int(now), now)).encode()
        transport.write(b"%x\r\n%s\r\n" % (len(event), event))
        truth = self.truth
        truth.events += 1
        truth.late.append(self.loop.time() - (stream.t0 + stream.i * self.gap_s))
        if stream.last is None:
            truth.ttft.append(now - stream.arrival)
        else:
            truth.gaps.append(now - stream.last)
        stream.last = now
        stream.i += 1
        stream.left -= 1
        if stream.left > 0:
            stream.handle = self.loop.call_at(stream.t0 + stream.i * self.gap_s, self.send, stream)
        else:
            transport.write(DONE_CHUNK)
            stream.handle = None
            stream.proto.finished()


def _serve(cpu: int | None, tokens: int, gap_s: float, ttft_s: float) -> None:
    """The server's main: control commands are lines on stdin, answers JSON lines on stdout."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = Server(tokens, gap_s, ttft_s)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    srv = loop.run_until_complete(loop.create_server(lambda: SSEProtocol(server), sock=sock, backlog=4096))
    stop = loop.create_future()
    stdin = sys.stdin.buffer

    def answer(data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()

    def on_command() -> None:
        cmd = stdin.readline().decode().strip() or "stop"      # EOF: the parent is gone
        if cmd == "reset":
            server.truth.reset()
            answer({"ok": True})
        elif cmd == "truth":
            answer(server.truth.summary())
        elif not stop.done():
            stop.set_result(None)

    loop.add_reader(stdin.fileno(), on_command)
    answer({"port": sock.getsockname()[1], "pid": os.getpid()})
    loop.run_until_complete(stop)
    srv.close()


class PacedServer:
    """The server process, seen from the benchmark: `with PacedServer(cpu=0) as server: server.url ...`."""

    def __init__(self, cpu: int | None = 0, tokens: int = 100, gap_s: float = 0.02, ttft_s: float = 0.05) -> None:
        args = json.dumps({"cpu": cpu, "tokens": tokens, "gap_s": gap_s, "ttft_s": ttft_s})
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._paced_server", args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=str(Path(__file__).resolve().parents[1]))
        hello = self._read(20.0, "start")
        self.url = f"http://127.0.0.1:{hello['port']}"
        self.pid = int(hello["pid"])

    def _read(self, timeout_s: float, what: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.proc.kill()
            raise RuntimeError(f"paced SSE server did not answer {what!r} within {timeout_s:g} s")
        return json.loads(line)

    def call(self, cmd: str, timeout_s: float = 20.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()
        return self._read(timeout_s, cmd)

    def reset(self) -> None:
        self.call("reset")

    def truth(self) -> dict[str, Any]:
        return self.call("truth")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()          # EOF on stdin: the server stops
                self.proc.wait(timeout=5.0)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5.0)

    def __enter__(self) -> "PacedServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    _cfg = json.loads(sys.argv[1])
    _serve(_cfg["cpu"], _cfg["tokens"], _cfg["gap_s"], _cfg["ttft_s"])
