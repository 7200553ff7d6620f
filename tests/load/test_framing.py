"""The stream reader on bodies framed the three ways HTTP allows: chunked (the SSE servers above),
Content-Length, and close-delimited; and a Content-Length body cut short. Served by a raw socket server so
the framing is exactly what the test says."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from harness.load.process import LoadProcess, read_records
from harness.load.spec import LoadSpec

from support.polling import wait_for

EVENTS = b"".join(b'data: {"choices":[{"index":0,"text":"w%d "}]}\n\n' % i for i in range(5)) + b"data: [DONE]\n\n"


class RawServer:
    def __init__(self, framing: str) -> None:
        self.framing = framing
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        deadline = time.monotonic() + 60
        while self.running and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            if self.framing == "length":
                conn.sendall(head + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(EVENTS))
                for i in range(0, len(EVENTS), 40):       # in pieces, like a stream
                    conn.sendall(EVENTS[i:i + 40])
                    time.sleep(0.005)
            elif self.framing == "length_short":
                conn.sendall(head + b"content-length: %d\r\nconnection: close\r\n\r\n" % (len(EVENTS) + 100))
                conn.sendall(EVENTS[:90])          # one whole event, then half of the next
            else:                                              # close-delimited
                conn.sendall(head + b"connection: close\r\n\r\n")
                conn.sendall(EVENTS)
            conn.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.mark.parametrize("framing,error,tokens", [("length", None, 5), ("close", None, 5),
                                                  ("length_short", "truncated", 1)])
def test_framing(framing: str, error: str | None, tokens: int, tmp_path: Path) -> None:
    server = RawServer(framing)
    load = LoadProcess()
    spec = LoadSpec(users=1, prompt_tokens=4, max_tokens=5, max_requests=3, canary={"every_s": None},
                    retries={"attempts": 1}, stall_timeout_s=1, duration_s=20)
    try:
        load.start(server.url, spec, tmp_path)
        wait_for(lambda: not load.alive(), 20, "the load to stop at its request bound")
    finally:
        result = load.stop()
        server.stop()
    records = read_records(result.records_path)
    assert len(records) == 3
    assert all(r["error"] == error and r["tokens"] == tokens for r in records), records
    # one token has no gap after it; five sent at once have gaps, of next to nothing
    assert all((r["tbt_max_ms"] is None) == (tokens < 2) for r in records), records
