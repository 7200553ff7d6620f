"""`g7chaos matrix [DIR]`: every scenario against every twin profile — the harness proving it can tell.

One twin per profile (a fresh deployment each, so an anti-pattern's damage never leaks into the next
column) and a game day on each; the verdict matrix (rows scenarios, columns profiles) is printed and written
to `<report-dir>/matrix.json` and `matrix.txt`, each profile's game day to `<report-dir>/<profile>/`.
The `article` column should be all pass and each anti-pattern column should fail only the checks of the
prescription it breaks; reading that is the point of the table.

Columns run `--workers` at a time (default 3), each in its own worker process with its own twin, because a
game day spends most of its wall time waiting on scenario time, not computing: a column uses about half a core,
so three side by side fit two cores (docs/PERFORMANCE.md has the figures). A worker's live console goes to `<report-dir>/<profile>/console.log`; this process prints one
line per column as it ends.

Exit 0 when every cell reached a verdict (pass, fail or inconclusive), 3 when interrupted, 4 when a cell ended in
error (a twin that did not start, a worker that died, a revert that failed): those cells prove nothing either way.
A cell whose only failure is `fault-landed` (`embedded-dcgm-exporter` hides a thermal fault from the exporter,
its one detector) is an error by the run's contract but not a broken matrix: the harness refused to judge a
deployment that never saw the fault, which is what the cell is there to show. An
inconclusive cell is a verdict of its own: a column whose profile leaves lasting damage (`plugin-before-driver`
leaves a replaced node without GPUs, `cold-start-from-s3` leaves replicas loading for minutes) shows the scenarios
that ran on the damaged fleet as inconclusive, since the fleet was not steady when they ended.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.report.console import ConsoleView
from harness.report.matrix import VerdictMatrix, write_matrix
from harness.report.model import GamedayResult, RunResult
from harness.report.writers import run_dir, write_gameday
from harness.scenario.loader import scenario_files
from harness.session import SessionOptions, TargetStartError, load_all, open_session


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
    parser.add_argument("--workers", type=int, default=3,
                        help="profiles run at once, each in its own process on its own twin (default 3; 1 = in turn)")


def run(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        raise UsageError(f"{args.directory}: not a directory of scenario files")
    paths = scenario_files([args.directory])
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

    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {args.workers})")

    gamedays: list[tuple[str, GamedayResult]] = []
    with ConsoleView() as console:
        columns = _columns_in_workers if args.workers > 1 and len(profiles) > 1 else _columns_in_turn
        for profile, gameday in columns(scenarios, profiles, args, console):
            gamedays.append((profile, gameday))
            order = {p: i for i, p in enumerate(profiles)}
            gamedays.sort(key=lambda item: order[item[0]])
            matrix = VerdictMatrix.from_gamedays(gamedays)
            write_matrix(matrix, args.report_dir)     # after every column: an interrupted matrix keeps its cells
            if any(c.verdict == "aborted" for c in matrix.column(profile)):
                break
    matrix = VerdictMatrix.from_gamedays(gamedays)
    path = write_matrix(matrix, args.report_dir)
    from rich.console import Console
    matrix.render(Console(width=None if sys.stdout.isatty() else 240))   # a log keeps the cells on one line
    print(f"matrix: {path}")
    return matrix.exit_code()


def _column(scenarios: list, profile: str, args: argparse.Namespace, console: ConsoleView) -> GamedayResult:
    """One profile's column: a fresh twin and a game day of every scenario on it, written under its folder."""
    started = datetime.now(timezone.utc)
    profile_dir = args.report_dir / profile
    console.event(f"profile {profile}: {len(scenarios)} scenario(s) on a fresh twin")
    from harness.run.runner import run_scenarios     # the clients a run needs load only when one starts
    try:
        with open_session("twin", SessionOptions(scenarios=tuple(s for _, s in scenarios), profile=profile,
                                                 time_scale=args.time_scale, report_dir=profile_dir)) as session:
            runs = run_scenarios(session, scenarios, seed=args.seed, report_dir=profile_dir, console=console)
    except TargetStartError as exc:
        print(f"g7chaos matrix: twin for profile {profile} could not be started: {exc}", file=sys.stderr)
        runs = [RunResult.build(scenario=s.name, target="twin", profile=profile, unreachable=True,
                                error=f"twin did not start: {exc}") for _, s in scenarios]
    gameday = GamedayResult.from_runs(runs, name=f"matrix-{profile}", target="twin", profile=profile,
                                      started_at=started, ended_at=datetime.now(timezone.utc))
    out = run_dir(profile_dir, "gameday", started)
    gameday = gameday.model_copy(update={"report_dir": str(out)})
    write_gameday(gameday, out)
    return gameday


def _columns_in_turn(scenarios: list, profiles: list[str], args: argparse.Namespace, console: ConsoleView):
    for profile in profiles:
        yield profile, _column(scenarios, profile, args, console)


def _column_in_worker(scenarios: list, profile: str, args: argparse.Namespace) -> dict[str, Any]:
    """A worker process's column; its console goes to a log file so the columns do not interleave."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent forwards an interrupt as SIGTERM, once
    profile_dir = args.report_dir / profile
    profile_dir.mkdir(parents=True, exist_ok=True)
    with open(profile_dir / "console.log", "w", encoding="utf-8") as log, ConsoleView(log, live=False) as console:
        try:
            gameday = _column(scenarios, profile, args, console)
        except Exception as exc:     # a column that broke is a column of errors, not a lost matrix
            gameday = _error_column(scenarios, profile, f"matrix worker failed: {type(exc).__name__}: {exc}")
    return gameday.model_dump(mode="json")


def _error_column(scenarios: list, profile: str, error: str) -> GamedayResult:
    runs = [RunResult.build(scenario=s.name, target="twin", profile=profile, error=error) for _, s in scenarios]
    return GamedayResult.from_runs(runs, name=f"matrix-{profile}", target="twin", profile=profile)


def longest_first(profiles: list[str], report_dir: Path) -> list[str]:
    """The columns in the order to start them: the longest last time first (a column whose fleet a profile damages
    waits out its recovery bound in every run and takes twice as long as the others), so no long column starts
    last and runs alone. A column not run before into this folder counts as the longest. The table keeps the
    profiles' own order."""
    def took(profile: str) -> float:
        for result in sorted((report_dir / profile).glob("*-gameday/result.json"), reverse=True):
            try:
                gameday = GamedayResult.model_validate_json(result.read_text())
            except (OSError, ValueError):
                continue
            if gameday.started_at and gameday.ended_at:
                return (gameday.ended_at - gameday.started_at).total_seconds()
        return float("inf")
    return sorted(profiles, key=took, reverse=True)      # stable: equal ones keep the profiles' order


def _columns_in_workers(scenarios: list, profiles: list[str], args: argparse.Namespace, console: ConsoleView):
    """Columns as they finish, `args.workers` at a time. Ctrl-C or SIGTERM reaches each running worker as
    SIGTERM (its runner reverts and ends the run aborted); columns not yet started never start."""
    pool = ProcessPoolExecutor(max_workers=min(args.workers, len(profiles)),
                               mp_context=multiprocessing.get_context("spawn"))
    pending: dict[Future, str] = {}
    queue = longest_first(profiles, args.report_dir)
    interrupted = False

    def interrupt(signum: int, _frame: Any) -> None:
        nonlocal interrupted
        if interrupted:
            return
        interrupted = True
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, TypeError):
                pass

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while queue or pending:
            while queue and len(pending) < args.workers and not interrupted:
                profile = queue.pop(0)
                console.event(f"profile {profile}: {len(scenarios)} scenario(s) on a fresh twin "
                              f"(log: {args.report_dir / profile / 'console.log'})")
                pending[pool.submit(_column_in_worker, scenarios, profile, args)] = profile
            if not pending:
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                profile = pending.pop(future)
                try:
                    gameday = GamedayResult.model_validate(future.result())
                except Exception as exc:     # the worker process itself died (killed, out of memory)
                    gameday = _error_column(scenarios, profile, f"matrix worker died: {type(exc).__name__}: {exc}")
                console.event(f"profile {profile}: {gameday.counts['pass']} pass, {gameday.counts['fail']} fail, "
                              f"{gameday.counts['inconclusive']} inconclusive, {gameday.counts['error']} error, "
                              f"{gameday.counts['aborted']} aborted")
                yield profile, gameday
    finally:
        if pending:     # left early (a column aborted, or the caller stopped reading): end the running columns
            interrupt(signal.SIGTERM, None)
        pool.shutdown(wait=True, cancel_futures=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
