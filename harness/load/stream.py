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
without `data: [DONE]`), `error_event` (an `{"error": ...}` event inside a 200 stream), `stall` (no event
for `stall_timeout`, whether silence or only keep-alive comments), `timeout` (the whole-request deadline passed while bytes were still arriving).
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from harness.load.recorder import Recorder, clamp_us

try:   # the plain (non-TLS) gevent socket, whose wait this reader does itself (see `_direct_reader`)
    from gevent import getcurrent as _getcurrent
    from gevent._socket3 import socket as _GeventSocket
except ImportError:  # pragma: no cover - gevent always comes with Locust
    _GeventSocket = None

DONE = b"[DONE]"
DATA = b"data:"
ERROR_KEY = b'"error"'
BACKSLASH = 0x5C
QUOTE = 0x22
RECV_SIZE = 16384


@dataclass(slots=True)
class StreamOutcome:
    """What one stream delivered. Times are perf_counter seconds; `ttft_s` is from the request send.

    `tbt_max_s` is the longest gap between two consecutive content events of this stream (None with fewer
    than two): the window's TBT histogram pools every stream's gaps, so one stream frozen for seconds
    among thousands of healthy ones barely moves its p99; per attempt, the freeze stays visible.
    """

    tokens: int = 0
    ttft_s: float | None = None
    t_last: float | None = None
    tbt_max_s: float | None = None
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


def _string_end(line: bytes | bytearray, start: int) -> int:
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


def _direct_reader(sock: Any, stall_timeout: float) -> tuple[Any, Any, Any] | None:
    """(raw socket, wait, stall timer) for a plain gevent socket; None for anything else (TLS, tests' fakes).

    Why: gevent's `recv` first tries the socket (which, between tokens 20 ms apart, almost always fails
    with EAGAIN and raises), then builds a `Timeout` object for the wait. Per token that was a third of the
    load process's CPU. Here the reader waits for readability first, on the socket's own watcher, with one
    libev timer per stream as the stall limit (restarted per wait: "no bytes for `stall_timeout`", as before).
    `wait()` is True when the socket is readable, False when the stall limit passed.
    """
    if _GeventSocket is None or type(sock) is not _GeventSocket:
        return None
    raw = sock._sock
    hub = sock.hub
    watcher = sock._read_event
    if watcher is None or watcher.callback is not None:
        return None
    stall_timer = hub.loop.timer(stall_timeout, stall_timeout)   # `again` re-arms it from now on every wait
    switch = _getcurrent().switch
    hub_switch = hub.switch

    def wait() -> bool:
        watcher.start(switch, True)
        stall_timer.again(switch, False)   # start() after stop() kept the first deadline: streams died at 1 stall_timeout
        try:
            return hub_switch()
        finally:
            watcher.stop()
            stall_timer.stop()

    return raw, wait, stall_timer


def read_stream(resp: Any, t_send: float, deadline: float, stall_timeout: float, recorder: Recorder,
                content_key: bytes, stamp_key: bytes | None) -> StreamOutcome:
    """Consume the SSE body of `resp` (a geventhttpclient HTTPSocketResponse) into `recorder`.

    TTFT and every gap between content events go to the recorder's current window at the moment they
    are observed, so a window switch mid-stream splits the stream's samples at the switch. The longest of
    those gaps stays with the stream too (`StreamOutcome.tbt_max_s`, same receive times as the histogram's).
    `content_key` is `b'"text":'` (completions) or `b'"content":'` (chat).

    Hot-path choices: lines are searched in place in the response buffer (no copy per event); the socket
    timeout is set once per stream (the stall limit) and the whole-request deadline is checked per
    `recv`; gaps and lags go to `WindowStats.pending` at HDR bucket resolution (see recorder).
    """
    out = StreamOutcome()
    buf: bytearray = resp._body_buffer
    sock = resp._sock
    direct = _direct_reader(sock, stall_timeout) if sock is not None else None
    raw_recv, wait, stall_timer = (direct[0].recv, direct[1], direct[2]) if direct else (None, None, None)
    original_timeout = sock.gettimeout() if sock is not None and direct is None else None
    if sock is not None and direct is None:
        sock.settimeout(stall_timeout)
    drained = True                   # just after the headers, the body's first event is normally not there yet
    framed = _is_framed(resp)
    klen = len(content_key)
    slen = len(stamp_key) if stamp_key else 0
    perf = time.perf_counter
    wall = time.time
    t_recv = perf()
    w_recv = wall()
    t_event = t_recv                 # last `data:` line (keep-alive comments do not count)
    last: float | None = None
    gap_max = 0.0                    # longest gap between content events so far (one comparison per event)
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
                if t_recv >= deadline:
                    out.error, out.detail = "timeout", "request deadline passed while streaming"
                    break
                if t_recv - t_event > stall_timeout and not out.done:
                    out.error = "stall"        # bytes (keep-alive comments) but no event
                    out.detail = f"no event for {stall_timeout:g} s after {out.tokens} tokens"
                    break
                try:
                    if raw_recv is not None:
                        if drained and not wait():
                            raise socket.timeout("timed out")
                        try:
                            data = raw_recv(RECV_SIZE)
                        except BlockingIOError:
                            drained = True           # woken without bytes: wait again
                            continue
                        drained = len(data) < RECV_SIZE
                    else:
                        data = sock.recv(RECV_SIZE)
                except (TimeoutError, socket.timeout):
                    if not out.done:          # after [DONE] only the body terminator was missing
                        out.error = "stall"
                        out.detail = f"no bytes for {stall_timeout:g} s after {out.tokens} tokens"
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

            start = pos
            pos = nl + 1
            end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
            if end - start < 6 or not buf.startswith(DATA, start):
                continue                      # blank separator, comment, event:/id: fields
            start += 5
            t_event = t_recv
            if buf[start] == 0x20:
                start += 1
            if end - start == 6 and buf.startswith(DONE, start):
                out.done = True
                continue
            k = buf.find(content_key, start, end)
            if k >= 0:
                s = k + klen
                if buf[s] == 0x20:          # `"text": "..."` as json.dumps writes it
                    s += 1
                if buf[s] != QUOTE or buf[s + 1] == QUOTE:
                    k = -1                    # null, number or empty string: not content
                else:
                    s += 1
            if k >= 0:
                e = _string_end(buf, s)
                out.parts.append(bytes(buf[s:e]) if 0 < e < end else bytes(buf[s:end]))
                win = recorder.current
                if last is None:
                    out.ttft_s = t_recv - t_send
                    win.ttft.record_value(clamp_us(out.ttft_s))
                else:
                    gap = t_recv - last
                    if gap > gap_max:
                        gap_max = gap
                    v = int(gap * 1e6) or 1
                    b = v.bit_length() - 11
                    if b > 0:
                        v = (v >> b) << b
                    p = win.pending_tbt
                    p[v] = p.get(v, 0) + 1
                last = t_recv
                out.tokens += 1
            elif buf.find(ERROR_KEY, start, end) >= 0:
                line = bytes(buf[start:end])
                try:
                    payload = json.loads(line)
                except ValueError:
                    payload = {"error": line.decode("utf-8", "replace")}
                if isinstance(payload, dict) and payload.get("error") is not None:
                    out.error = "error_event"
                    out.detail = str(payload["error"])[:300]
                    break
            if stamp_key:
                j = buf.find(stamp_key, start, end)
                if j >= 0:
                    j += slen
                    e = buf.find(b",", j, end)
                    if e < 0:
                        e = buf.find(b"}", j, end)
                    try:
                        v = int((w_recv - float(buf[j:e])) * 1e6)
                    except ValueError:
                        continue
                    if v < 1:
                        v = 1
                    b = v.bit_length() - 11
                    if b > 0:
                        v = (v >> b) << b
                    p = recorder.current.pending_lag
                    p[v] = p.get(v, 0) + 1
        if out.error is None and not out.done:
            out.error, out.detail = "no_done", f"stream ended without [DONE] after {out.tokens} tokens"
    finally:
        out.t_last = last
        if out.tokens > 1:
            out.tbt_max_s = gap_max
        if stall_timer is not None:
            stall_timer.close()
        elif sock is not None:
            try:
                sock.settimeout(original_timeout)
            except OSError:
                pass
        if not resp.message_complete:
            resp.release()       # a half-read connection must not go back to the pool
        recorder.current.tokens += out.tokens
    return out
