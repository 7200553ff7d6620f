"""Twenty SIGKILL-then-recover trials over every fault (tests/spine/sigkill_trials.py), in a pytest of their own.

The trials keep their twin in the process that runs them (moto's backends are per process), and take minutes of
mostly waiting, so they run as a child pytest in the background (tests/ahead.py) while the rest of the suite
goes on; this test reads how that run ended.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ahead import Job, Ran

ROOT = Path(__file__).resolve().parents[2]
TRIALS = Path(__file__).with_name("sigkill_trials.py")

pytestmark = pytest.mark.slow


def ahead_job(test: str, params: dict) -> Job:
    return Job("sigkill-trials", lambda report: [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                                                 "-o", "timeout=420", "--basetemp", str(report / "tmp"), str(TRIALS)],
               timeout_s=480, cwd=ROOT)


def test_twenty_sigkills_mid_fault_leave_nothing_after_recover(ahead_run: Ran) -> None:
    out = ahead_run.out
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "1 passed" in out.stdout, out.stdout[-3000:]
