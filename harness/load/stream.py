"""Reads one server-sent-event token stream as its bytes arrive, and says how it ended.

Why not Locust's `iter_lines()`: it reads 1024-byte chunks and waits for them to fill, so with ~200-byte
events it reported TTFT 130 ms for a true 50 ms and gaps of 0 and 100 ms for true 20 ms gaps. This reader
works on the geventhttpclient response underneath: it takes whatever one `recv` returns, stamps it with
the receive time, and splits complete lines out of it. Every event in one `recv` carries that recv's time,
which is when it really reached the client.

Why not parse each event as JSON: the per-token budget is a few microseconds. Content is detected with
two `find`s on the raw line; the text is kept as raw JSON-escaped bytes (decoded once per request, only when
needed). Only an event that names `"error"` is parsed.

How a stream can fail (each a distinct reason, since Locust would log all of them as successes):
`truncated` (connection closed or broken before the HTTP body ended), `no_done` (body ended cleanly
without `data: [DONE]`), `error_event` (an `{"error": ...}` event inside a 200 stream), `stall` (no byte
for `stall_timeout`), `timeout` (the whole-request deadline passed while bytes were still arriving).
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from harness.load.recorder import Recorder

DONE = b"[DONE]"
DATA = b"data:"
ERROR_KEY = b'"error"'
BACKSLASH = 0x5C
QUOTE = 0x22
RECV_SIZE = 16384


@dataclass(slots=True)
class StreamOutcome:
    """What one stream delivered. Times are perf_counter seconds; `ttft_s` is from the request send."""

    tokens: int = 0
    ttft_s: float | None = None
    t_last: float | None = None
    done: bool = False
    error: str | None = None       # None = clean stream that ended with [DONE]
    detail: str = ""
    parts: list[bytes] = field(default_factory=list)

    def raw_text(self) -> bytes:
        return b"".join(self.parts)

    def text(self) -> str:
        """The streamed text, decoded from its JSON-escaped bytes (once per request)."""
        try:
            return json.loads(b'"' + self.raw_text() + b'"')
        except ValueError:
            return self.raw_text().decode("utf-8", "replace")


def _string_end(line: bytes, start: int) -> int:
    """Index of the closing quote of a JSON string whose content starts at `start`."""
    end = line.find(b'"', start)
    while end > 0 and line[end - 1] == BACKSLASH:
        # count the backslashes: an even run means the quote is not escaped
        run, k = 0, end - 1
        while k >= start and line[k] == BACKSLASH:
            run += 1
            k -= 1
        if run % 2 == 0:
            return end
        end = line.find(b'"', end + 1)
    return end


def _is_framed(resp: Any) -> bool:
    te = resp.get("transfer-encoding") or ""
    return "chunked" in str(te).lower() or resp.get("content-length") is not None


def read_stream(resp: Any, t_send: float, deadline: float, stall_timeout: float, recorder: Recorder,
                content_key: bytes, stamp_key: bytes | None) -> StreamOutcome:
    """Consume the SSE body of `resp` (a geventhttpclient HTTPSocketResponse) into `recorder`.

    TTFT and every gap between content events go to the recorder's current window at the moment they
    are observed, so a window switch mid-stream splits the stream's samples at the switch.
    `content_key` is `b'"text":'` (completions) or `b'"content":'` (chat).
    """
    out = StreamOutcome()
    buf: bytearray = resp._body_buffer
    sock = resp._sock
    original_timeout = sock.gettimeout() if sock is not None else None
    framed = _is_framed(resp)
    klen = len(content_key)
    slen = len(stamp_key) if stamp_key else 0
    perf = time.perf_counter
    wall = time.time
    t_recv = perf()
    w_recv = wall()
    last: float | None = None
    pos = 0
    try:
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if pos:
                    del buf[:pos]
                    pos = 0
                if resp.message_complete or resp._sock is None:
                    if not resp.message_complete:
                        out.error, out.detail = "truncated", "connection released before the body ended"
                    break
                now = perf()
                remaining = deadline - now
                if remaining <= 0:
                    out.error, out.detail = "timeout", "request deadline passed while streaming"
                    break
                wait = stall_timeout if stall_timeout < remaining else remaining
                sock.settimeout(wait)
                try:
                    data = sock.recv(RECV_SIZE)
                except (TimeoutError, socket.timeout):
                    if out.done:
                        break                 # [DONE] arrived; only the body terminator is missing
                    if wait >= stall_timeout:
                        out.error = "stall"
                        out.detail = f"no bytes for {stall_timeout:g} s after {out.tokens} tokens"
                    else:
                        out.error, out.detail = "timeout", "request deadline passed while streaming"
                    break
                except OSError as exc:
                    out.error, out.detail = "truncated", f"connection error: {exc}"
                    break
                t_recv = perf()
                if not data:
                    if framed:
                        out.error = "truncated"
                        out.detail = f"connection closed before the body ended, after {out.tokens} tokens"
                        break
                    resp.message_complete = True   # close-delimited body: EOF is its end
                    continue
                if stamp_key:
                    w_recv = wall()
                try:
                    resp.feed(data)
                except Exception as exc:  # the HTTP parser rejects a broken chunk
                    out.error, out.detail = "truncated", f"malformed body: {exc}"
                    break
                continue

            end = nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl
            if end - pos < 5 or buf[pos:pos + 5] != DATA:
                pos = nl + 1
                continue                      # blank separator, comment, event:/id: fields
            start = pos + 5
            if buf[start] == 0x20:
                start += 1
            line = bytes(buf[start:end])
            pos = nl + 1
            if line == DONE:
                out.done = True
                continue
            k = line.find(content_key)
            if k >= 0:
                s = k + klen
                if line[s] == 0x20:          # `"text": "..."` as json.dumps writes it
                    s += 1
                if line[s] != QUOTE or line[s + 1] == QUOTE:
                    k = -1                    # null, number or empty string: not content
                else:
                    s += 1
            if k >= 0:
                e = _string_end(line, s)
                out.parts.append(line[s:e] if e > 0 else line[s:])
                if last is None:
                    out.ttft_s = t_recv - t_send
                    recorder.current.ttft.record_value(int(out.ttft_s * 1e6) or 1)
                else:
                    recorder.current.tbt.record_value(int((t_recv - last) * 1e6) or 1)
                last = t_recv
                out.tokens += 1
            elif ERROR_KEY in line:
                try:
                    payload = json.loads(line)
                except ValueError:
                    payload = {"error": line.decode("utf-8", "replace")}
                if isinstance(payload, dict) and payload.get("error") is not None:
                    out.error = "error_event"
                    out.detail = str(payload["error"])[:300]
                    break
            if stamp_key:
                j = line.find(stamp_key)
                if j >= 0:
                    j += slen
                    e = line.find(b",", j)
                    if e < 0:
                        e = line.find(b"}", j)
                    try:
                        lag = w_recv - float(line[j:e])
                        recorder.current.lag.record_value(int(lag * 1e6) if lag > 1e-6 else 1)
                    except ValueError:
                        pass
        if out.error is None and not out.done:
            out.error, out.detail = "no_done", f"stream ended without [DONE] after {out.tokens} tokens"
    finally:
        out.t_last = last
        if sock is not None:
            try:
                sock.settimeout(original_timeout)
            except OSError:
                pass
        if not resp.message_complete:
            resp.release()       # a half-read connection must not go back to the pool
        recorder.current.tokens += out.tokens
    return out
