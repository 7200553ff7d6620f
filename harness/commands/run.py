"""`g7chaos run` and `g7chaos gameday`: scenarios against one target, reports and exit codes per the contract.

The target is opened through harness/session.py, which guards it before anything is planned (a production
target needs --confirm <context> and the same name typed at the terminal's prompt; contexts, AWS account and
region must be allowlisted; a refusal is exit 2). The session is opened before the live console starts,
because that prompt reads the terminal the console would take. `--dry-run` is harness/commands/dryrun.py.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from harness.commands.dryrun import dry_run
from harness.errors import UsageError
from harness.report.console import ConsoleView
from harness.report.history import index_path, record_gameday
from harness.report.model import GamedayResult, gameday_exit_code
from harness.report.writers import run_dir, write_gameday
from harness.scenario.loader import scenario_files
from harness.scenario.model import Scenario
from harness.session import SessionOptions, TargetStartError, load_all, open_session, target_name


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=None, help="'twin' (default) or a name from targets.yaml")
    parser.add_argument("--targets-file", type=Path, default=None, help="targets.yaml (default: ./targets.yaml)")
    parser.add_argument("--profile", default="article", help="twin profile(s), comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report-dir", type=Path, default=Path("reports"))
    parser.add_argument("--time-scale", type=float, default=30.0, help="twin only: control-plane time compression")
    parser.add_argument("--twin-endpoints", type=Path, default=None,
                        help="twin only: use the twin already running with this endpoints file instead of starting one")
    parser.add_argument("--confirm", default=None, metavar="CONTEXT",
                        help="production targets only: one of the target's kube contexts, typed again at the prompt")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenarios", nargs="+", type=Path, metavar="SCENARIO.yaml")
    parser.add_argument("--dry-run", action="store_true", help="resolve and print the plan, change nothing")
    _common(parser)


def add_gameday_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", nargs="?", type=Path, default=Path("scenarios"))
    _common(parser)


def _session_options(args: argparse.Namespace, scenarios: list[tuple[Path, Scenario]], *,
                     dry_run: bool = False) -> SessionOptions:
    return SessionOptions(targets_file=args.targets_file, confirm=args.confirm, dry_run=dry_run,
                          scenarios=tuple(s for _, s in scenarios), profile=args.profile, time_scale=args.time_scale,
                          report_dir=args.report_dir, twin_endpoints=args.twin_endpoints)


def run_run(args: argparse.Namespace) -> int:
    scenarios = load_all(args.scenarios)
    name = target_name(args.target, [s for _, s in scenarios])
    if args.dry_run:
        return dry_run(scenarios, name, _session_options(args, scenarios, dry_run=True), seed=args.seed)
    from harness.run.runner import run_scenarios     # the clients a run needs load only when one starts
    try:
        with open_session(name, _session_options(args, scenarios)) as session, ConsoleView() as console:
            results = run_scenarios(session, scenarios, seed=args.seed, report_dir=args.report_dir, console=console)
            if index_path(args.report_dir).is_file():     # each run rebuilt it; absent if the history failed
                console.index(index_path(args.report_dir))
    except TargetStartError as exc:
        print(f"g7chaos: target could not be started: {exc}", file=sys.stderr)
        return exc.exit_code
    return int(gameday_exit_code(results)) if len(results) > 1 else results[0].exit_code


def run_gameday(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        raise UsageError(f"{args.directory}: not a directory of scenario files")
    paths = scenario_files([args.directory])
    if not paths:
        raise UsageError(f"{args.directory}: no scenario files (*.yaml)")
    scenarios = load_all(paths)
    started = datetime.now(timezone.utc)
    name = target_name(args.target, [s for _, s in scenarios])
    from harness.run.runner import run_scenarios
    try:
        with open_session(name, _session_options(args, scenarios)) as session, ConsoleView() as console:
            results = run_scenarios(session, scenarios, seed=args.seed, report_dir=args.report_dir, console=console)
            gameday = GamedayResult.from_runs(results, name=f"gameday-{args.directory.name}",
                                          target=args.target or "twin", profile=args.profile, started_at=started,
                                          ended_at=datetime.now(timezone.utc))
            out = run_dir(args.report_dir, f"gameday-{args.directory.name}", started)
            gameday = gameday.model_copy(update={"report_dir": str(out)})
            write_gameday(gameday, out)
            index = record_gameday(args.report_dir, gameday)
            console.final_gameday(gameday)
            if index is not None:
                console.index(index)
    except TargetStartError as exc:
        print(f"g7chaos: target could not be started: {exc}", file=sys.stderr)
        return exc.exit_code
    return gameday.exit_code


add_arguments = add_run_arguments
run = run_run
