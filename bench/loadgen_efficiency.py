"""How many streamed tokens per second one load process measures faithfully: g7chaos vs the usual clients.

Faithfully = its lag p99 (receive time minus the server's send stamp on each event) stays within 2.5 ms: past
that, the client's own queueing shows up as the deployment's TTFT/TBT. The p99 judged is the highest of the
half-second slices' p99 but the worst one (the machine is shared: one stall of another process must not decide
alone, but the lag must stay within the limit the rest of the time); the whole window's p99 is kept too. Four clients, one process each, on one
core, against a paced SSE server alone on the other core (20 ms between tokens, ~50 ms TTFT, 100 tokens per
stream): (a) g7chaos's streaming user as the harness runs it, (b) Locust's usual `iter_lines` with one request
event per token, (c) the same with line reads, (d) plain asyncio/aiohttp. They take turns at every load level,
and a level a client fails is tried once more (`_trials.search`). Each begins its users as its users get it:
(a) and (d) one after the other over `spawn_s`, (b) and (c) as Locust's dispatcher does, `floor(spawn_rate)` at
one instant each second (here all at once). CPU per token is the median of three trials at the highest load
every client held (`reference_level`).
"""
from __future__ import annotations

import os
from typing import Any

from bench import _trials as trials
from bench._paced_server import PacedServer

NAME = "loadgen-efficiency"
ORDER = 10
LIMIT_MS = 2.5
TOKENS = 100
REFERENCE_TRIALS = 3        # CPU per token: three trials per client, the median kept (one run's spread up to 31%)
LAST: dict[str, Any] = {}     # the latest full result, for the accuracy benchmark's load levels


def run(tiny: bool = False) -> dict[str, Any]:
    if tiny:
        size = dict(tokens=10, spawn_s=0.2, warmup_s=0.6, measure_s=0.6)
        start, ceiling, steps, floor_level = 8, 8, 0, 8
    else:
        size = dict(tokens=TOKENS, spawn_s=1.0, warmup_s=2.0, measure_s=2.5)
        start, ceiling, steps, floor_level = 50, 1600, 2, 12
    old = trials.pin_clients()
    try:
        floor = trials.idle_floor_ms(0.3 if tiny else 1.5)
        with PacedServer(cpu=trials.SERVER_CPU, tokens=size["tokens"]) as server:
            # The path's own floor: lag p99 of the plain client at 8 streams (400 tokens/s), where no client
            # queues. On a quiet machine it is well under 1 ms; on a shared one it can pass 2.5 ms by itself,
            # and then the limit is that floor plus 1 ms, the same for every client, and the result says so.
            probe = trials.run_trial("d", server, 8, **size)
            path_floor = probe["lag_p99_held_ms"] or 0.0
            limit = LIMIT_MS if path_floor + 1.0 <= LIMIT_MS else round(path_floor + 1.0, 2)
            state = trials.search(list(trials.CLIENTS), lambda kind, n: trials.run_trial(kind, server, n, **size),
                                  limit_ms=limit, start=start, ceiling=ceiling, bisect_steps=steps, floor=floor_level)
            ref_streams = reference_level(state, start)
            wanted = 1 if tiny else REFERENCE_TRIALS
            refs = {kind: [t for t in state[kind]["trials"] if t["streams"] == ref_streams][:wanted]
                    for kind in trials.CLIENTS}
            for _ in range(wanted):
                for kind in trials.CLIENTS:        # taking turns, like the search
                    if len(refs[kind]) < wanted:
                        refs[kind].append(trials.run_trial(kind, server, ref_streams, **size))
            reference = {kind: _median_cost(done) for kind, done in refs.items()}
    finally:
        trials.unpin(old)
    clients: dict[str, Any] = {}
    for kind, what in trials.CLIENTS.items():
        top = trials.best(state[kind])
        worst_server = max((t["server"]["cpu_share"] for t in state[kind]["trials"]), default=None)
        # CPU per token at the reference load, which every client held: what each spends per streamed token
        # while doing the job (fixed costs per process are spread over the same token rate for all)
        ref = reference[kind]
        cost = _cost(ref)
        clients[kind] = {
            "what": what, "sustained_streams": top["streams"] if top else 0,
            "sustained_tokens_per_s": top["tokens_per_s"] if top else 0.0,
            "lag_p99_ms_at_sustained": top["lag_p99_held_ms"] if top else None,
            "lag_p99_whole_window_ms_at_sustained": top["lag_p99_ms"] if top else None,
            "cpu_share_at_sustained": top["cpu_share"] if top else None,
            "server_cpu_share_max": worst_server,
            "cpu_us_per_token": round(cost, 1) if cost else None,
            "reference": {k: ref.get(k) for k in ("streams", "tokens_per_s", "cpu_share", "lag_p99_held_ms",
                                                  "lag_p99_ms")}
                         | {"cpu_us_per_token_trials": [round(c, 1) for c in map(_cost, refs[kind]) if c]},
            "trials": [{k: t.get(k) for k in ("streams", "tokens_per_s", "lag_p99_held_ms", "lag_p99_ms",
                                               "lag_p99_slices_ms", "cpu_share", "errors", "held", "second_chance", "degraded")}
                       | {"server_cpu_share": t["server"]["cpu_share"], "server_late_p99_ms": t["server"]["late_p99_ms"]}
                       for t in state[kind]["trials"]]}
    a = clients["a"]["sustained_tokens_per_s"]

    def ratio(other: str) -> float | None:
        b = clients[other]["sustained_tokens_per_s"]
        return round(a / b, 2) if b else None

    cost_a = clients["a"]["cpu_us_per_token"]
    cost_ratio = {f"cost_{k}_over_a": round(clients[k]["cpu_us_per_token"] / cost_a, 2)
                  for k in ("b", "c", "d") if cost_a and clients[k]["cpu_us_per_token"]}
    result = {"name": NAME, "tiny": tiny, "scheduling": trials.SCHEDULING, "load_average": os.getloadavg(),
              **cost_ratio, "limit_lag_p99_ms": limit, "idle_floor": floor,
              "path_floor_lag_p99_ms": path_floor, "size": size,
              "clients": clients, "ratio_a_b": ratio("b"), "ratio_a_c": ratio("c"), "ratio_a_d": ratio("d"),
              "goal_a_over_b": 2.0}
    if not tiny:
        LAST.clear()
        LAST.update(result)
    return result


def reference_level(state: dict[str, dict[str, Any]], start: int) -> int:
    """Where CPU per token is compared: the highest level of the doubling ladder (start, 2x start, ...) that
    every client which held any level held, so that no client's figure is taken while it is overloaded.

    Why not a fixed load: an overloaded client reads several events per wake-up, and its CPU per token falls
    as its lag grows. At 200 streams on this machine c spent 67-72 µs per token at 2.9-6.6 ms of lag, against
    88-113 µs at 100 streams within the limit; a fixed 200 compared a's honest figure with c's overloaded one.
    """
    judged = [kind for kind, st in state.items() if trials.best(st)]
    level, n = start, start
    while judged and all(any(t["streams"] == n and t["held"] for t in state[k]["trials"]) for k in judged):
        level, n = n, n * 2
    return level


def _cost(trial: dict[str, Any]) -> float | None:
    """CPU µs per streamed token in one trial."""
    if not trial.get("cpu_share") or not trial.get("tokens_per_s"):
        return None
    return trial["cpu_share"] / trial["tokens_per_s"] * 1e6


def _median_cost(done: list[dict[str, Any]]) -> dict[str, Any]:
    """The trial whose CPU per token is the median of `done` (the lower middle one of an even count)."""
    ranked = sorted(done, key=lambda t: _cost(t) or float("inf"))
    return ranked[(len(ranked) - 1) // 2]


def _ratio(value: float | None, other: str) -> str:
    return f"n/a ({other} never held the limit)" if value is None else f"{value:.2f}x"


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for kind, c in result["clients"].items():
        out.append((f"loadgen ({kind}) {c['what']}",
                    f"{c['sustained_tokens_per_s']:.0f} tokens/s sustained ({c['sustained_streams']} streams) at lag p99 (every slice but the worst) "
                    f"{c['lag_p99_ms_at_sustained'] if c['lag_p99_ms_at_sustained'] is not None else '-'} ms, "
                    f"client CPU {100 * (c['cpu_share_at_sustained'] or 0):.0f}% of a core; "
                    f"{c['cpu_us_per_token']} µs CPU per token at {c['reference']['tokens_per_s']:.0f} tokens/s "
                    f"(lag p99 there {c['reference']['lag_p99_held_ms']} ms); "
                    f"server CPU max {100 * (c['server_cpu_share_max'] or 0):.0f}%",
                    f"limit lag p99 <= {result['limit_lag_p99_ms']} ms"
                    + (" (2.5 ms raised to the machine's floor + 1 ms)" if result["limit_lag_p99_ms"] > LIMIT_MS else "")))
    a_b = result["ratio_a_b"]
    met = a_b is None and result["clients"]["a"]["sustained_tokens_per_s"] > 0 or (a_b is not None and a_b >= 2.0)
    out.append(("loadgen ratios (sustained tokens/s)",
                f"a/b {_ratio(a_b, 'b')}, a/c {_ratio(result['ratio_a_c'], 'c')}, a/d {_ratio(result['ratio_a_d'], 'd')}; "
                f"CPU per token b/a {result.get('cost_b_over_a')}x, c/a {result.get('cost_c_over_a')}x, "
                f"d/a {result.get('cost_d_over_a')}x; "
                f"machine floor: lag p99 {result['path_floor_lag_p99_ms']} ms at 8 streams, idle wake-up p99 "
                f"{result['idle_floor']['p99_ms']} ms; {result['scheduling']}; load average "
                f"{result['load_average'][0]:.1f} (shared machine)",
                ("goal a >= 2x b met" if met else "goal a >= 2x b NOT met") if not result["tiny"] else "tiny: no verdict"))
    return out
