"""How long a game day takes: every shipped scenario (scenarios/) on the `article` profile through
`g7chaos gameday`, seconds end to end and per scenario.

A game day is worth running only if it fits in a CI job or a coffee break; this is the figure that says
whether it does. End to end is the command's wall time from spawn to exit (twin start, every scenario,
reports); per scenario is each run's `duration_s` from the combined result.json (preflight to verdict), so
their sum against the total shows what the twin and the reports cost. Verdicts are recorded too: a game
day that got faster by judging differently is not faster.

Tiny: the same command's `--dry-run` sibling (`g7chaos run --dry-run` over every scenario), which resolves
each plan against a started twin and runs nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "gameday-walltime"
ORDER = 50
ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
PROFILE = "article"
TIMEOUT_S = 600
LAST: dict[str, Any] = {}       # the full run's result, for twin-scale's baseline verdicts in the same process


def _g7chaos(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def run(tiny: bool = False) -> dict[str, Any]:
    scenarios = sorted(p.name for p in SCENARIOS.glob("*.yaml"))
    work = Path(tempfile.mkdtemp(prefix="g7bench-gameday-"))
    load_before = os.getloadavg()
    try:
        if tiny:
            command = _g7chaos("run", "--dry-run", "--target", "twin", "--profile", PROFILE,
                               *[str(SCENARIOS / s) for s in scenarios])
        else:
            command = _g7chaos("gameday", str(SCENARIOS), "--target", "twin", "--profile", PROFILE,
                               "--report-dir", str(work / "reports"))
        started = time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S,
                              env=dict(os.environ, COLUMNS="160"))
        took = time.monotonic() - started
        result: dict[str, Any] = {
            "name": NAME, "tiny": tiny, "profile": PROFILE, "scenarios": scenarios, "load_average": load_before,
            "command": " ".join(["g7chaos", *command[3:]]).replace(str(ROOT) + "/", "").replace(str(work), "<tmp>"),
            "exit_code": proc.returncode,
            "end_to_end_s": round(took, 2),
            "end_to_end_measures": ("wall seconds from spawning the command to its exit: twin start, every scenario, "
                                    "reports" if not tiny else "wall seconds of a dry run: twin start and every "
                                    "scenario's plan, nothing injected"),
        }
        if tiny:
            if proc.returncode != 0:
                result["error"] = f"dry run exited {proc.returncode}: {proc.stderr[-500:] or proc.stdout[-500:]}"
            return result
        found = sorted((work / "reports").glob("*-gameday-*/result.json"))
        if not found:
            result["error"] = f"no combined result.json (exit {proc.returncode}): {proc.stderr[-500:]}"
            return result
        combined = json.loads(found[-1].read_text())
        runs = [{"scenario": r["scenario"], "seconds": r["duration_s"], "verdict": r["verdict"],
                 "measurement_degraded": r.get("measurement_degraded", False),
                 "failed_checks": [c["name"] for c in r["checks"] if c["status"] == "fail"],
                 "reasons": {c["name"]: c["reason"] for c in r["checks"] if c["status"] == "fail"},
                 "error": r.get("error")} for r in combined["runs"]]
        result.update({
            "verdict": combined["verdict"], "counts": combined["counts"], "runs": runs,
            "scenario_seconds_sum": round(sum(r["seconds"] or 0 for r in runs), 2),
            "per_scenario_measures": "each run's duration_s in the combined result.json: preflight to verdict, "
                                     "wall seconds",
        })
        result["overhead_s"] = round(took - result["scenario_seconds_sum"], 2)
        LAST.clear()
        LAST.update(result)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    if result.get("error"):
        return [("game day wall time", result["error"][:200], "FAILED")]
    if result["tiny"]:
        return [("game day (tiny: dry run of every scenario)",
                 f"{result['end_to_end_s']:.1f} s wall for {len(result['scenarios'])} plans", "plans resolved")]
    out = [(f"game day wall time ({len(result['runs'])} scenarios, {result['profile']})",
            f"{result['end_to_end_s']:.1f} s end to end (command spawn to exit); scenarios {result['scenario_seconds_sum']:.1f} s, "
            f"twin start and reports {result['overhead_s']:.1f} s",
            f"verdict {result['verdict']} ({result['counts']['pass']} pass, {result['counts']['fail']} fail)")]
    for r in result["runs"]:
        note = r["verdict"] + (f" ({', '.join(r['failed_checks'])})" if r["failed_checks"] else "")
        if r["measurement_degraded"]:
            note += "; load generator degraded"
        out.append((f"  scenario {r['scenario']}", f"{r['seconds']:.1f} s (preflight to verdict)", note))
    return out
