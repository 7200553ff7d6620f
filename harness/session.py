"""A session: one target opened for a command, resolved, guarded and, for the built-in twin, kept running.

`run`, `gameday`, `matrix`, `audit`, `run --dry-run` and the pytest plugin open their target here and
nowhere else, so every one of them passes the same guardrails (harness.target.guardrails.preflight) before
anything is planned or injected: a production target needs --confirm <context> and the same name typed at
the terminal's prompt (not for a dry run or an audit, which change nothing), and the contexts, AWS account
(STS) and region must be allowlisted; a refusal is exit 2 and names what mismatched.

For `twin` the session either uses a twin already running (its endpoints file) or starts one in a child
process (harness/builtin_target.py) and stops it when the session closes. What a run must record about that twin
for `g7chaos recover` (its endpoints file, whether this session owns it, its pid, its profile) is kept as
typed facts on the session (`TwinFacts`), never as attributes attached to the target.

    with open_session("twin", SessionOptions(profile="article")) as session:
        session.target ...          # a harness.target.Target
        session.twin.owned          # True: the twin was started for this session and stops with it
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from harness.errors import TargetError, UsageError
from harness.scenario.loader import load_scenario
from harness.scenario.model import Scenario

if TYPE_CHECKING:      # the kubernetes client and httpx load only once a target is opened, not for `--help`
    from harness.target.target import Target
    from harness.builtin_target import TwinProcess


class TargetStartError(TargetError):
    """The target could not be opened: a twin that did not start, an unreadable endpoints file, an STS endpoint
    that did not answer (exit 4: the target, not the input)."""


@dataclass(frozen=True)
class TwinFacts:
    """The twin a session runs on, as a run's journal records it so `g7chaos recover` can find it again."""

    endpoints: Path        # its endpoints file (absolute): recover reaches a restarted twin through it
    profile: str           # the running twin's profile(s), which a run reports
    owned: bool            # started for this session: recover stops it if the run died without doing so
    pid: int | None = None  # the twin process's pid, when this session started it


@dataclass(frozen=True)
class SessionOptions:
    """How a command asks for its target; the fields after `targets_file` concern the twin only."""

    targets_file: Path | None = None      # targets.yaml (default: ./targets.yaml)
    confirm: str | None = None            # production only: one of the target's kube contexts (--confirm)
    dry_run: bool = False                 # nothing will be changed: every allowlist check, no production prompt
    scenarios: tuple[Scenario, ...] = ()  # refused before anything starts if they reach outside the target
    profile: str = "article"              # the profile(s) of a twin started for the session
    time_scale: float = 30.0              # control-plane time compression of a twin started for the session
    report_dir: Path = Path("reports")    # a started twin writes its files under <report_dir>/twin
    twin_endpoints: Path | None = None    # a running twin's endpoints file: used instead of starting one


class Session:
    """An open target (a context manager, like an open file): `close()` stops a twin the session started."""

    def __init__(self, target: Target, twin: TwinFacts | None = None, process: TwinProcess | None = None):
        self.target = target
        self.twin = twin
        self._process = process

    @property
    def profile(self) -> str | None:
        """The twin profile a run on this session reports (None on a named target)."""
        return self.twin.profile if self.twin is not None else None

    def close(self) -> None:
        if self._process is not None:
            self._process.stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_session(target_name: str, options: SessionOptions) -> Session:
    """The named target, guarded; for `twin`, the twin at `options.twin_endpoints`, else one started for it.

    A named target is guarded as soon as it is resolved, which is why commands open the session before the
    live console takes the terminal: the production confirmation prompt reads that terminal."""
    from harness.target.endpoints import EndpointsError, TwinEndpoints
    from harness.target.target import resolve_target
    if target_name != "twin":
        target = resolve_target(target_name, targets_file=options.targets_file)
        _guard(target, options)
        return Session(target)
    if options.twin_endpoints is not None:
        try:
            target = resolve_target("twin", twin_endpoints=options.twin_endpoints)
            running = TwinEndpoints.read(options.twin_endpoints)
        except EndpointsError as exc:
            raise TargetStartError(str(exc)) from exc
        twin = TwinFacts(endpoints=Path(options.twin_endpoints).resolve(),
                         profile=running.profile, owned=False)     # the running twin's profile, not --profile
        _guard(target, options)
        return Session(target, twin)
    from harness.builtin_target import TwinProcess, TwinStartError
    process = TwinProcess(profile=options.profile, time_scale=options.time_scale, out_dir=options.report_dir / "twin")
    try:
        endpoints = process.start()
    except TwinStartError as exc:
        raise TargetStartError(str(exc)) from exc
    try:
        target = resolve_target("twin", twin_endpoints=endpoints)
        twin = TwinFacts(endpoints=Path(endpoints).resolve(), profile=options.profile, owned=True,
                         pid=process.proc.pid if process.proc else None)
        _guard(target, options)
    except BaseException:
        process.stop()
        raise
    return Session(target, twin, process)


def _guard(target: Target, options: SessionOptions) -> None:
    """Every guardrail (harness.target.guardrails.preflight) before anything is injected or even planned.

    A refusal is a GuardrailError (exit 2, naming what mismatched); an STS endpoint that does not answer is
    an unreachable target (exit 4). The production prompt reads the terminal this process was started from.
    """
    from harness.target.guardrails import TargetUnreachableError, preflight
    stdin = sys.stdin
    try:
        preflight(target, list(options.scenarios), confirm=options.confirm, dry_run=options.dry_run,
                  is_tty=bool(stdin is not None and stdin.isatty()), ask=input)
    except TargetUnreachableError as exc:
        raise TargetStartError(str(exc)) from exc


def load_all(paths: Iterable[Path]) -> list[tuple[Path, Scenario]]:
    """Every scenario file, validated; the problems of all of them in one UsageError (exit 2) rather than the
    first file's only, so one command shows every mistake."""
    loaded, errors = [], []
    for path in paths:
        try:
            loaded.append((path, load_scenario(path)))
        except UsageError as exc:
            errors.append(str(exc))
    if errors:
        raise UsageError("\n".join(errors))
    return loaded


def target_name(requested: str | None, scenarios: Iterable[Scenario]) -> str:
    """The target a command runs on: the one asked for (--target), else the one its scenarios name, else `twin`."""
    if requested:
        return requested
    named = {s.target for s in scenarios if s.target}
    if len(named) > 1:
        raise UsageError(f"scenarios name different targets ({', '.join(sorted(named))}); pass --target")
    return named.pop() if named else "twin"
