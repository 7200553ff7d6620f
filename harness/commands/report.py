"""`g7chaos report [REPORTS_DIR]`: rebuild the reports folder's index.html from its history.jsonl.

Every run and game day rebuilds the index already; this command is for after the page changed (a newer harness),
after run folders were pruned (their links become "report folder deleted"), or for a history copied from another
machine. It reads history.jsonl alone (harness/report/history.py), so it needs neither a target nor the run folders.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import UsageError
from harness.report.history import HISTORY_JSONL, build_index, history_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports_dir", nargs="?", type=Path, default=Path("reports"), metavar="REPORTS_DIR",
                        help="the reports folder whose history.jsonl to show (default: reports)")


def run(args: argparse.Namespace) -> int:
    root: Path = args.reports_dir
    if not root.exists():
        raise UsageError(f"{root}: no such reports folder")
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder (expected a reports folder holding {HISTORY_JSONL})")
    if not history_path(root).is_file():
        raise UsageError(f"{root}: no {HISTORY_JSONL} here; `g7chaos run` and `g7chaos gameday` write it into "
                         f"their --report-dir")
    print(build_index(root))
    return 0
