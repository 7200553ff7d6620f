"""One measured trial of one client against the paced server, and the search for its sustainable load.

Every trial is one fresh load process (never the benchmark's own): g7chaos's streaming user through
`harness.load.process.LoadProcess` exactly as the harness runs it, the Locust variants and the aiohttp client
through `bench._locust_client` / `bench._aiohttp_client`. The benchmark process pins itself to the client core
before it starts any of them, so they inherit that core; the server sits alone on the other.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from bench._client_common import held_p99
from bench._paced_server import PacedServer
from harness.load.process import LoadProcess
from harness.load.recorder import decode_histogram, new_histogram, percentile_ms
from harness.load.spec import CanarySpec, LoadSpec

ROOT = Path(__file__).resolve().parents[1]
SERVER_CPU, CLIENT_CPU = 0, 1
CLIENTS = {
    "a": "g7chaos streaming user (harness/load, Locust in its own process)",
    "b": "Locust FastHttpUser, iter_lines, one request event per token",
    "c": "Locust FastHttpUser, line reads, one request event per token",
    "d": "plain asyncio aiohttp client, line reads",
}


RT_PRIORITY = 10


def pin_clients() -> set[int] | None:
    """Pin this process (and so every client and server it starts) to the client core, and give it a real-time
    round-robin priority where the system allows it; returns the old affinity.

    Why real-time: the cores are meant to be the server's and the client's own, but on a shared machine other
    work runs on them too and its time slices show up as milliseconds of "client lag" in every client alike
    (measured: lag p99 40-290 ms at 10k tokens/s under a load average of 6, ~1 ms with this priority). The
    kernel still keeps 5% of each core for everything else (sched_rt_runtime_us), and every trial is bounded.
    """
    global SCHEDULING
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CPU})
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
        SCHEDULING = f"SCHED_RR priority {RT_PRIORITY}"
    except (OSError, AttributeError):
        SCHEDULING = "normal (no permission for real-time priority)"
    return old


def unpin(old: set[int] | None) -> None:
    if old is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except (OSError, AttributeError):
            pass
        os.sched_setaffinity(0, old)


SCHEDULING = "normal"


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_floor_ms(seconds: float = 1.5, interval_s: float = 0.002) -> dict[str, float]:
    """How late an idle process on the client core wakes up: the machine's own lag floor (shared machine)."""
    late: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        time.sleep(interval_s)
        late.append(time.perf_counter() - t0 - interval_s)
    late.sort()
    return {"p50_ms": round(late[len(late) // 2] * 1000, 3), "p99_ms": round(late[int(len(late) * 0.99)] * 1000, 3)}


def g7chaos_spec(streams: int, tokens: int, spawn_s: float, duration_s: float, spawn_rate: float | None = None,
                 workers: int = 1) -> LoadSpec:
    return LoadSpec(users=streams, spawn_rate=spawn_rate or streams / spawn_s, max_tokens=tokens, prompt_tokens=16,
                    canary=CanarySpec(every_s=None), duration_s=duration_s, workers=workers)


def run_g7chaos(server: PacedServer, streams: int, tokens: int, spawn_s: float, warmup_s: float,
                measure_s: float, slice_s: float = 0.5, workers: int = 1) -> dict[str, Any]:
    """g7chaos's own figures for the measurement window (its slices merged exactly), plus the server's truth
    over the same window. The window is cut into `slice_s` windows so the lag p99 of each slice is known.
    With `workers` > 1 the load is a master and that many workers (harness/load/wire.py); the CPU share is
    all of them together, and the master's own is kept apart."""
    spec = g7chaos_spec(streams, tokens, spawn_s, duration_s=warmup_s + measure_s + 30, workers=workers)
    slices = max(1, int(round(measure_s / slice_s)))
    with tempfile.TemporaryDirectory(prefix="bench-load-") as out:
        load = LoadProcess()
        try:
            load.start(server.url, spec, out, first_window="warmup")
            started = time.time()
            load.wait_started(timeout_s=30)
            time.sleep(max(0.0, started + warmup_s - time.time()))
            server.reset()
            pids = [proc.pid for proc in load.procs]         # the local process, or the master first
            cpu0, wall0 = [proc_cpu_s(pid) for pid in pids], time.monotonic()
            for i in range(slices):
                load.mark_window(f"measure-{i:02d}")
                time.sleep(max(0.0, wall0 + (i + 1) * slice_s - time.monotonic()))
            load.mark_window("__after")
            cpu1, wall1 = [proc_cpu_s(pid) for pid in pids], time.monotonic()
            truth = server.truth()
        finally:
            result = load.stop(timeout_s=10)
    parts = [w for w in result.windows if w.window.startswith("measure-")]
    if not parts:
        raise RuntimeError(f"g7chaos load left no measurement window: {result.problems}")
    merged = {name: new_histogram() for name in ("ttft", "tbt", "lag")}
    for w in parts:
        for name, hist in merged.items():
            hist.add(decode_histogram(result.histograms[w.window][name]))
    span = max(1e-9, max(w.last_wall for w in parts) - min(w.first_wall for w in parts))
    observed = sum(w.ttft_count + w.tbt_count for w in parts)      # content events seen inside the window
    slice_p99 = [w.lag_p99_ms for w in parts]
    figures = {f"{name}_p{pct}_ms": percentile_ms(hist, pct) for name, hist in merged.items() for pct in (50, 99)}
    return {"streams": streams, "tokens": observed, "tokens_per_s": round(observed / span, 1),
            "lag_p50_ms": figures["lag_p50_ms"], "lag_p99_ms": figures["lag_p99_ms"], "lag_p99_slices_ms": slice_p99,
            "lag_p99_held_ms": held_p99(slice_p99), "cpu_share": round((sum(cpu1) - sum(cpu0)) / (wall1 - wall0), 3),
            "master_cpu_share": round((cpu1[0] - cpu0[0]) / (wall1 - wall0), 3) if workers > 1 else None,
            "errors": sum(w.errors for w in parts), "degraded": next((w.degraded for w in parts if w.degraded), None),
            "figures": figures, "server": truth}


def run_other(kind: str, server: PacedServer, streams: int, tokens: int, spawn_s: float, warmup_s: float,
              measure_s: float) -> dict[str, Any]:
    module = "bench._aiohttp_client" if kind == "d" else "bench._locust_client"
    cfg = {"url": server.url, "kind": {"b": "iter_lines", "c": "readline"}.get(kind, "aiohttp"), "streams": streams,
           "tokens": tokens, "spawn_s": spawn_s, "warmup_s": warmup_s, "measure_s": measure_s}
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", module, json.dumps(cfg)], cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the client's window opens `warmup_s` after its imports (~0.5 s): the server's truth follows it roughly
    time.sleep(warmup_s + 0.5)
    server.reset()
    try:
        stdout, stderr = proc.communicate(timeout=warmup_s + measure_s + 40)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate(timeout=10)
    truth = server.truth()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"client {kind} failed ({proc.returncode}): {stderr[-800:]}")
    return dict(json.loads(lines[-1]), server=truth, degraded=None)


def run_trial(kind: str, server: PacedServer, streams: int, **kw: Any) -> dict[str, Any]:
    if kind == "a":
        return run_g7chaos(server, streams, **kw)
    return run_other(kind, server, streams, **kw)


def search(kinds: list[str], trial: Callable[[str, int], dict[str, Any]], limit_ms: float, start: int,
           ceiling: int, bisect_steps: int, floor: int, second_chance: bool = True) -> dict[str, dict[str, Any]]:
    """Most concurrent streams each client holds with lag p99 <= limit: doubling from `start`, then bisecting.

    The lag p99 judged is the highest of the window's half-second slices' p99 but the worst one (`held_p99`):
    the shared machine's other work stalls every client now and then, and one such stall must not decide alone.

    A level a client fails is tried once more at once (`second_chance`), and holds if either trial held. On this
    shared virtual machine one 2.5 s trial decides by chance near the limit: g7chaos's client at 150 streams gave
    1.57, 1.66, 1.96, 2.34, 2.74 and 3.10 ms in six trials within an hour, while a client past its capacity
    fails both trials (the Locust and aiohttp clients at 200 streams did in each of nine runs, at 2.9-86 ms).

    Clients take turns at every round (the machine is shared and its noise drifts: each client sees the same
    drift). A client that fails at `start` is tried once at `floor`. Bounded: at most log2(ceiling/start)+1
    doublings and `bisect_steps` halvings per client, each at most two trials.
    """
    state = {k: {"good": None, "bad": None, "next": start, "steps": 0, "trials": []} for k in kinds}
    while True:
        active = [k for k in kinds if state[k]["next"] is not None]
        if not active:
            break
        for kind in active:
            st = state[kind]
            level = st["next"]
            result = _judged(trial(kind, level), limit_ms)
            st["trials"].append(result)
            if not result["held"] and second_chance:
                result = _judged(trial(kind, level), limit_ms)
                result["second_chance"] = True
                st["trials"].append(result)
            ok = result["held"]
            if ok:
                st["good"] = level if st["good"] is None or level > st["good"] else st["good"]
            else:
                st["bad"] = level if st["bad"] is None or level < st["bad"] else st["bad"]
            st["next"] = _next_level(st, start, ceiling, bisect_steps, floor)
    return state


def _judged(result: dict[str, Any], limit_ms: float) -> dict[str, Any]:
    lag = result.get("lag_p99_held_ms")
    result["held"] = lag is not None and lag <= limit_ms and not result.get("errors")
    return result


def _next_level(st: dict[str, Any], start: int, ceiling: int, bisect_steps: int, floor: int) -> int | None:
    good, bad = st["good"], st["bad"]
    if bad is None:                                   # still doubling
        nxt = good * 2
        return nxt if nxt <= ceiling else None
    if good is None:                                  # failed at the start: one try lower, then give up
        return floor if bad > floor else None
    if st["steps"] >= bisect_steps or bad - good <= max(2, good // 16):
        return None
    st["steps"] += 1
    return (good + bad) // 2


def best(st: dict[str, Any]) -> dict[str, Any] | None:
    """The trial at the highest level that held (its measured tokens/s is the client's sustainable figure)."""
    held = [t for t in st["trials"] if t["held"]]
    return max(held, key=lambda t: t["streams"]) if held else None
