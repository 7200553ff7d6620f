"""The load process against a real paced SSE server on loopback: failures, bias, retries, windows, workers.

Each test drives real Locust child processes through `LoadProcess`; the server keeps the truth (what mode
each attempt was served in, every event's send time) and the assertions compare against it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.load.process import LoadProcess, LoadResult, read_records
from harness.load.recorder import decode_histogram, new_histogram
from harness.load.spec import LoadSpec

from support.polling import wait_for

from .sse_server import SSEServer

# quiet (tests/ahead.py): the tests whose figures are to the millisecond, or whose windows are a few 100 ms
quiet = pytest.mark.quiet

SERVED_BY = ["x-served-by"]
BIAS_WINDOWS = 6              # 1.5 s windows; a window the server or the load generator ran late in is not judged
BIAS_ROUNDS = 3               # rounds of BIAS_WINDOWS, until one judged window is within the bound
FAILS_UNRETRIED = ("truncate", "no_done", "error_event", "stall", "ping_stall")   # each request an error, no retry


def started(load: LoadProcess, requests: int = 1, timeout: float = 20.0) -> None:
    wait_for(lambda: load.live().requests >= requests, timeout, f"{requests} finished requests")


def spec(**kw) -> LoadSpec:
    base = dict(users=8, spawn_rate=1000, prompt_tokens=8, max_tokens=10, stall_timeout_s=0.4, timeout_s=5,
                canary={"every_s": None}, duration_s=30, retries={"attempts": 3, "on": ["timeout", "5xx"],
                                                                    "backoff_s": 0.01, "backoff_max_s": 0.05})
    base.update(kw)
    return LoadSpec.model_validate(base)


@quiet
def test_reader_is_not_fooled_and_retries_reuse_the_key(server: SSEServer, tmp_path: Path) -> None:
    """Every attempt's failure reason matches what the server really did to it, attempt by attempt."""
    load = LoadProcess()
    load.start(server.url, spec(), tmp_path, SERVED_BY, first_window="ok")
    try:
        started(load, 8)
        for mode in ("truncate", "no_done", "error_event", "stall", "ping_stall", "500_then_ok", "hang_then_ok"):
            load.mark_window(mode)
            time.sleep(0.15)            # every request that fails in `mode` ends inside its window
            server.mode = mode
            # 8 requests, not attempts: a retry served in the mode would count, and fewer requests get to fail
            wait_for(lambda: sum(1 for s in server.served if s.mode == mode and s.attempt == 1) >= 8, 10,
                     f"8 requests in {mode}")
            server.mode = "ok"
            time.sleep(0.55)            # the mode's requests end (a stall takes stall_timeout) in its window
            if mode in FAILS_UNRETRIED:  # on a slow machine a stall ends later: its window waits for it
                ending = time.time() + 10
                while load.live().errors < 8 and time.time() < ending:
                    time.sleep(0.05)
        load.mark_window("after")
        time.sleep(0.6)
    finally:
        result = load.stop()
    assert result.complete, result.problems
    expected = {"ok": None, "truncate": "truncated", "no_done": "no_done", "error_event": "error_event",
                "stall": "stall", "ping_stall": "stall"}
    served = {(s.key, s.attempt): s for s in server.served}
    records = read_records(result.records_path)
    judged = 0
    for rec in records:
        s = served.get((rec["key"], rec["attempt"]))
        if s is None:
            continue                     # killed by stop() before the server saw it
        if s.mode == "500_then_ok":
            want = "http_500" if s.attempt == 1 else None
        elif s.mode == "hang_then_ok":
            want = "timeout" if s.attempt == 1 else None
        else:
            want = expected[s.mode]
        if want is None and rec["error"] is not None and rec["t_end"] > result.whole.last_wall - 0.5:
            continue                     # stopped mid-stream at the end of the run
        assert rec["error"] == want, (s, rec)
        judged += 1
    assert judged >= 40
    # every failure kind was seen, in its own window, and the first window is clean
    win = {w.window: w for w in result.windows}
    assert win["ok"].errors == 0 and win["ok"].requests >= 8
    assert win["truncate"].reasons.get("truncated", 0) >= 5
    assert win["no_done"].reasons.get("no_done", 0) >= 5
    assert win["error_event"].reasons.get("error_event", 0) >= 5
    assert win["stall"].reasons.get("stall", 0) >= 5
    assert win["ping_stall"].reasons.get("stall", 0) >= 5
    assert sum(w.requests for w in result.windows) == result.whole.requests
    # 5xx is retried with the same key and then succeeds: no client-visible error
    retried = [r for r in records if r["attempt"] == 2]
    assert retried and all(server.attempts_by_key[r["key"]] >= 2 for r in retried)
    first_500 = {r["key"] for r in records if r["error"] == "http_500"}
    assert first_500 and first_500 <= {r["key"] for r in retried}
    assert all(r["error"] is None for r in retried if r["key"] in first_500 and r["t_end"] < result.whole.last_wall - 0.5)
    assert win["500_then_ok"].retries >= 5 and win["500_then_ok"].errors <= 1
    # a request that gets no byte at all times out after stall_timeout and is retried with its key
    assert win["hang_then_ok"].reasons.get("timeout", 0) >= 5 and win["hang_then_ok"].errors <= 1
    hung = {r["key"] for r in records if r["error"] == "timeout"}
    assert hung and all(server.attempts_by_key[k] >= 2 for k in hung)
    # stalls and truncations are not retried by default (only timeout and 5xx are)
    assert all(r["attempt"] == 1 for r in records if r["error"] in ("stall", "truncated"))
    assert all(r["served_by"].get("x-served-by") == "replica-1" for r in records if r["status"] == 200)
    assert all(k is not None for k in server.keys_seen)
    csv = Path(result.stats_csv or "")
    assert csv.exists() and "completion" in csv.read_text()


def bias_ms(records: list[dict], served: dict, result: LoadResult, window: str) -> dict[str, float]:
    """Measured minus true TTFT/TBT p50/p99 (ms) for the requests of one window.

    Truth per request: TTFT = server's send stamp of the first content event - client's send time (the
    record's `t_start`, wall clock, taken just before sending); TBT = pooled gaps between the server's send
    stamps. Measured: the load process's own figures (records for TTFT, its HDR histogram for TBT).
    """
    true_ttft, true_tbt, measured_ttft = new_histogram(), new_histogram(), new_histogram()
    for rec in records:
        s = served.get((rec["key"], rec["attempt"]))
        if rec["window"] != window or rec["error"] or s is None or len(s.sends) != 10:
            continue
        true_ttft.record_value(int((s.sends[0] - rec["t_start"]) * 1e6))
        measured_ttft.record_value(int(rec["ttft_ms"] * 1000))
        for a, b in zip(s.sends, s.sends[1:]):
            true_tbt.record_value(max(1, int((b - a) * 1e6)))
    assert true_ttft.get_total_count() >= 80, window
    client_tbt = decode_histogram(result.histograms[window]["tbt"])
    out = {}
    for pct in (50, 99):
        out[f"ttft_p{pct}"] = (measured_ttft.get_value_at_percentile(pct) - true_ttft.get_value_at_percentile(pct)) / 1000
        out[f"tbt_p{pct}"] = (client_tbt.get_value_at_percentile(pct) - true_tbt.get_value_at_percentile(pct)) / 1000
    return out


def server_lateness_p99_ms(records: list[dict], served: dict, window: str) -> float:
    """How late the server itself ran on its own pacing schedule: a busy machine, not the client."""
    late = sorted(x for rec in records if rec["window"] == window
                  for x in getattr(served.get((rec["key"], rec["attempt"])), "late", [])[1:])
    return late[int(len(late) * 0.99)] * 1000 if late else float("inf")


def measure_bias_round(server: SSEServer, tmp_path: Path) -> tuple[list, list]:
    """One round of BIAS_WINDOWS 1.5-second windows at 32 streams: (judged, disturbed) windows with their bias.

    The systematic properties hold in every window, judged or not: the recorder's TTFT histogram agrees with
    its records, and the TBT median is not off (`iter_lines`-style reading is off by tens of ms there).
    """
    server.reset()
    load = LoadProcess()
    load.start(server.url, spec(users=32, max_tokens=10), tmp_path, SERVED_BY, first_window="warmup")
    try:
        started(load, 32)
        for i in range(BIAS_WINDOWS):
            load.mark_window(f"measure-{i}")
            time.sleep(1.5)
        load.mark_window("cooldown")
        time.sleep(0.4)
    finally:
        result = load.stop()
    assert result.complete, result.problems
    served = {(s.key, s.attempt): s for s in server.served}
    records = read_records(result.records_path)
    judged, disturbed = [], []
    for i in range(BIAS_WINDOWS):
        m = result.window(f"measure-{i}")
        assert m is not None and m.requests >= 100 and m.errors == 0
        # The recorder's own TTFT histogram agrees with the records. A record belongs to the window its
        # request started in, a histogram sample to the window its first token arrived in: the few requests
        # straddling a switch (TTFT / window, under 5 %) may move. So the histogram's median must lie within
        # the records' 40th..60th percentiles (1 ms for the histogram's precision): a rank bound, which a
        # busy machine's slow straddlers cannot break and a histogram fed wrong values does.
        recorded = decode_histogram(result.histograms[m.window]["ttft"]).get_value_at_percentile(50) / 1000
        from_records = sorted(r["ttft_ms"] for r in records if r["window"] == m.window and r["ttft_ms"] is not None)
        low, high = from_records[int(len(from_records) * 0.4)], from_records[int(len(from_records) * 0.6)]
        assert low - 1.0 <= recorded <= high + 1.0, (m.window, recorded, low, high)
        bias = bias_ms(records, served, result, m.window)
        assert abs(bias["tbt_p50"]) <= 1.0, (m.window, bias)
        late = server_lateness_p99_ms(records, served, m.window)
        # (the load process's own degraded mark is shown, not obeyed: the server's stamps decide the bias)
        (judged if late <= 5.0 else disturbed).append((m.window, bias, round(late, 2), m.lag_p99_ms, m.degraded))
    return judged, disturbed


@quiet
def test_ttft_and_tbt_match_the_servers_stamps_at_32_streams(sse_server: SSEServer, tmp_path: Path) -> None:
    """Bias against the server's send stamps within 2 ms at p50 and p99, 32 concurrent streams.

    The machine is shared: a neighbour's CPU burst delays server and client alike, and then nobody can
    measure to 2 ms. So windows of 1.5 s are measured, six per round; a window in which the server itself ran
    more than 5 ms late on its own schedule (p99) is disturbed and not judged. One judged window within the
    bound ends the test; a busy round is followed by another, at most BIAS_ROUNDS. A systematic error (like
    `iter_lines`' +80 ms) fails every window of every round; a machine busy throughout fails with the
    figures: it measured nothing.
    """
    rounds = []
    for n in range(BIAS_ROUNDS):
        judged, disturbed = measure_bias_round(sse_server, tmp_path / f"round-{n}")
        print(f"round {n}: judged:", judged, "disturbed:", disturbed)
        rounds.append((judged, disturbed))
        if any(all(abs(v) <= 2.0 for v in b.values()) for _, b, _, _, _ in judged):
            return
    raise AssertionError(f"no window within 2 ms in {BIAS_ROUNDS} rounds (judged, disturbed): {rounds}")


def test_two_workers_merge_exactly(server: SSEServer, tmp_path: Path) -> None:
    load = LoadProcess()
    load.start(server.url, spec(users=8, workers=2), tmp_path, SERVED_BY, first_window="steady")
    try:
        started(load, 16, timeout=40)
        wait_for(lambda: load.live().processes_reporting == 2, 10, "both workers reporting")
        load.mark_window("second")
        time.sleep(0.6)
    finally:
        result = load.stop()
    assert result.complete, result.problems
    assert result.processes == 2
    finals = [json.loads((tmp_path / f"final-{i}.json").read_text()) for i in range(2)]
    per_worker = [sum(w["requests"] for w in f["windows"]) for f in finals]
    assert all(n > 0 for n in per_worker), per_worker
    assert result.whole.requests == sum(per_worker)
    for name in ("steady", "second"):
        merged = decode_histogram(result.histograms[name]["tbt"])
        summed = new_histogram()
        for f in finals:
            for w in f["windows"]:
                if w["name"] == name:
                    summed.add(decode_histogram(w["hist"]["tbt"]))
        assert merged.get_total_count() == summed.get_total_count() > 0
        assert merged.get_value_at_percentile(99) == summed.get_value_at_percentile(99)
    # one record per finished attempt; attempts cut off by stop() have none
    w = result.whole
    assert w.requests + w.retries <= len(read_records(result.records_path)) <= w.attempts
    assert (tmp_path / "stats_stats.csv").exists()


def test_canary_mismatch_detected_after_learning(server: SSEServer, tmp_path: Path) -> None:
    load = LoadProcess()
    s = spec(users=4, canary={"every_s": 0.05, "learn_window": "steady", "max_tokens": 6})
    load.start(server.url, s, tmp_path, SERVED_BY, first_window="steady")
    try:
        wait_for(lambda: sum(1 for x in server.served if x.canary) >= 9, 20, "canaries learned")
        load.mark_window("fault")
        time.sleep(0.15)
        server.corrupt = True
        wait_for(lambda: sum(1 for x in server.served if x.canary and x.arrival > time.time() - 5) >= 15, 10,
                 "canaries during the fault")
        time.sleep(0.4)
    finally:
        result = load.stop()
    canary = result.canary
    assert canary.learned and set(canary.golden) == {0, 1, 2}
    assert canary.golden[0].text.startswith("Repeat after me: the quick")
    assert canary.learn_disagreements == 0
    assert canary.mismatches, "a changed canary answer must be reported"
    assert all(m.window == "fault" and "garbled" in m.text for m in canary.mismatches)
    assert all(m.served_by == {"x-served-by": "replica-1"} for m in canary.mismatches)
    assert canary.checked >= len(canary.mismatches)


@quiet
def test_poisson_arrivals_are_bounded(server: SSEServer, tmp_path: Path) -> None:
    """Open loop: never more than `users` in flight, arrivals beyond as many waiting dropped, count bound stops
    the run."""
    load = LoadProcess()
    s = spec(users=3, arrival="poisson", rate=400, max_requests=15, duration_s=10)
    t0 = time.monotonic()
    load.start(server.url, s, tmp_path, SERVED_BY, first_window="open")
    try:
        wait_for(lambda: not load.alive(), 20, "the load to stop at its request bound")
    finally:
        result = load.stop()
    assert time.monotonic() - t0 < 15
    assert server.max_in_flight <= 3
    assert 1 <= result.whole.requests <= 15
    assert result.whole.dropped > 0
    records = read_records(result.records_path)
    assert all("t_arrival" in r for r in records)
    assert result.whole.errors == 0


def test_result_is_a_plain_model(server: SSEServer, tmp_path: Path) -> None:
    """Quick closed run stopped early: the result round-trips as JSON for the report."""
    load = LoadProcess()
    with load:
        load.start(server.url, spec(users=2), tmp_path, SERVED_BY)
        started(load, 2)
        live = load.live()
        assert live.window == "warmup" and live.ttft_p99_ms is not None and live.age_s is not None
    result = load.stop()
    again = LoadResult.model_validate_json(result.model_dump_json())
    assert again.whole.requests == result.whole.requests >= 2
    assert again.window("warmup") is not None
    assert result.dropped_path is None         # a closed loop has no arrivals to drop


ORPHAN_PARENT = """
import sys, time
from harness.load.process import LoadProcess
from harness.load.spec import LoadSpec
load = LoadProcess()
load.start(sys.argv[1], LoadSpec(users=2, prompt_tokens=4, max_tokens=5, canary={"every_s": None}), sys.argv[2])
print(" ".join(str(p.pid) for p in load.procs), flush=True)
time.sleep(60)
"""


def test_children_die_with_their_parent(server: SSEServer, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT, server.url, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]   # type: ignore[union-attr]
        assert pids
        wait_for(lambda: len(server.served) >= 2, 20, "the orphan-to-be load to send requests")
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=5)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie that init has not reaped yet is gone too
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except OSError:
            return True

    wait_for(lambda: all(gone(p) for p in pids), 10, "load children to exit after their parent died")


def test_chat_conversations_carry_their_history(server: SSEServer, tmp_path: Path) -> None:
    """Chat users holding conversations resend the history (with the streamed answers) under one session id."""
    load = LoadProcess()
    s = spec(users=3, chat=True, conversations=2, turns=3, canary={"every_s": 0.2})
    load.start(server.url, s, tmp_path, SERVED_BY, first_window="chat")
    try:
        wait_for(lambda: sum(1 for x in server.served if x.session) >= 12, 20, "12 conversation turns")
    finally:
        result = load.stop()
    assert result.whole.errors == 0 and result.whole.tokens > 0
    by_session: dict[str, list[int]] = {}
    for x in server.served:
        if x.session:
            by_session.setdefault(x.session, []).append(x.messages)
    assert len(by_session) >= 3          # conversations end after `turns` and new ones start
    for counts in by_session.values():
        assert counts == [1, 3, 5][:len(counts)], counts   # user, +assistant+user, ...
    plain = [x for x in server.served if not x.session and not x.canary]
    assert plain and all(x.messages == 1 for x in plain)
    records = read_records(result.records_path)
    assert {r["turn"] for r in records if "turn" in r} >= {0, 1, 2}
    assert any(r["canary"] is not None for r in records)


def test_a_child_that_cannot_start_is_reported(tmp_path: Path) -> None:
    from harness.load.process import LoadError
    load = LoadProcess(python="/bin/false")
    load.start("http://127.0.0.1:9", spec(), tmp_path)
    with pytest.raises(LoadError, match="exited with 1"):
        load.wait_started(timeout_s=5)
    result = load.stop(timeout_s=2)
    assert not result.complete and result.problems
    assert result.whole.requests == 0


def test_wait_started_returns_at_full_load_then_live_figures_move(server: SSEServer, tmp_path: Path) -> None:
    """Started means every user spawned (6 users at 4 per second: 1.5 s of ramp), not only a first report."""
    load = LoadProcess()
    load.start(server.url, spec(users=6, spawn_rate=4), tmp_path, first_window="steady")
    try:
        first = load.wait_started(timeout_s=20)
        assert first.processes_reporting == 1 and first.window == "steady"
        assert first.ramped and first.users == 6
        started(load, 4)
        live = load.live()
        assert live.tokens > 0 and live.requests_per_s > 0 and live.tokens_per_s > live.requests_per_s
    finally:
        load.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_users_begin_at_the_spawn_rate_not_in_one_burst(server: SSEServer, tmp_path: Path, workers: int) -> None:
    """8 users at 40 per second begin their first requests 25 ms apart (175 ms from first to last; with two
    workers each begins its 4 at 20 per second), and the load counts as started only once the last has begun.
    Locust alone starts all 8 at one instant: its dispatcher hands out floor(spawn_rate) users at once each
    second."""
    load = LoadProcess()
    load.start(server.url, spec(users=8, spawn_rate=40, workers=workers), tmp_path, first_window="steady")
    try:
        load.wait_started(timeout_s=20)
        t_started = time.time()
        started(load, 8)
    finally:
        result = load.stop()
    firsts = sorted(r["t_start"] for r in read_records(result.records_path))[:8]
    assert 0.12 <= firsts[-1] - firsts[0] <= 0.5, [round(t - firsts[0], 3) for t in firsts]
    assert t_started >= firsts[-1]


def test_sigterm_still_leaves_final_figures(server: SSEServer, tmp_path: Path) -> None:
    import signal
    load = LoadProcess()
    load.start(server.url, spec(users=2), tmp_path, first_window="steady")
    try:
        started(load, 4)
        load.procs[0].send_signal(signal.SIGTERM)
        wait_for(lambda: not load.alive(), 10, "the child to exit on SIGTERM")
    finally:
        result = load.stop()
    assert result.complete, result.problems
    assert (tmp_path / "final-0.json").exists()
    assert result.whole.requests >= 4


@quiet
def test_a_stream_longer_than_the_stall_limit_is_not_a_stall(server: SSEServer, tmp_path: Path) -> None:
    """The stall limit is "no bytes for stall_timeout", re-armed on every wait: a healthy stream whose
    tokens keep coming finishes even when the whole stream lasts several stall limits."""
    server.tokens = 40                  # 40 tokens 20 ms apart: about 0.85 s, over twice the 0.4 s limit
    load = LoadProcess()
    load.start(server.url, spec(users=2, max_tokens=40, max_requests=4, retries={"attempts": 1}), tmp_path)
    try:
        wait_for(lambda: not load.alive(), 20, "4 requests to end")
    finally:
        result = load.stop()
        server.tokens = 10
    records = read_records(result.records_path)
    assert len(records) == 4
    assert [(r["error"], r["tokens"]) for r in records] == [(None, 40)] * 4, records
