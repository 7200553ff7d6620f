"""How long report.html takes, and how much memory, for a 10-minute run with a million request records.

Why it matters: a game day's report is built at the end of every run from the run folder's own files
(harness/report/timeline.py); a long soak at a few thousand requests a second must not take minutes, or a
gigabyte, to report, and the page must stay small enough to attach to a ticket. Budgets: under 20 s, under
1 GB of peak memory, under 5 MB of HTML.

The run folder is synthetic but has the shape of a real one: result.json with one ECC fault, a
load/records.jsonl of N attempts over 10 minutes with the fields the load generator writes (AZ and node
served-by headers, TTFT, longest gap, canaries), and a cluster.jsonl with a drain's marks. The report is built
in a child process (`g7chaos report RUN_DIR`'s own function); its peak memory is the largest sum of the resident
memory of that process and of the processes it starts to decode the records on every core, sampled every 20 ms.
Baseline, in the same run: the same child that only parses records.jsonl line by line with `json.loads` (the
least any report of those records must do); the ratio says what the report costs beyond reading its input.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

NAME = "report-scale"
ORDER = 90
RUN_S = 600.0
FULL_RECORDS = 1_000_000
TINY_RECORDS = 20_000
BUDGET_S, BUDGET_BYTES, BUDGET_HTML = 20.0, 1 << 30, 5 * 1024 * 1024
ORIGIN = 1_796_000_000.0
SAMPLE_S = 0.02


def make_run(folder: Path, records: int, seed: int = 7) -> Path:
    """A run folder of `records` attempts over RUN_S seconds, with one fault from 200 s to 320 s."""
    rng = random.Random(seed)
    load = folder / "load"
    load.mkdir(parents=True)
    nodes = [f"ip-10-0-{i}-4.us-east-2.compute.internal" for i in range(16)]
    zones = ["us-east-2a", "us-east-2b"]
    with (load / "records.jsonl").open("w") as fh:
        for i in range(records):
            t = ORIGIN + RUN_S * i / records
            node = rng.randrange(16)
            failed = 200 < t - ORIGIN < 230 and rng.random() < 0.05
            ttft = rng.lognormvariate(3.4, 0.3)
            window = "steady" if t - ORIGIN < 200 else "fault:ecc-double-bit-error" if t - ORIGIN < 320 else "recovery"
            record: dict[str, Any] = {
                "key": f"k{i}", "attempt": 1, "status": 0 if failed else 200,
                "served_by": {} if failed else {"x-served-by-az": zones[node % 2], "x-served-by-node": nodes[node]},
                "ttft_ms": None if failed else round(ttft, 3), "tbt_max_ms": None if failed else round(ttft / 2, 3),
                "tokens": 0 if failed else 64, "digest": None if failed else "ab12cd34ef56ab78", "window": window,
                "t_start": round(t, 6), "t_end": round(t + 1.5, 6), "error": "timeout" if failed else None,
                "detail": "stall" if failed else None, "canary": (i % 4) if i % 1000 == 0 else None, "worker": i % 4}
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
    marks = [{"at": ORIGIN + 200.0, "kind": "fault-injected", "subject": "ecc-double-bit-error",
              "label": "ecc-double-bit-error injected", "node": nodes[0], "fault": 0},
             {"at": ORIGIN + 201.0, "kind": "node-condition", "subject": nodes[0], "label": f"GpuDbe=True on {nodes[0]}",
              "node": nodes[0]},
             {"at": ORIGIN + 215.0, "kind": "cordon", "subject": nodes[0], "label": f"cordoned {nodes[0]}",
              "node": nodes[0]}]
    for p in range(8):
        marks.append({"at": ORIGIN + 1.0, "kind": "pod-placed", "subject": f"triton-{p}", "label": f"pod triton-{p}",
                      "node": nodes[0]})
        marks.append({"at": ORIGIN + 220.0 + p, "kind": "pod-evicted", "subject": f"triton-{p}",
                      "label": f"pod triton-{p} evicted", "node": nodes[0]})
    marks.append({"at": ORIGIN + 300.0, "kind": "node-ready", "subject": "ip-10-0-99-4", "label": "node ip-10-0-99-4 Ready"})
    (folder / "cluster.jsonl").write_text("".join(json.dumps(m) + "\n" for m in marks))
    iso = lambda s: time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ORIGIN + s))   # noqa: E731
    result = {"kind": "run", "scenario": "ecc-double-bit-error", "target": "bench", "verdict": "pass", "exit_code": 0,
              "started_at": iso(0), "ended_at": iso(RUN_S), "slo_ttft_ms": 500.0, "slo_tbt_ms": 50.0,
              "faults": [{"name": "ecc-double-bit-error", "injected_at": iso(200), "landed": True,
                          "landed_at": iso(201), "reverted_at": iso(320), "nodes": [nodes[0]], "index": 0}],
              "limits": [{"check": "node-drained", "within_s": 120.0}, {"check": "node-replaced", "within_s": 600.0}],
              "metrics": {"requests": records, "windows": [
                  {"window": "steady", "requests": 1, "started_at": iso(0), "ended_at": iso(200)}]}}
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def _child(code: str, folder: Path) -> dict[str, float]:
    """Run `code` in a fresh interpreter; its wall time, and the peak of its memory together with every process
    it starts (the record decoders), sampled from the kernel every SAMPLE_S."""
    wrapper = ("import json, sys, time\nt0 = time.perf_counter()\n" + code +
               "\nprint(json.dumps({'s': time.perf_counter() - t0}))")
    proc = subprocess.Popen([sys.executable, "-c", wrapper, str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    tree, peak = psutil.Process(proc.pid), 0
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            rss = sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)])
        except psutil.Error:          # a decoder that ended between the listing and the reading
            rss = 0
        peak = max(peak, rss)
        time.sleep(SAMPLE_S)          # sampling a child's memory: nothing here waits on cluster state
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(err[-2000:])
    return {**json.loads(out.strip().splitlines()[-1]), "rss": peak}


REPORT = "from harness.report.writers import rebuild_run\nrebuild_run(sys.argv[1])"
PARSE = ("n = 0\nfor line in open(sys.argv[1] + '/load/records.jsonl', 'rb'):\n    json.loads(line); n += 1")


def run(tiny: bool = False) -> dict[str, Any]:
    records = TINY_RECORDS if tiny else FULL_RECORDS
    with tempfile.TemporaryDirectory(prefix="g7chaos-bench-report-") as tmp:
        folder = make_run(Path(tmp) / "run", records)
        size_in = (folder / "load" / "records.jsonl").stat().st_size
        baseline = _child(PARSE, folder)
        report = _child(REPORT, folder)
        html = (folder / "report.html").stat().st_size
        result = json.loads((folder / "result.json").read_text())
    return {"records": records, "records_bytes": size_in, "report_s": round(report["s"], 2),
            "report_peak_rss_bytes": int(report["rss"]), "parse_s": round(baseline["s"], 2),
            "parse_peak_rss_bytes": int(baseline["rss"]), "html_bytes": html,
            "ratio_to_parse": round(report["s"] / baseline["s"], 2) if baseline["s"] else None,
            "milestones": {m["name"]: m["after_s"] for m in result.get("milestones", [])},
            "score": (result.get("score") or {}).get("value"),
            "within_budget": report["s"] < BUDGET_S and report["rss"] < BUDGET_BYTES and html < BUDGET_HTML}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f"report.html of a 10-minute run, {result['records']:,} records ({result['records_bytes'] / 1e6:.0f} MB)",
             f"{result['report_s']:.1f} s, peak {result['report_peak_rss_bytes'] / 2**20:.0f} MiB, "
             f"{result['html_bytes'] / 1024:.0f} KiB; parsing alone {result['parse_s']:.1f} s "
             f"({result['ratio_to_parse']}x)",
             "within budget (20 s, 1 GB, 5 MB)" if result["within_budget"] else "OVER BUDGET")]
