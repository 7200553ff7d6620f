"""`make variants`: draw scenario variants, run each on its own twin, and compare every verdict with the expected one.

    python -m tests.variants [--seed N] [--count 60] [--workers 3] [--report-dir reports/variants] [--only I ...]

Prints the seed first (any seed reproduces its draw: `--seed N`, and `--only I` reruns one variant of it), then one
line per variant as it ends, then the count of wrong verdicts. Exit 0 when every verdict is the expected one, 1
when one is not, 2 when a drawn scenario does not even validate (a bug of the generator).

A wrong verdict on a run whose own measurement was degraded (its result.json says the load generator's event loop
lagged beyond its limit: the machine was too busy, and the twin on it answered late too) is not about the profile:
that variant is run once more, and judged on the second run. Its line says so.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .generator import ROOT, Variant, draw_variants

RUN_TIMEOUT_S = 420.0      # one variant on its own twin: its scenario at 30x plus start, recovery and reports


@dataclass
class Outcome:
    variant: Variant
    verdict: str
    failed: frozenset[str]
    exit_code: int
    detail: str = ""
    reasons: tuple[str, ...] = ()         # each failed check's own reason, figures included
    degraded: str | None = None           # why the run's own measurement was degraded, when it was
    rerun_because: str | None = None      # the first run's degradation, when this is a second run

    @property
    def right(self) -> bool:
        if not self.variant.must_fail:
            return self.verdict == "pass" and self.exit_code == 0
        return self.verdict == "fail" and self.exit_code == 1 and self.failed == self.variant.must_fail

    @property
    def got(self) -> str:
        return "pass" if self.verdict == "pass" else f"{self.verdict}: {', '.join(sorted(self.failed)) or self.detail}"


def run_variant(variant: Variant, folder: Path, run_seed: int, time_scale: float) -> Outcome:
    """`g7chaos run` of one drawn scenario on its profile's own twin, read back from its result.json."""
    path = variant.write(folder / "scenarios")
    report = folder / "runs" / variant.scenario["name"]
    argv = [sys.executable, "-m", "harness", "run", str(path), "--profile", variant.profile, "--report-dir",
            str(report), "--seed", str(run_seed), "--time-scale", str(time_scale)]
    try:
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Outcome(variant, "error", frozenset(), -1, f"no verdict within {RUN_TIMEOUT_S:.0f} s")
    results = sorted(report.glob("*/result.json"))
    if not results:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return Outcome(variant, "error", frozenset(), out.returncode, " | ".join(tail))
    result = json.loads(results[-1].read_text())
    failing = [c for c in result["checks"] if c["status"] == "fail"]
    detail = result.get("error") or ""
    return Outcome(variant, result["verdict"], frozenset(c["name"] for c in failing), out.returncode, detail,
                   tuple(f"{c['name']}: {c['reason']}" for c in failing),
                   (result.get("measurement_degraded_reason") or "measurement degraded")
                   if result.get("measurement_degraded") else None)


def judge_variant(variant: Variant, folder: Path, run_seed: int, time_scale: float) -> Outcome:
    """One run of the variant; a second when the first got a wrong verdict on a degraded measurement."""
    first = run_variant(variant, folder, run_seed, time_scale)
    if first.right or first.degraded is None:
        return first
    second = run_variant(variant, folder, run_seed, time_scale)
    second.rerun_because = first.degraded
    return second


def validate(variants: list[Variant], folder: Path) -> list[str]:
    from harness.strict.problems import ScenarioError
    from harness.scenario.loader import load_scenario
    problems = []
    for variant in variants:
        path = variant.write(folder / "scenarios")
        try:
            load_scenario(path)
        except ScenarioError as exc:
            problems.append(f"{variant.name}: {exc}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.variants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="the draw's seed (default: a new one, printed)")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--workers", type=int, default=3, help="variants run at once, each on its own twin")
    parser.add_argument("--only", type=int, action="append", default=None, help="run only these positions")
    parser.add_argument("--report-dir", type=Path, default=ROOT / "reports" / "variants")
    parser.add_argument("--time-scale", type=float, default=30.0)
    args = parser.parse_args(argv)
    draw_seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"seed {draw_seed} (rerun: python -m tests.variants --seed {draw_seed} --count {args.count})", flush=True)
    drawn = draw_variants(draw_seed, args.count)
    chosen = [drawn[i] for i in args.only] if args.only else drawn
    folder = args.report_dir / f"seed-{draw_seed}"
    problems = validate(chosen, folder)
    if problems:
        print("drawn scenarios that do not validate:\n  " + "\n  ".join(problems), flush=True)
        return 2
    started = time.monotonic()
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = [pool.submit(judge_variant, v, folder, draw_seed, args.time_scale) for v in chosen]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            v = outcome.variant
            again = (f" (on a second run: the first's measurement was degraded, {outcome.rerun_because})"
                     if outcome.rerun_because else "")
            print(f"{'ok   ' if outcome.right else 'WRONG'} {v.name} on {v.profile}: expected {v.expected}, got "
                  f"{outcome.got}  [{'; '.join(v.changes) or 'as shipped'}]{again}", flush=True)
            if not outcome.right:
                print("".join(f"      {reason}\n" for reason in outcome.reasons), end="", flush=True)
    wrong = [o for o in outcomes if not o.right]
    summary = {"seed": draw_seed, "variants": len(outcomes), "wrong": len(wrong),
               "seconds": round(time.monotonic() - started, 1),
               "outcomes": [{"name": o.variant.name, "profile": o.variant.profile, "expected": o.variant.expected,
                             "got": o.got, "right": o.right, "changes": o.variant.changes,
                             "rerun_because": o.rerun_because} for o in outcomes]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "variants.json").write_text(json.dumps(summary, indent=2))
    print(f"seed {draw_seed}: {len(outcomes)} variants, {len(wrong)} wrong verdicts, {summary['seconds']:.0f} s "
          f"({folder / 'variants.json'})", flush=True)
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
