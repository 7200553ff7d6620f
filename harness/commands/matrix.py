"""`g7chaos matrix [DIR]`: every scenario against every twin profile — the harness proving it can tell.

One twin per profile (a fresh deployment each, so an anti-pattern's damage never leaks into the next
column) and a game day on each; the verdict matrix (rows scenarios, columns profiles) is printed and written
to `<report-dir>/matrix.json` and `matrix.txt`, each profile's game day to `<report-dir>/<profile>/`.
The `article` column should be all pass and each anti-pattern column should fail only the checks of the
prescription it breaks; reading that is the point of the table.

Exit 0 when every cell reached a verdict (pass or fail), 3 when interrupted, 4 when a cell ended in error
(a twin that did not start, a fault that did not land): those cells prove nothing either way.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from harness.cli import UsageError
from harness.commands.run import TargetStartError, load_all, run_many
from harness.report.console import ConsoleView
from harness.report.matrix import VerdictMatrix, write_matrix
from harness.report.model import GamedayResult, RunResult
from harness.report.writers import run_dir, write_gameday


def all_profiles() -> list[str]:
    from harness.cli import twin_profiles
    return list(twin_profiles())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", nargs="?", type=Path, default=Path("scenarios"))
    parser.add_argument("--profiles", default=None, help="comma-separated profiles (default: every profile)")
    parser.add_argument("--scenario", action="append", default=None,
                        help="only these scenario names (repeatable; default: every file in DIR)")
    parser.add_argument("--report-dir", type=Path, default=Path("reports/matrix"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=30.0)


def run(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        raise UsageError(f"{args.directory}: not a directory of scenario files")
    paths = sorted(p for p in args.directory.iterdir() if p.suffix in (".yaml", ".yml"))
    scenarios = load_all(paths)
    if args.scenario:
        unknown = set(args.scenario) - {s.name for _, s in scenarios}
        if unknown:
            raise UsageError(f"no scenario named {', '.join(sorted(unknown))} in {args.directory}")
        scenarios = [(p, s) for p, s in scenarios if s.name in args.scenario]
    if not scenarios:
        raise UsageError(f"{args.directory}: no scenario files (*.yaml)")
    known = all_profiles()
    profiles = [p.strip() for p in (args.profiles or ",".join(known)).split(",") if p.strip()]
    unknown_profiles = [p for p in profiles if p not in known]
    if unknown_profiles:
        raise UsageError(f"unknown profile(s) {', '.join(unknown_profiles)}; known: {', '.join(known)}")

    gamedays: list[tuple[str, GamedayResult]] = []
    exit_code = 0
    with ConsoleView() as console:
        for profile in profiles:
            started = datetime.now(timezone.utc)
            profile_dir = args.report_dir / profile
            console.event(f"profile {profile}: {len(scenarios)} scenario(s) on a fresh twin")
            try:
                runs = run_many(scenarios, target_name="twin", profile=profile, seed=args.seed,
                                report_dir=profile_dir, time_scale=args.time_scale, console=console)
            except TargetStartError as exc:
                print(f"g7chaos matrix: twin for profile {profile} could not be started: {exc}", file=sys.stderr)
                runs = [RunResult.build(scenario=s.name, target="twin", profile=profile, unreachable=True,
                                        error=f"twin did not start: {exc}") for _, s in scenarios]
            gameday = GamedayResult.from_runs(runs, name=f"matrix-{profile}", target="twin", profile=profile,
                                              started_at=started, ended_at=datetime.now(timezone.utc))
            out = run_dir(profile_dir, "gameday", started)
            gameday = gameday.model_copy(update={"report_dir": str(out)})
            write_gameday(gameday, out)
            gamedays.append((profile, gameday))
            matrix = VerdictMatrix.from_gamedays(gamedays)
            write_matrix(matrix, args.report_dir)     # after every column: an interrupted matrix keeps its cells
            if any(r.verdict == "aborted" for r in runs):
                exit_code = 3
                break
            if any(r.verdict == "error" for r in runs):
                exit_code = 4
    matrix = VerdictMatrix.from_gamedays(gamedays)
    path = write_matrix(matrix, args.report_dir)
    from rich.console import Console
    matrix.render(Console())
    print(f"matrix: {path}")
    return exit_code
