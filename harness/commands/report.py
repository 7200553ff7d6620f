"""`g7chaos report [REPORTS_DIR | RUN_DIR]`: rebuild the reports folder's index.html from its history.jsonl, or
one run folder's report (result.json, junit.xml, report.html) from that folder's own files.

Every run and game day rebuilds the index already; this command is for after the page changed (a newer harness),
after run folders were pruned (their links become "report folder deleted"), or for a history copied from another
machine. It reads history.jsonl alone (harness/report/history.py), so it needs neither a target nor the run folders.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import UsageError
from harness.report.history import HISTORY_JSONL, build_index, history_path
from harness.report.writers import RESULT_JSON, rebuild_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports_dir", nargs="?", type=Path, default=Path("reports"), metavar="REPORTS_DIR",
                        help="a reports folder (its index.html from history.jsonl) or one run folder (its report again); default: reports")


def run(args: argparse.Namespace) -> int:
    root: Path = args.reports_dir
    if not root.exists():
        raise UsageError(f"{root}: no such reports folder")
    if (root / RESULT_JSON).is_file():
        # one run's folder: its milestones, score and page again from its records and cluster.jsonl (a report
        # made by an older harness gains the timeline; the verdict stays as it was judged)
        try:
            print(rebuild_run(root).report_html)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        return 0
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder (expected a reports folder holding {HISTORY_JSONL})")
    if not history_path(root).is_file():
        raise UsageError(f"{root}: no {HISTORY_JSONL} here; `g7chaos run` and `g7chaos gameday` write it into "
                         f"their --report-dir")
    print(build_index(root))
    return 0
