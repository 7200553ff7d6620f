"""Fixtures for the report tests."""
from __future__ import annotations

import pytest

from harness.report.model import RunResult
from report_factory import make_run


@pytest.fixture
def passing_run() -> RunResult:
    return make_run()


@pytest.fixture
def failing_run() -> RunResult:
    return make_run(failed=("node-drained", "no-corrupted-responses"), profile="no-dbe-remediation")
