"""`g7chaos recover`: finish the reverts an interrupted run still owes.

Every fault writes how to undo itself into its run's journal before it changes anything, and writes again
once undone; a run killed in between (SIGKILL, a lost CI runner, a power cut) leaves exactly the owed
reverts behind. This command reads every journal under the reports folder, rebuilds each run's target
from its run-started record (for the twin, its endpoints file first, since a twin may have come back on new
ports; else the target spec the run used), calls the fault's `revert_owed` from the journal's arguments
alone, and records the revert in that same journal so a second `recover` has nothing left to do.

Exit 0 when nothing is owed any more; 4 when a revert could not be done (the target unreachable or the
revert failed) — the journal still says what is owed, so `recover` can simply be run again.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from harness.errors import ExitCode
from harness.journal import Journal, OwedRevert, owed_reverts, read_records


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="folder holding the runs' journals")
    parser.add_argument("--target", default=None, help="use this target instead of the one each journal names")
    parser.add_argument("--targets-file", type=Path, default=None)
    parser.add_argument("--twin-endpoints", type=Path, default=None,
                        help="endpoints file of the running twin (overrides what the journals recorded)")


def journals(reports: Path) -> list[Path]:
    """Every journal below `reports` (single runs, game days and matrix runs nest differently)."""
    return sorted(reports.rglob("journal.jsonl")) if reports.is_dir() else []


def run_started(path: Path) -> dict[str, Any]:
    return next((r for r in read_records(path) if r.get("event") == "run-started"), {})


def target_for(path: Path, args: argparse.Namespace) -> Any:
    """The target the journal's run used, rebuilt without anything held in the dead process's memory."""
    from harness.target.model import TargetSpec
    from harness.target.target import Target, resolve_target
    if args.twin_endpoints is not None:
        return Target.from_twin_endpoints(args.twin_endpoints)
    if args.target:
        return resolve_target(args.target, targets_file=args.targets_file)
    started = run_started(path)
    endpoints = started.get("twin_endpoints")
    if endpoints and Path(endpoints).is_file():
        return Target.from_twin_endpoints(endpoints)
    if endpoints:   # never fall back to whatever twin happens to run now: it is not the one this run changed
        raise LookupError(f"the run's twin is gone ({endpoints} missing); if it runs elsewhere, pass "
                          f"--twin-endpoints")
    if started.get("target_spec"):
        return Target(TargetSpec.model_validate(started["target_spec"]))
    name = started.get("target")
    if not name:
        raise LookupError(f"{path}: no run-started record names the target; pass --target")
    return resolve_target(name, targets_file=args.targets_file)


def recover_journal(path: Path, owed: list[OwedRevert], args: argparse.Namespace) -> list[str]:
    """Revert what `path` owes; returns the problems (empty = all done)."""
    from harness.faults import FAULTS
    try:
        target = target_for(path, args)
    except Exception as exc:   # unreadable target: every revert stays owed, the next recover retries
        return [f"{path}: target: {type(exc).__name__}: {exc}"]
    journal = Journal(path)
    problems: list[str] = []
    try:
        for item in owed:
            fault = FAULTS.get(item.fault)
            if fault is None:
                problems.append(f"{path}: {item.fault}: no such fault in this version; cannot revert {item.args}")
                continue
            try:
                fault.revert_owed(target, item.args)
            except Exception as exc:
                journal.write("revert-failed", revert_id=item.revert_id, fault=item.fault, by="recover",
                              error=f"{type(exc).__name__}: {exc}")
                problems.append(f"{path}: {item.fault} {item.revert_id}: {type(exc).__name__}: {exc}")
                continue
            journal.reverted(item.revert_id, fault=item.fault, by="recover")
            print(f"reverted {item.fault} ({item.revert_id}) from {path}: {item.args}")
    finally:
        journal.close()
    return problems


def _alive(pid: int) -> bool:
    """A running process (a zombie waiting to be reaped is not: it serves nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[-1][:4]
    except OSError:
        return True


def orphaned_twins(paths: list[Path]) -> dict[int, Path]:
    """Twins that a run started for itself and that outlived it (the run was killed before it could stop them).

    Only after every revert is done may they go: until then they are the target the reverts need."""
    import json
    found: dict[int, Path] = {}
    for path in paths:
        started = run_started(path)
        endpoints = started.get("twin_endpoints")
        if not started.get("owns_twin") or not endpoints:
            continue
        harness_pid = started.get("harness_pid")
        if harness_pid and _alive(int(harness_pid)):
            continue     # its run is still going and will stop the twin itself
        pid = started.get("twin_pid")
        try:
            serving = int(json.loads(Path(endpoints).read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid and serving == pid and _alive(pid):   # the very twin that run started, not a later run's
            found[int(pid)] = Path(endpoints)
    return found


def run(args: argparse.Namespace) -> int:
    problems: list[str] = []
    done = 0
    paths = journals(args.reports)
    for path in paths:
        owed = owed_reverts(path)
        if not owed:
            continue
        problems.extend(recover_journal(path, owed, args))
        done += len(owed)
    left = sum(len(owed_reverts(path)) for path in journals(args.reports))
    if not left:
        for pid, endpoints in orphaned_twins(paths).items():
            os.kill(pid, signal.SIGTERM)
            print(f"stopped the twin (pid {pid}, {endpoints}) left running by a run that died")
    for problem in problems:
        print(f"g7chaos recover: {problem}", file=sys.stderr)
    if left:
        print(f"g7chaos recover: {left} revert(s) still owed under {args.reports}; run recover again once the "
              f"target is reachable", file=sys.stderr)
        return ExitCode.TARGET_ERROR
    print(f"nothing owed under {args.reports}" if done == 0 else f"{done} revert(s) done; nothing owed")
    return ExitCode.PASS
