"""`g7chaos run` and `g7chaos gameday`: scenarios against one target, reports and exit codes per the contract.

Before anything is injected, every target passes `guard` (harness.target.guardrails.preflight): a
production target needs --confirm <context> and the same name typed at the terminal's prompt, and the
contexts, AWS account (STS) and region must be allowlisted; a refusal is exit 2 and names what mismatched.
`matrix` reaches the same guard through `run_many`.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from harness.errors import UsageError
from harness.report.console import ConsoleView
from harness.report.model import GamedayResult, RunResult, gameday_exit_code
from harness.report.writers import run_dir, write_gameday
from harness.scenario.loader import load_scenario, scenario_files
from harness.scenario.model import Scenario


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


def load_all(paths: list[Path]) -> list[tuple[Path, Scenario]]:
    loaded, errors = [], []
    for path in paths:
        try:
            loaded.append((path, load_scenario(path)))
        except UsageError as exc:
            errors.append(str(exc))
    if errors:
        raise UsageError("\n".join(errors))
    return loaded


def guard(target: object, scenarios: list[tuple[Path, Scenario]], *, confirm: str | None = None,
          dry_run: bool = False) -> None:
    """Every guardrail (harness.target.guardrails.preflight) before anything is injected or even planned.

    A refusal is a GuardrailError (exit 2, naming what mismatched); an STS endpoint that does not answer is
    an unreachable target (exit 4). The production prompt reads the terminal this process was started from.
    """
    from harness.target.guardrails import TargetUnreachableError, preflight
    stdin = sys.stdin
    try:
        preflight(target, [s for _, s in scenarios], confirm=confirm, dry_run=dry_run,
                  is_tty=bool(stdin is not None and stdin.isatty()), ask=input)
    except TargetUnreachableError as exc:
        raise TargetStartError(str(exc)) from exc


def preflight_named(target_name: str, scenarios: list[tuple[Path, Scenario]], args: argparse.Namespace,
                    *, dry_run: bool = False) -> object | None:
    """A named (non-twin) target resolved and guarded before the live console takes the terminal, which the
    production confirmation prompt needs; None for the twin, guarded once it is up."""
    if target_name == "twin":
        return None
    from harness.target.target import resolve_target
    target = resolve_target(target_name, targets_file=args.targets_file)
    guard(target, scenarios, confirm=getattr(args, "confirm", None), dry_run=dry_run)
    return target


@contextmanager
def open_target(name: str, profile: str, time_scale: float, targets_file: Path | None,
                report_dir: Path, twin_endpoints: Path | None = None, *,
                scenarios: list[tuple[Path, Scenario]] = (), guarded: object | None = None,
                dry_run: bool = False) -> Iterator[object]:
    """The named target, guarded; for `twin`, the running twin at `twin_endpoints`, else one started for this run.

    `guarded` is a target `preflight_named` already resolved and checked. A started twin's endpoints file
    path is left on the target (`twin_endpoints`) so the run journal can record it for `g7chaos recover`."""
    from harness.target.target import resolve_target
    if name != "twin":
        if guarded is None:
            guarded = resolve_target(name, targets_file=targets_file)
            guard(guarded, list(scenarios), dry_run=dry_run)
        yield guarded
        return
    from harness.target.endpoints import EndpointsError
    if twin_endpoints is not None:
        try:
            target = resolve_target("twin", twin_endpoints=twin_endpoints)
        except EndpointsError as exc:
            raise TargetStartError(str(exc)) from exc
        target.twin_endpoints = str(Path(twin_endpoints).resolve())
        from harness.target.endpoints import TwinEndpoints
        target.twin_profile = TwinEndpoints.read(twin_endpoints).profile   # the running twin's, not --profile
        guard(target, list(scenarios), dry_run=dry_run)
        yield target
        return
    from harness.commands.twinproc import TwinProcess, TwinStartError
    twin = TwinProcess(profile=profile, time_scale=time_scale, out_dir=report_dir / "twin")
    try:
        endpoints = twin.start()
    except TwinStartError as exc:
        raise TargetStartError(str(exc)) from exc
    try:
        target = resolve_target("twin", twin_endpoints=endpoints)
        target.twin_endpoints = str(Path(endpoints).resolve())
        target.owns_twin = True      # started for this run: `recover` stops it if the run died without doing so
        target.twin_pid = twin.proc.pid if twin.proc else None
        guard(target, list(scenarios), dry_run=dry_run)
        yield target
    finally:
        twin.stop()


class TargetStartError(Exception):
    pass


def run_many(scenarios: list[tuple[Path, Scenario]], *, target_name: str, profile: str, seed: int,
             report_dir: Path, time_scale: float = 30.0, targets_file: Path | None = None,
             console: ConsoleView | None = None, twin_endpoints: Path | None = None,
             guarded: object | None = None) -> list[RunResult]:
    from harness.runner import Runner, RunOptions
    console = console or ConsoleView()
    results: list[RunResult] = []
    with open_target(target_name, profile, time_scale, targets_file, report_dir, twin_endpoints,
                     scenarios=scenarios, guarded=guarded) as target:
        for _, scenario in scenarios:
            options = RunOptions(profile=getattr(target, "twin_profile", profile) if target_name == "twin" else None,
                                 seed=seed,
                                 report_root=report_dir, console=console,
                                 twin_endpoints=getattr(target, "twin_endpoints", None),
                                 owns_twin=getattr(target, "owns_twin", False),
                                 twin_pid=getattr(target, "twin_pid", None))
            result = Runner(scenario, target, options).run()
            results.append(result)
            if result.verdict == "aborted":
                break
    return results


def _target_name(args: argparse.Namespace, scenarios: list[tuple[Path, Scenario]]) -> str:
    if args.target:
        return args.target
    named = {s.target for _, s in scenarios if s.target}
    if len(named) > 1:
        raise UsageError(f"scenarios name different targets ({', '.join(sorted(named))}); pass --target")
    return named.pop() if named else "twin"


def run_run(args: argparse.Namespace) -> int:
    scenarios = load_all(args.scenarios)
    if args.dry_run:
        from harness.commands.dryrun import dry_run
        return dry_run(scenarios, args)
    target_name = _target_name(args, scenarios)
    try:
        guarded = preflight_named(target_name, scenarios, args)
        with ConsoleView() as console:
            results = run_many(scenarios, target_name=target_name, profile=args.profile,
                               seed=args.seed, report_dir=args.report_dir, time_scale=args.time_scale,
                               targets_file=args.targets_file, console=console,
                               twin_endpoints=args.twin_endpoints, guarded=guarded)
    except TargetStartError as exc:
        print(f"g7chaos: target could not be started: {exc}", file=sys.stderr)
        return 4
    return int(gameday_exit_code(results)) if len(results) > 1 else results[0].exit_code


def run_gameday(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        raise UsageError(f"{args.directory}: not a directory of scenario files")
    paths = scenario_files([args.directory])
    if not paths:
        raise UsageError(f"{args.directory}: no scenario files (*.yaml)")
    scenarios = load_all(paths)
    started = datetime.now(timezone.utc)
    target_name = _target_name(args, scenarios)
    try:
        guarded = preflight_named(target_name, scenarios, args)
        with ConsoleView() as console:
            results = run_many(scenarios, target_name=target_name, profile=args.profile,
                               seed=args.seed, report_dir=args.report_dir, time_scale=args.time_scale,
                               targets_file=args.targets_file, console=console,
                               twin_endpoints=args.twin_endpoints, guarded=guarded)
            gameday = GamedayResult.from_runs(results, name=f"gameday-{args.directory.name}",
                                          target=args.target or "twin", profile=args.profile, started_at=started,
                                          ended_at=datetime.now(timezone.utc))
            out = run_dir(args.report_dir, f"gameday-{args.directory.name}", started)
            gameday = gameday.model_copy(update={"report_dir": str(out)})
            write_gameday(gameday, out)
            console.final_gameday(gameday)
    except TargetStartError as exc:
        print(f"g7chaos: target could not be started: {exc}", file=sys.stderr)
        return 4
    return gameday.exit_code


def run_scenarios_for_pytest(path: Path, *, target: str, profile: str, report_dir: Path) -> RunResult:
    scenarios = load_all([path])
    return run_many(scenarios, target_name=target, profile=profile, seed=1, report_dir=report_dir)[0]


add_arguments = add_run_arguments
run = run_run
