"""Load scenario files: safe, bounded YAML, strict schema, and errors that say file:line:column.

    scenario = load_scenario("scenarios/ecc-double-bit-error.yaml")   # raises ScenarioError (exit 2)

`ScenarioError.problems` lists every error in the file, not just the first, so one edit fixes them all.
An unknown key names the keys allowed at that level:

    scenarios/x.yaml:7:5: unknown key 'ttft_p9' in slo; allowed: ttft_p99, tbt_p99, error_rate, window
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from harness.strict.problems import Problem, ScenarioError
from harness.scenario.model import Scenario
from harness.strict.yamlsafe import DEFAULT_LIMITS, Limits, parse_yaml, read_bounded, validate_document

__all__ = ["Problem", "ScenarioError", "load_scenario", "load_scenario_text", "scenario_files"]


def load_scenario_text(text: str, source: str = "<scenario>", limits: Limits = DEFAULT_LIMITS) -> Scenario:
    """Validate scenario YAML given as text; `source` names it in error messages."""
    document = parse_yaml(text, source, limits)
    return validate_document(Scenario, document, "scenario")


def load_scenario(path: Path | str, limits: Limits = DEFAULT_LIMITS) -> Scenario:
    """Read and validate one scenario file (size checked before anything is parsed)."""
    return load_scenario_text(read_bounded(path, limits), str(path), limits)


def scenario_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand arguments: files as given, directories to their *.yaml / *.yml files (sorted). Every command that
    takes a folder of scenarios lists it here, so `validate`, `list`, `run --gameday` and `matrix` see the same
    files."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            out.append(path)
    return out
