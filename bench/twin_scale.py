"""Does the twin hold up at a real fleet's size: 64 g7.48xlarge per cluster (8 GPUs each, 512 GPUs in each of the
two clusters of the article's cluster-per-AZ topology, `g7chaos twin up --nodes-per-az 64`)?

The default twin has 2 nodes per AZ; a verdict that holds only on a toy fleet proves little. Four figures:

1. start: wall seconds from spawning `g7chaos twin up` to the twin answering on its inference URL, and the
   twin process's resident memory once the fleet is seeded;
2. `list_node` through the kubernetes client, client-side latency p50/p99 per cluster (every node in one answer);
3. watch fan-out: N harness observers (`ClusterObserver`, each with its own client and connection, as N harness
   processes would have) all watch the same cluster; each cordon is timed from the twin's audit log (the
   API server received the PATCH) to each observer's record of it: delivery p50/p99 pooled over every
   watcher and event, and how many of the N x events deliveries arrived at all;
4. verdict: one ecc-double-bit-error run (`g7chaos run --twin-endpoints`) against the scaled twin, its verdict
   and failed checks beside the same scenario's on the default fleet (this process's game day when it ran,
   else a run on a default twin).

Tiny: the default fleet (2 nodes per AZ), few calls and watchers, the ecc run without a baseline.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from bench._twinbench import AuditClock, summary_ms, twin_target
from harness.observe import ClusterObserver, Timeline
from harness.target.target import Target

NAME = "twin-scale"
ORDER = 60
ROOT = Path(__file__).resolve().parents[1]
ECC = ROOT / "scenarios" / "ecc-double-bit-error.yaml"
FULL = {"nodes_per_az": 64, "list_calls": 100, "watchers": 32, "events": 20}
TINY = {"nodes_per_az": 2, "list_calls": 10, "watchers": 4, "events": 3}
DELIVERY_DEADLINE_S = 10.0
RUN_TIMEOUT_S = 300


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


def _fleet(core: client.CoreV1Api) -> dict[str, int]:
    nodes = core.list_node().items
    gpus = sum(int((n.status.capacity or {}).get("nvidia.com/gpu", "0")) for n in nodes)
    ready = sum(1 for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or []))
    return {"nodes": len(nodes), "ready_nodes": ready, "gpus": gpus}


def _list_latency(core: client.CoreV1Api, calls: int) -> dict[str, Any]:
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        core.list_node()
        took.append(time.perf_counter() - started)
    return summary_ms(took)


def _fan_out(endpoints_path: Path, context: str, kube_url: str, watchers: int, events: int) -> dict[str, Any]:
    """N observers on one cluster; each cordon must reach every one of them."""
    observers = []
    for _ in range(watchers):
        target = Target.from_twin_endpoints(endpoints_path)     # one client (and connection pool) per watcher
        timeline = Timeline()
        observer = ClusterObserver(context, target.kube(context), timeline, pod_namespaces=[])
        observers.append((observer, timeline))
    for observer, _ in observers:
        observer.start()
    try:
        for observer, _ in observers:
            if not observer.ready.wait(60):
                raise RuntimeError("an observer did not list the cluster within 60 s")
        core = client.CoreV1Api(Target.from_twin_endpoints(endpoints_path).kube(context))
        nodes = [n.metadata.name for n in core.list_node().items]
        audit = AuditClock(kube_url)
        delivered: list[float] = []
        first: list[float] = []
        last: list[float] = []
        missing = 0
        for i in range(events):
            node = nodes[(i * 7) % len(nodes)]
            for cordon in (True, False):
                starts = [len(t.observations) for _, t in observers]
                core.patch_node(node, {"spec": {"unschedulable": cordon}})
                deadline = time.time() + DELIVERY_DEADLINE_S
                seen = []
                for (_, timeline), start in zip(observers, starts):
                    seen.append(timeline.wait_for(lambda obs, start=start, node=node, cordon=cordon: next(
                        (o for o in obs[start:] if o.kind == "Node" and o.name == node
                         and bool(o.obj.spec.unschedulable) == cordon), None), deadline))
                call, _ = audit.take(lambda c, node=node: c["api"] == "kube" and c["verb"] == "patch"
                                     and c["resource"] == "nodes" and c["name"] == node)
                if not cordon:
                    continue          # the uncordon restores the node; only cordons are timed
                this = [o.at - call["at"] for o in seen if o is not None and call is not None]
                missing += watchers - len(this)
                delivered.extend(this)
                if this:
                    first.append(min(this))
                    last.append(max(this))
        # the first watcher's record is close to the twin's send; the rest of the spread is the watchers'
        # clients decoding the same event in one interpreter, one after another
        return {"watchers": watchers, "events": events, "deliveries_expected": watchers * events,
                "deliveries": len(delivered), "missing": missing, **summary_ms(delivered),
                "first_watcher": summary_ms(first), "last_watcher": summary_ms(last)}
    finally:
        stoppers = [threading.Thread(target=o.stop, daemon=True) for o, _ in observers]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(timeout=5)


def _short_copy(folder: Path) -> Path:
    """The ECC scenario, 2 minutes long with the fault at 15 s: for the tiny size, which proves the run path works
    and judges nothing."""
    text = re.sub(r"(?m)^duration: .*$", "duration: 2m", ECC.read_text())
    text = re.sub(r"(?m)^(\s*- at: ).*$", r"\g<1>15s", text)
    path = folder / ECC.name
    path.write_text(text)
    return path


def _ecc_run(endpoints_path: Path | None, tiny: bool = False) -> dict[str, Any]:
    """One ecc-double-bit-error run (shortened when `tiny`); on the twin at `endpoints_path`, or on a default
    twin `run` starts."""
    work = Path(tempfile.mkdtemp(prefix="g7bench-ecc-"))
    scenario = _short_copy(work) if tiny else ECC
    command = [sys.executable, "-m", "harness", "run", str(scenario), "--target", "twin", "--profile", "article",
               "--report-dir", str(work)]
    if endpoints_path is not None:
        command += ["--twin-endpoints", str(endpoints_path)]
    try:
        started = time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              env=dict(os.environ, COLUMNS="160"))
        found = sorted(work.glob("*-ecc-double-bit-error/result.json"))
        if not found:
            return {"verdict": "error", "exit_code": proc.returncode, "failed_checks": [],
                    "error": (proc.stderr or proc.stdout)[-500:], "seconds": round(time.monotonic() - started, 1)}
        result = json.loads(found[-1].read_text())
        return {"verdict": result["verdict"], "exit_code": proc.returncode,
                "checks": {c["name"]: c["passed"] for c in result["checks"]},
                "failed_checks": [c["name"] for c in result["checks"] if c["status"] == "fail"],
                "reasons": {c["name"]: c["reason"] for c in result["checks"] if c["status"] == "fail"},
                "measurement_degraded": result.get("measurement_degraded", False),
                "error": result.get("error"), "seconds": result.get("duration_s")}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _baseline() -> tuple[dict[str, Any], str]:
    from bench import gameday_walltime

    for r in gameday_walltime.LAST.get("runs", []):
        if r["scenario"] == "ecc-double-bit-error":
            return {"verdict": r["verdict"], "failed_checks": r["failed_checks"], "reasons": r.get("reasons", {}),
                    "measurement_degraded": r["measurement_degraded"], "seconds": r["seconds"]}, \
                "this run's game day (2 nodes per AZ)"
    return _ecc_run(None), "a run on a default twin (2 nodes per AZ)"


def run(tiny: bool = False) -> dict[str, Any]:
    size = TINY if tiny else FULL
    load_before = os.getloadavg()
    clusters: dict[str, Any] = {}
    with twin_target(nodes_per_az=size["nodes_per_az"], start_timeout_s=180) as (target, twin, start_s):
        rss = _rss_mb(twin.proc.pid) if twin.proc else None
        endpoints = json.loads(twin.endpoints_path.read_text())
        for context in target.contexts:
            core = client.CoreV1Api(target.kube(context))
            clusters[context] = {**_fleet(core), "list_node": _list_latency(core, size["list_calls"])}
        first = target.contexts[0]
        fan_out = _fan_out(twin.endpoints_path, first, endpoints["kube_urls"][first], size["watchers"], size["events"])
        scaled = _ecc_run(twin.endpoints_path, tiny)
        rss_after = _rss_mb(twin.proc.pid) if twin.proc else None
    result: dict[str, Any] = {
        "name": NAME, "tiny": tiny, "load_average": load_before, "nodes_per_az": size["nodes_per_az"],
        "start_s": round(start_s, 2),
        "start_measures": "wall seconds from spawning `g7chaos twin up` to its inference URL answering",
        "twin_rss_mb_after_start": rss, "twin_rss_mb_after_runs": rss_after,
        "clusters": clusters,
        "list_node_measures": "client-side ms per CoreV1Api.list_node() (every node of the cluster in one answer)",
        "fan_out": fan_out, "fan_out_cluster": first,
        "fan_out_measures": "ms from the API server receiving a cordon PATCH (audit log) to each watching "
                            "ClusterObserver's record of it, pooled over watchers and events; first_watcher/"
                            "last_watcher: per event, the earliest and the latest of the N records",
        "ecc_scaled": scaled,
    }
    if not tiny:
        baseline, source = _baseline()
        result["ecc_baseline"], result["ecc_baseline_source"] = baseline, source
        result["ecc_same_verdict"] = (baseline["verdict"] == scaled["verdict"]
                                      and sorted(baseline["failed_checks"]) == sorted(scaled["failed_checks"]))
        # which checks judged differently, and why: a fault check that flips is the harness's problem, an SLO
        # that flips while the twin's own loop is saturated is the twin's
        result["ecc_checks_differing"] = sorted(set(baseline["failed_checks"]) ^ set(scaled["failed_checks"]))
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    size = f"{result['nodes_per_az']} nodes/AZ"
    out = [(f"twin start ({size})",
            f"{result['start_s']:.1f} s spawn to serving; twin RSS {result['twin_rss_mb_after_start']} MB "
            f"(after runs {result['twin_rss_mb_after_runs']} MB)", "")]
    for name, c in result["clusters"].items():
        lst = c["list_node"]
        out.append((f"twin list_node {name} ({size})",
                    f"{c['nodes']} nodes ({c['ready_nodes']} Ready), {c['gpus']} GPUs; list_node p50 {lst['p50_ms']:.1f} ms, "
                    f"p99 {lst['p99_ms']:.1f} ms over {lst['count']} calls", ""))
    f = result["fan_out"]
    out.append((f"twin watch fan-out ({f['watchers']} observers, {size})",
                f"cordon -> each observer's record: p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, max "
                f"{f['max_ms']:.1f} ms (first observer p50 {f['first_watcher']['p50_ms']:.1f} ms, last p50 "
                f"{f['last_watcher']['p50_ms']:.1f} ms); {f['deliveries']}/{f['deliveries_expected']} delivered",
                "all delivered" if f["missing"] == 0 else f"{f['missing']} missing"))
    s = result["ecc_scaled"]
    scaled = s["verdict"] + (f" ({', '.join(s['failed_checks'])})" if s["failed_checks"] else "")
    if result["tiny"]:
        out.append((f"ecc verdict ({size})", scaled, ""))
    else:
        b = result["ecc_baseline"]
        base = b["verdict"] + (f" ({', '.join(b['failed_checks'])})" if b["failed_checks"] else "")
        out.append((f"ecc verdict at {size} vs default fleet", f"scaled: {scaled}; default: {base} "
                    f"[{result['ecc_baseline_source']}]", "same verdict" if result["ecc_same_verdict"] else "DIFFERENT"))
        for name in result.get("ecc_checks_differing", []):
            reason = s.get("reasons", {}).get(name) or result["ecc_baseline"].get("reasons", {}).get(name) or ""
            out.append((f"  ecc check {name} differs", reason[:160], ""))
        if s.get("error"):
            out.append(("  ecc run at scale: error", s["error"][:160], ""))
    return out
