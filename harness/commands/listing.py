"""`g7chaos list`: what this harness can do, one line each — faults, checks, scenarios, profiles.

The lists come from the registries and files themselves (the fault and check registries, the parameter
models' docstrings, the scenario folder, the twin's profile table), so the listing can never drift from
what `run` accepts. A contract name the scenario schema knows but no module implements yet is shown as
such, rather than hidden: a scenario naming it would fail its check, and the user should know why.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.scenario.loader import load_scenario, scenario_files
from harness.strict.problems import ScenarioError

SECTIONS = ("faults", "checks", "scenarios", "profiles")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", choices=SECTIONS, help="one section only (default: all)")
    parser.add_argument("--scenarios-dir", type=Path, default=Path("scenarios"))
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _one_line(text: str | None) -> str:
    return " ".join((text or "").strip().split("\n\n")[0].split())


def faults() -> dict[str, str]:
    from harness.faults import FAULTS
    from harness.scenario.model import fault_descriptions
    described = fault_descriptions()
    out: dict[str, str] = {}
    for name in sorted(set(described) | set(FAULTS)):
        line = described.get(name) or _one_line(FAULTS[name].__doc__)
        out[name] = line if name in FAULTS else f"{line} [not implemented in this version]"
    return out


def checks() -> dict[str, str]:
    from harness.checks import CHECKS
    from harness.scenario.model import check_descriptions
    described = check_descriptions()
    out: dict[str, str] = {}
    for name in sorted(set(described) | set(CHECKS)):
        line = described.get(name) or _one_line(CHECKS[name].__doc__)
        out[name] = line if name in CHECKS else f"{line} [not implemented in this version]"
    return out


def scenarios(directory: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not directory.is_dir():
        return out
    for path in scenario_files([directory]):
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            out[path.stem] = f"INVALID: {str(exc).splitlines()[0]}"
            continue
        out[scenario.name] = f"{_one_line(scenario.description)} ({path})"
    return out


def profiles() -> dict[str, str]:
    from harness.cli import twin_profiles
    return twin_profiles()


def collect(what: str | None, scenarios_dir: Path) -> dict[str, dict[str, str]]:
    builders = {"faults": faults, "checks": checks, "scenarios": lambda: scenarios(scenarios_dir),
                "profiles": profiles}
    return {section: builders[section]() for section in SECTIONS if what in (None, section)}


def run(args: argparse.Namespace) -> int:
    listing = collect(args.what, args.scenarios_dir)
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for section, entries in listing.items():
        print(f"{section}:")
        if not entries:
            print("  (none)")
        width = max((len(name) for name in entries), default=0)
        for name, line in entries.items():
            print(f"  {name.ljust(width)}  {line}")
        print()
    return 0
