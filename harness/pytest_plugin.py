"""`pytest -m chaos`: shipped scenario files become test items, one per scenario.

Registered through the `pytest11` entry point, so any project that installs g7chaos can gate a release on
`pytest -m chaos scenarios/ --junitxml=...`. Scenario files are only collected when the `chaos` marker is
selected, so a project's fast tests never start a target by accident.
"""
from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("g7chaos")
    group.addoption("--chaos-target", default="twin", help="target name from targets.yaml, or 'twin' (default)")
    group.addoption("--chaos-profile", default="article", help="twin profile(s), comma-separated")
    group.addoption("--chaos-report-dir", default="reports", help="where run reports go")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: runs a shipped scenario against a target")


def _chaos_selected(config: pytest.Config) -> bool:
    markexpr = config.getoption("markexpr", "") or ""
    return "chaos" in markexpr and "not chaos" not in markexpr


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    if file_path.suffix in (".yaml", ".yml") and _chaos_selected(parent.config) and _looks_like_scenario(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _looks_like_scenario(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return "faults:" in head and "checks:" in head


class ScenarioFile(pytest.File):
    def collect(self):
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioFailed(Exception):
    pass


class ScenarioItem(pytest.Item):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_marker(pytest.mark.chaos)

    def runtest(self) -> None:
        from harness.run.runner import run_scenarios
        from harness.session import SessionOptions, load_all, open_session

        config = self.config
        scenarios = load_all([self.path])
        report_dir = Path(config.getoption("--chaos-report-dir"))
        options = SessionOptions(scenarios=tuple(s for _, s in scenarios),
                                 profile=config.getoption("--chaos-profile"), report_dir=report_dir)
        with open_session(config.getoption("--chaos-target"), options) as session:
            result = run_scenarios(session, scenarios, seed=1, report_dir=report_dir)[0]
        if result.verdict != "pass":
            failed = [f"{c.name}: {c.reason}" for c in result.checks if c.status in ("fail", "inconclusive")]
            failed += [f"missing evidence: {why}" for why in result.missing_evidence]
            detail = "\n  ".join(failed) or (result.error or result.verdict)
            raise ScenarioFailed(f"{self.path.name}: verdict {result.verdict}\n  {detail}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, 0, f"scenario: {self.name}"
