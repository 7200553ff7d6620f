"""The streaming LLM user: Locust FastHttpUser that measures token streams the way clients feel them.

Runs only inside a load child process (`harness.load.child`) or under `locust -f` — importing Locust
monkey-patches gevent, so the harness itself never imports this module. Configuration comes from the JSON
file named by `G7CHAOS_LOAD_CONFIG` (written by `harness.load.process.LoadProcess`):
`{"spec": LoadSpec, "out_dir": str, "served_by_headers": [...], "process_index": int, "processes": int}`.

Per logical request: a fresh Idempotency-Key; tenacity retries with the same key on the configured failure
kinds; one JSONL record per attempt (`records-<index>.jsonl`); one Locust request event per attempt (never per
token). Per token: two byte `find`s and one histogram `record_value` (see `harness.load.stream`). Open loop: every
attempt carries its request's scheduled arrival time, and arrivals dropped at a full queue are kept in
`dropped-<index>.jsonl` (see `LoadState.poisson_arrivals`).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import gevent
from gevent.queue import Empty, Queue
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.runners import MasterRunner
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from harness.load.recorder import Recorder, SelfMonitor, clamp_us
from harness.load.spec import LoadSpec
from harness.load.stream import read_stream
from harness.load.wire import FINAL, RECORDS

CONFIG_ENV = "G7CHAOS_LOAD_CONFIG"

WORDS = ("the model streams tokens to many clients while the cluster keeps serving under faults and "
         "every answer must arrive complete fast and correct even when a node is lost or drained by "
         "the operator gpu memory cache batch prefill decode latency budget replica zone region").split()


def load_config() -> dict[str, Any]:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return {"spec": {}, "out_dir": ".", "served_by_headers": [], "process_index": 0, "processes": 1}
    return json.loads(Path(path).read_text())


CONFIG: dict[str, Any] = {}
SPEC = LoadSpec()               # both set by `configure`, at the end of this module and on a worker's welcome
# Set by `harness.load.child`, which starts the measuring state itself (a worker only once its master has sent
# the configuration); under plain `locust -f`, Locust's init event starts it.
EMBEDDED = False


def configure(config: dict[str, Any]) -> None:
    """Take a configuration that arrived after import (a worker's, from its master's welcome)."""
    global CONFIG, SPEC
    CONFIG = config
    SPEC = LoadSpec.model_validate(config.get("spec", {}))
    # No byte for stall_timeout before the headers either (a request routed to a dead node hangs silently):
    # that is a `timeout`, retried with the same key like any client-side timeout.
    StreamingLLMUser.network_timeout = min(SPEC.timeout_s, SPEC.stall_timeout_s)
    StreamingLLMUser.connection_timeout = SPEC.connect_timeout_s


Ship = Callable[[str, dict[str, Any]], None]      # a worker's message to its master: (type, data)


class Lines:
    """Record lines kept for the next message to the master (a worker writes no file)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, line: str) -> None:
        self.parts.append(line)

    def take(self) -> str:
        text, self.parts = "".join(self.parts), []
        return text


class AttemptFailed(Exception):
    """One attempt failed in a way the retry policy may retry."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind        # timeout | 5xx | stall | truncated | connect | 4xx | no_done | error_event
        self.reason = reason


class LoadState:
    """Everything one load process shares between its users: recorder, records file, arrivals, canaries."""

    def __init__(self, spec: LoadSpec, config: dict[str, Any], ship: Ship | None = None) -> None:
        self.spec = spec
        self.index = int(config.get("process_index", 0))
        self.processes = max(1, int(config.get("processes", 1)))
        self.served_by = [h.lower() for h in config.get("served_by_headers", [])]
        self.recorder = Recorder(config.get("first_window", "warmup"))
        self.monitor = SelfMonitor(self.recorder, spec.lag_p99_limit_ms, spec.cpu_limit, grace_s=1.0)
        # A worker ships its records to its master (harness.load.wire); a process on its own writes them to
        # `records-<index>.jsonl`. Open loop only: one line per arrival dropped at a full queue, so the report can
        # count every request that was due, the ones never sent included (a closed loop has no arrivals to drop).
        self.ship = ship
        self.clock_offset = 0.0     # the master's wall clock minus this process's (a worker's estimate)
        self.finalized = False
        self.records: Lines | IO[str]
        self.dropped: Lines | IO[str] | None
        if ship is not None:
            self.records = Lines()
            self.dropped = Lines() if spec.arrival == "poisson" else None
        else:
            self.out_dir = Path(config.get("out_dir", "."))
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.records = (self.out_dir / f"records-{self.index}.jsonl").open("a", buffering=1 << 16)
            self.dropped = ((self.out_dir / f"dropped-{self.index}.jsonl").open("a", buffering=1 << 16)
                            if spec.arrival == "poisson" else None)
        self.started = time.monotonic()
        self.logical = 0
        self.running = True
        self.content_key = b'"content":' if spec.chat else b'"text":'
        self.stamp_key = f'"{spec.stamp_field}":'.encode() if spec.stamp_field else None
        self.next_canary = time.monotonic() + (spec.canary.every_s or 0)
        self.canary_turn = 0
        self.arrivals: Queue = Queue()
        self.idle = 0
        self.user_seq = 0
        self.first_start: float | None = None   # monotonic time the first user of this process began
        self.began = 0                           # users past their start time (`start_due`)

    def start_due(self, seq: int) -> float:
        """When this process's `seq`-th user (1-based) begins its first request: at the spec's spawn rate, one
        user after the other.

        Why not when Locust spawns it: Locust's dispatcher starts `floor(spawn_rate)` users at one instant once a
        second (locust/dispatch.py, `_user_count_per_dispatch_iteration`). With equal request lengths those users
        then end and begin requests in step for the whole run: every ~2 s a burst of request ends and sends
        (records, the next request and its response's headers), while their tokens keep arriving. At 150
        streams such a burst kept this process busy for 100-190 ms and showed as 20-50 ms of token lag, and a
        real fleet never sees clients that move in step. The process's share of the rate is
        `spawn_rate / processes` (Locust's master splits each batch across its workers).
        """
        if self.first_start is None:
            self.first_start = time.monotonic()
        return self.first_start + (seq - 1) * self.processes / self.spec.spawn_rate

    @property
    def ramped(self) -> bool:
        """Every user this process was given has begun."""
        return self.began >= self.user_seq

    def canary_due(self) -> int | None:
        every = self.spec.canary.every_s
        if not every:
            return None
        now = time.monotonic()
        if now < self.next_canary:
            return None
        self.next_canary = max(self.next_canary + every, now)
        idx = self.canary_turn % len(self.spec.canary.prompts)
        self.canary_turn += 1
        return idx

    def exhausted(self) -> bool:
        if not self.running or time.monotonic() - self.started > self.spec.duration_s:
            return True
        return self.spec.max_requests is not None and self.logical >= self.spec.max_requests

    def write(self, record: dict[str, Any]) -> None:
        if self.clock_offset:
            for stamp in WALL_STAMPS:
                if record.get(stamp) is not None:
                    record[stamp] = round(record[stamp] + self.clock_offset, 6)
        self.records.write(json.dumps(record, separators=(",", ":")) + "\n")

    def poisson_arrivals(self) -> None:
        """Open-loop arrivals at rate/processes, on an absolute schedule (no drift), bounded in time/count.

        Each arrival carries its scheduled wall time, not the time it was handed over: the run report measures
        TTFT from when a request was due, and a client that stamps requests when a free user sends them hides
        its own queue (vLLM issue #54101: a benchmark reported 507 ms for a real 3,330 ms). The schedule is kept
        on the monotonic clock and converted to wall time with one offset taken here, so a late wake-up of this
        loop (a busy event loop) never moves an arrival later, and a wall-clock step never moves the schedule.

        An arrival that finds every user busy waits in the queue (its wait is part of its latency), up to
        `users` waiting arrivals: concurrency stays bounded by `users` and the queue by as many more. An arrival
        that finds the queue full is dropped: counted in the window's `dropped` and written with its scheduled
        time to `dropped-<index>.jsonl`, so overload shows up as figures rather than as a silently slower send
        rate or as requests that vanish from the goodput's denominator.
        """
        rng = random.Random(self.spec.seed * 1009 + self.index)
        rate = (self.spec.rate or 1.0) / self.processes
        bound = self.spec.users
        max_requests = self.spec.max_requests
        t_next = time.monotonic()
        to_wall = time.time() - t_next
        issued = 0
        while not self.exhausted():
            t_next += rng.expovariate(rate)
            delay = t_next - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            if self.exhausted():
                break
            if max_requests is not None and issued >= max_requests:
                break
            # Arrivals already put but not yet taken by an idle user's pending `get` are not waiting: several
            # overdue arrivals are put in one go after a late wake-up, before those users run.
            if self.arrivals.qsize() - self.idle < bound:
                self.arrivals.put(t_next + to_wall)
                issued += 1
            else:
                self.drop(t_next + to_wall)

    def drop(self, t_arrival: float) -> None:
        """An arrival that found the queue full: counted, and kept with its scheduled time for the report."""
        self.recorder.current.dropped += 1
        if self.dropped is not None:
            self.dropped.write(json.dumps({"t_arrival": round(t_arrival + self.clock_offset, 6),
                                           "window": self.recorder.window_name,
                                           "worker": self.index}, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        """Make what was written so far readable by the parent (records and dropped arrivals): flushed to the
        files, or shipped to the master in one message."""
        if self.ship is not None:
            assert isinstance(self.records, Lines)
            records, dropped = self.records.take(), self.dropped.take() if isinstance(self.dropped, Lines) else ""
            if records or dropped:
                self.ship(RECORDS, {"records": records, "dropped": dropped})
            return
        for sink in (self.records, self.dropped):
            if sink is not None:
                try:
                    sink.flush()
                except ValueError:   # already closed
                    pass

    def close(self) -> None:
        self.running = False
        self.flush()


STATE: LoadState | None = None


def state() -> LoadState:
    global STATE
    if STATE is None:
        # a load child begins its state itself (a worker only once its master's welcome has configured it): one
        # made here would write records into the working folder
        if EMBEDDED:
            raise RuntimeError("the load child has not begun its measuring state")
        STATE = LoadState(SPEC, CONFIG)
    return STATE


def begin(ship: Ship | None = None) -> LoadState:
    """The measuring state, with its self-monitor and (open loop) its arrivals running."""
    global STATE
    if STATE is None:
        STATE = LoadState(SPEC, CONFIG, ship)
    st = STATE
    gevent.spawn(st.monitor.probe, gevent.sleep, lambda: st.running)
    if st.spec.arrival == "poisson":
        gevent.spawn(st.poisson_arrivals)
    return st


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    if EMBEDDED or isinstance(environment.runner, MasterRunner):
        return
    begin()


WALL_STAMPS = ("t_start", "t_end", "t_arrival")       # a record's wall-clock fields


def on_master_clock(snapshot: dict[str, Any], offset: float) -> None:
    """A window snapshot's wall stamps (and a live report's) moved onto the master's clock, in place."""
    if offset:
        for stamp in ("first_wall", "last_wall", "t"):
            if isinstance(snapshot.get(stamp), (int, float)):
                snapshot[stamp] += offset
        if isinstance(snapshot.get("window"), dict):
            on_master_clock(snapshot["window"], offset)


def write_final(st: LoadState) -> None:
    """Every window's snapshot, once, at the end: what the parent merges across processes."""
    if st.finalized:
        return
    st.finalized = True
    st.close()
    final = st.recorder.snapshot()
    final["degraded"] = st.monitor.degraded
    final["cpu_share"] = st.monitor.cpu_share
    if st.ship is not None:
        for window in final.get("windows", []):
            on_master_clock(window, st.clock_offset)
        st.ship(FINAL, final)
        return
    path = st.out_dir / f"final-{st.index}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(final, separators=(",", ":")))
    os.replace(tmp, path)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kw: Any) -> None:
    """Under plain `locust -f` (no harness child): still leave records and final figures behind."""
    if STATE is not None and not isinstance(environment.runner, MasterRunner):
        write_final(STATE)


def _classify_exception(exc: BaseException) -> tuple[str, str]:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (TimeoutError, socket.timeout, gevent.Timeout)) or "timed out" in str(exc).lower():
        return "timeout", text
    return "connect", text


class StreamingLLMUser(FastHttpUser):
    """One simulated client: closed loop (send, read to the end, think, repeat) or open loop (take an arrival)."""

    host = "http://127.0.0.1"
    # network_timeout and connection_timeout come from the spec (`configure`, at import and on a worker's welcome)
    max_retries = 0
    concurrency = 1

    def wait_time(self) -> float:
        return SPEC.wait_s if SPEC.arrival == "closed" else 0.0

    def on_start(self) -> None:
        st = state()
        self.st = st
        st.user_seq += 1
        self.seq = st.user_seq
        self.rng = random.Random(st.spec.seed * 7919 + st.index * 100003 + self.seq)
        n = st.spec.prompt_tokens
        self.prompts = [" ".join(self.rng.choice(WORDS) for _ in range(n)) for _ in range(4)]
        self.conversational = st.spec.chat and self.seq <= st.spec.conversations
        self.session = str(uuid.uuid4())
        self.messages: list[dict[str, str]] = []
        self.turn = 0
        # Users start together; were every first conversation full length, all of them would end and begin
        # again in step for the whole run, and a fault could land in the gap between two rounds on every node.
        # A first conversation of random length staggers them, as real users are.
        self.conversation_turns = self.rng.randint(1, st.spec.turns)
        retry_kinds = set(st.spec.retries.on)
        # One retry policy per user, reused for every logical request (a user runs one request at a time, and
        # `Retrying` starts afresh on each iteration): building one per request cost more than its whole use.
        self.retrying = Retrying(
            stop=stop_after_attempt(st.spec.retries.attempts),
            wait=wait_exponential_jitter(initial=st.spec.retries.backoff_s, max=st.spec.retries.backoff_max_s),
            retry=retry_if_exception(lambda e: isinstance(e, AttemptFailed) and e.kind in retry_kinds),
            reraise=True)
        if st.spec.arrival == "closed":      # open loop: the arrivals' own schedule spreads the requests
            gevent.sleep(max(0.0, st.start_due(self.seq) - time.monotonic()))
        st.began += 1

    @task
    def stream(self) -> None:
        st = self.st
        if st.exhausted():
            self._stop_soon()
            return
        t_arrival = None
        if st.spec.arrival == "poisson":
            st.idle += 1
            try:
                t_arrival = st.arrivals.get(timeout=0.25)
            except Empty:
                return
            finally:
                st.idle -= 1
        self.one_request(t_arrival)

    def _stop_soon(self) -> None:
        st = self.st
        if st.running:
            st.running = False
            gevent.spawn_later(0, self.environment.runner.quit)
        gevent.sleep(0.1)

    def _body(self, canary: int | None) -> tuple[dict[str, Any], dict[str, str]]:
        spec = self.st.spec
        headers: dict[str, str] = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        headers.update(spec.headers)
        if canary is not None:
            prompt = spec.canary.prompts[canary]
            max_tokens, temperature = spec.canary.max_tokens, 0.0
        else:
            prompt = self.rng.choice(self.prompts)
            max_tokens, temperature = spec.max_tokens, spec.temperature
        body: dict[str, Any] = {"model": spec.model, "max_tokens": max_tokens, "temperature": temperature,
                                "stream": True}
        if spec.chat:
            if self.conversational and canary is None:
                if self.turn >= self.conversation_turns:
                    self.session, self.messages, self.turn = str(uuid.uuid4()), [], 0
                    self.conversation_turns = spec.turns
                self.messages.append({"role": "user", "content": prompt})
                body["messages"] = list(self.messages)
                body["user"] = self.session          # OpenAI's end-user field: what sticky routing keys on
                headers[spec.session_header] = self.session
            else:
                body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return body, headers

    def one_request(self, t_arrival: float | None = None) -> None:
        """One logical request: attempts with the same key until success or the retry policy gives up."""
        st = self.st
        spec = st.spec
        canary = st.canary_due()
        body, headers = self._body(canary)
        key = str(uuid.uuid4())
        if spec.idempotency_keys:
            headers["Idempotency-Key"] = key
        payload = json.dumps(body)
        attempt_no = 0
        text = ""
        failure: AttemptFailed | None = None
        t_first = time.perf_counter()
        try:
            for attempt in self.retrying:
                with attempt:
                    attempt_no += 1
                    text = self._attempt(payload, headers, key, attempt_no, canary, t_arrival)
        except AttemptFailed as exc:
            failure = exc
        except RetryError as exc:   # pragma: no cover - reraise=True makes this rare
            failure = AttemptFailed("retry", str(exc))
        st.logical += 1
        win = st.recorder.current     # where the request ended: a failure during a fault counts there
        win.requests += 1
        if attempt_no > 1:
            win.retries += attempt_no - 1
        if canary is not None:
            win.canaries += 1
        if failure is None:
            win.e2e.record_value(clamp_us(time.perf_counter() - t_first))
            if self.conversational and canary is None:
                self.messages.append({"role": "assistant", "content": text})
                self.turn += 1
        else:
            win.errors += 1
            if self.conversational and canary is None:
                self.messages.pop()

    def _attempt(self, payload: str, headers: dict[str, str], key: str, attempt_no: int,
                 canary: int | None, t_arrival: float | None) -> str:
        st = self.st
        spec = st.spec
        window_name = st.recorder.window_name
        st.recorder.current.attempts += 1
        w_start = time.time()
        t_send = time.perf_counter()
        deadline = t_send + spec.timeout_s
        status = 0
        served: dict[str, str] = {}
        outcome = None
        failure: AttemptFailed | None = None
        name = "canary" if canary is not None else ("chat" if spec.chat else "completion")
        with self.client.request("POST", spec.path, data=payload, headers=headers, stream=True,
                                 catch_response=True, name=name) as resp:
            status = int(resp.status_code or 0)
            if resp.headers is not None:
                for h in st.served_by:
                    v = resp.headers.get(h)
                    if v is not None:
                        served[h] = v
            err = getattr(resp, "error", None)
            if status == 0:
                kind, reason = _classify_exception(err) if err else ("connect", "no response")
                failure = AttemptFailed(kind, kind)
                detail = reason
            elif status >= 500:
                failure, detail = AttemptFailed("5xx", f"http_{status}"), f"HTTP {status}"
            elif status >= 400:
                failure, detail = AttemptFailed("4xx", f"http_{status}"), f"HTTP {status}"
            else:
                outcome = read_stream(resp._response, t_send, deadline, spec.stall_timeout_s, st.recorder,
                                      st.content_key, st.stamp_key)
                detail = outcome.detail
                if outcome.error:
                    failure = AttemptFailed(outcome.error, outcome.error)
            if status and status >= 400 and resp._response is not None:
                resp._response.release()
            t_end = time.perf_counter()
            resp.request_meta["response_time"] = (t_end - t_send) * 1000.0
            resp.request_meta["response_length"] = outcome.tokens if outcome else 0
            if failure:
                resp.failure(f"{failure.reason}: {detail}"[:200])
            else:
                resp.success()
        raw = outcome.raw_text() if outcome else b""
        record: dict[str, Any] = {
            "key": key, "attempt": attempt_no, "status": status, "served_by": served,
            "ttft_ms": round(outcome.ttft_s * 1000, 3) if outcome and outcome.ttft_s is not None else None,
            "tokens": outcome.tokens if outcome else 0,
            "tbt_max_ms": round(outcome.tbt_max_s * 1000, 3) if outcome and outcome.tbt_max_s is not None else None,
            "digest": hashlib.sha1(raw).hexdigest()[:16] if outcome and outcome.tokens else None,
            "window": window_name, "t_start": round(w_start, 6), "t_end": round(time.time(), 6),
            "error": failure.reason if failure else None, "detail": detail if failure else None,
            "canary": canary, "worker": st.index}
        if t_arrival is not None:
            record["t_arrival"] = round(t_arrival, 6)
        if self.conversational:
            record["session"] = self.session
            record["turn"] = self.turn
        text = ""
        if outcome is not None and (canary is not None or self.conversational):
            text = outcome.text()
            if canary is not None:
                record["text"] = text[:2000]
        st.write(record)
        if failure:
            st.recorder.current.reasons[failure.reason] = st.recorder.current.reasons.get(failure.reason, 0) + 1
            raise failure
        return text


configure(load_config())      # the configuration named by G7CHAOS_LOAD_CONFIG, or the defaults
