"""Load from several worker processes: what the master/worker split costs, and whether the master keeps up.

1. Streams held within the lag limit (lag p99, every half-second slice but the worst, <= 2.5 ms; the same rule
   as loadgen-efficiency) by g7chaos's load as one process, and as a master with 2 and 4 workers, all on
   the client core against the paced server on the other. On this 2-core machine the workers share one core, so
   the figure is the messaging's cost, not a scale-out (on separate hosts each worker brings its own core); the
   baseline is the single local process measured in the same run, taking turns with the others.
2. The master at 64 workers: 64 simulated workers (bench/_fake_workers.py: real joins with the token's proof,
   real heartbeats, and each sending a live report with encoded histograms every 200 ms and the records of
   300 streams) against a real master process; its CPU share and its CPU per worker. The master must not be
   the bottleneck: at 64 workers it must stay under half a core.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _trials as trials
from bench._paced_server import PacedServer
from bench.loadgen_efficiency import TOKENS
from harness.load.process import _free_port as free_port
from harness.load.spec import LoadSpec

NAME = "load-workers"
ORDER = 12
LIMIT_MS = 2.5
KINDS = {"local": 1, "w2": 2, "w4": 4}        # kind -> measuring processes (1: one local process, no master)
MASTER_SHARE_LIMIT = 0.5
SIMULATED_STREAMS = 300


def _trial(server: PacedServer, kind: str, streams: int, size: dict[str, Any]) -> dict[str, Any]:
    return trials.run_g7chaos(server, streams, workers=KINDS[kind], **size)


def master_at(workers: int, seconds: float, streams: int) -> dict[str, Any]:
    """A real master with `workers` simulated workers sending a real worker's messages for `seconds`."""
    with tempfile.TemporaryDirectory(prefix="bench-master-") as out:
        spec = LoadSpec(users=workers, spawn_rate=workers, duration_s=seconds + 60, join_timeout_s=60,
                        workers=1, remote_workers=workers)
        port = free_port()
        token = "bench-token-" + os.urandom(8).hex()
        config = Path(out) / "config-master.json"
        config.write_text(json.dumps({"url": "http://127.0.0.1:9", "spec": spec.model_dump(mode="json"),
                                      "out_dir": out, "served_by_headers": [], "first_window": "steady",
                                      "processes": workers}))
        (Path(out) / "control.json").write_text(json.dumps({"seq": 1, "window": "steady", "stop": False}))
        env = dict(os.environ, G7CHAOS_LOAD_TOKEN=token, G7CHAOS_LOAD_CONFIG=str(config))
        master = subprocess.Popen([sys.executable, "-m", "harness.load.child", str(config), "--role", "master",
                                   "--master", f"127.0.0.1:{port}", "--expect-workers", str(workers)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        fakes = subprocess.Popen([sys.executable, "-m", "bench._fake_workers", f"127.0.0.1:{port}", str(workers),
                                  str(seconds + 3), str(streams)], env=env, stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(list(Path(out).glob("live-*.json"))) < workers and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)                              # every worker past its first messages
            cpu0, wall0 = trials.proc_cpu_s(master.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, wall1 = trials.proc_cpu_s(master.pid), time.monotonic()
            written = sum(p.stat().st_size for p in Path(out).glob("records-*.jsonl"))
            fakes_out, _ = fakes.communicate(timeout=seconds + 90)
        finally:
            (Path(out) / "control.json").write_text(json.dumps({"seq": 2, "window": "steady", "stop": True}))
            for proc in (fakes, master):
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        sent = json.loads(fakes_out.strip().splitlines()[-1]) if fakes_out.strip() else {}
        share = (cpu1 - cpu0) / (wall1 - wall0)
        return {"workers": workers, "joined": sent.get("joined"), "seconds": round(wall1 - wall0, 1),
                "master_cpu_share": round(share, 3), "master_cpu_per_worker": round(share / workers, 4),
                "messages_sent": sent.get("messages"), "mb_sent": round(sent.get("bytes", 0) / 1e6, 1),
                "records_mb_written": round(written / 1e6, 1)}


def run(tiny: bool = False) -> dict[str, Any]:
    if tiny:
        size = dict(tokens=10, spawn_s=0.2, warmup_s=0.6, measure_s=0.6)
        start, ceiling, steps, floor_level = 8, 8, 0, 8
        master_workers, master_seconds = [4], 1.0
        kinds = ["local", "w2"]                  # the split's path once; the 4-worker level costs a core-minute
    else:
        size = dict(tokens=TOKENS, spawn_s=1.0, warmup_s=2.0, measure_s=2.5)
        start, ceiling, steps, floor_level = 50, 800, 2, 12
        master_workers, master_seconds = [8, 64], 6.0
        kinds = list(KINDS)
    old = trials.pin_clients()
    try:
        with PacedServer(cpu=trials.SERVER_CPU, tokens=size["tokens"]) as server:
            state = trials.search(kinds, lambda kind, n: _trial(server, kind, n, size), limit_ms=LIMIT_MS,
                                  start=start, ceiling=ceiling, bisect_steps=steps, floor=floor_level)
    finally:
        trials.unpin(old)
    held = {}
    for kind in kinds:
        top = trials.best(state[kind])
        held[kind] = {"processes": KINDS[kind], "streams": top["streams"] if top else 0,
                      "tokens_per_s": top["tokens_per_s"] if top else 0.0,
                      "lag_p99_ms": top["lag_p99_held_ms"] if top else None,
                      "cpu_share": top["cpu_share"] if top else None,
                      "master_cpu_share": top.get("master_cpu_share") if top else None,
                      "trials": [{k: t.get(k) for k in ("streams", "tokens_per_s", "lag_p99_held_ms", "cpu_share",
                                                         "master_cpu_share", "held")} for t in state[kind]["trials"]]}
    base = held["local"]["streams"]
    for kind in kinds:
        held[kind]["ratio_to_local"] = round(held[kind]["streams"] / base, 2) if base else None
    masters = [master_at(n, master_seconds, SIMULATED_STREAMS) for n in master_workers]
    return {"tiny": tiny, "limit_lag_p99_ms": LIMIT_MS, "held": held, "masters": masters,
            "scheduling": trials.SCHEDULING, "load_average": os.getloadavg()}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for kind, h in result["held"].items():
        what = "one local process" if kind == "local" else f"master + {h['processes']} worker(s)"
        out.append((f"load-workers: {what}",
                    f"{h['streams']} streams held ({h['tokens_per_s']:.0f} tokens/s) at lag p99 {h['lag_p99_ms']} ms, "
                    f"{h['ratio_to_local']}x the local process in the same run; CPU {100 * (h['cpu_share'] or 0):.0f}% "
                    f"of a core" + (f", master {100 * h['master_cpu_share']:.1f}%" if h.get("master_cpu_share") else ""),
                    f"limit lag p99 <= {result['limit_lag_p99_ms']} ms; one client core shared"))
    for m in result["masters"]:
        ok = m["joined"] == m["workers"] and m["master_cpu_share"] <= MASTER_SHARE_LIMIT
        out.append((f"load-workers: the master at {m['workers']} simulated workers",
                    f"{m['joined']} joined; master CPU {100 * m['master_cpu_share']:.1f}% of a core, "
                    f"{100 * m['master_cpu_per_worker']:.2f}% per worker; {m['messages_sent']} messages, "
                    f"{m['mb_sent']} MB received, {m['records_mb_written']} MB of records written in {m['seconds']} s",
                    "tiny: no verdict" if result["tiny"] else
                    (f"not the bottleneck (<= {100 * MASTER_SHARE_LIMIT:.0f}% of a core)" if ok
                     else f"BOTTLENECK: over {100 * MASTER_SHARE_LIMIT:.0f}% of a core or workers missing")))
    return out
