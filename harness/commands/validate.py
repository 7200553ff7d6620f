"""`g7chaos validate` and `g7chaos schema`.

validate: every file is checked (scenario files, and targets.yaml files, recognised by their `targets:` key) and every problem printed as file:line:column; exit 0 when all are valid,
exit 2 when any is not. It never prints a traceback: whatever a file contains, the answer is a message.
schema: the JSON Schema of scenario files (or of targets.yaml with --targets), for editors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.strict.problems import ScenarioError
from harness.scenario.loader import load_scenario, scenario_files


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="SCENARIO.yaml",
                        help="scenario files or folders of them")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems")


def run_validate(args: argparse.Namespace) -> int:
    paths = scenario_files(list(args.files))
    if not paths:
        print("g7chaos validate: no scenario files found", file=sys.stderr)
        return ScenarioError.exit_code
    failed = 0
    for path in paths:
        try:
            if _is_targets_file(path):
                from harness.target.model import load_targets
                specs = load_targets(path)
                if not getattr(args, "quiet", False):
                    print(f"OK {path}: targets {', '.join(specs) or '(none)'}")
                continue
            scenario = load_scenario(path)
        except ScenarioError as exc:
            failed += 1
            print(str(exc), file=sys.stderr)
            continue
        except Exception as exc:   # a loader bug must still not show a traceback to a user
            failed += 1
            print(f"{path}:1:1: internal error while validating: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if not getattr(args, "quiet", False):
            print(f"OK {path}: {scenario.name} ({len(scenario.faults)} fault(s), {len(scenario.checks)} check(s))")
    if failed:
        print(f"{failed} of {len(paths)} file(s) invalid", file=sys.stderr)
        return ScenarioError.exit_code
    return 0


def _is_targets_file(path: Path) -> bool:
    """targets.yaml (by name, or a document whose first key is `targets:`) is validated as targets."""
    if path.name in ("targets.yaml", "targets.yml"):
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    lines = [line for line in head.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return bool(lines) and lines[0].startswith("targets:")


def add_schema_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--targets", action="store_true", help="the schema of targets.yaml instead")


def run_schema(args: argparse.Namespace) -> int:
    if getattr(args, "targets", False):
        from harness.target.model import targets_json_schema
        schema = targets_json_schema()
    else:
        from harness.scenario.schema import scenario_json_schema
        schema = scenario_json_schema()
    print(json.dumps(schema, indent=2))
    return 0


# harness/cli.py falls back to these names when a module serves one subcommand.
add_arguments = add_validate_arguments
run = run_validate
