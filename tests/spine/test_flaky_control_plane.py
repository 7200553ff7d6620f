"""Same verdicts on a flaky control plane (tests/spine/flaky_control_plane_runs.py), one profile per background
pytest (tests/ahead.py): its twin lives in the process that runs it, and its runs mostly wait. A run whose own
measurement was degraded by a busy machine is judged on a second run (`rerun_when_degraded`): `article` must pass,
and a pass needs load figures the machine did not disturb."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ahead import Job, Ran
from flaky_control_plane_runs import EXPECTED      # the profiles the runs are parametrized over

ROOT = Path(__file__).resolve().parents[2]
RUNS = Path(__file__).with_name("flaky_control_plane_runs.py")

pytestmark = pytest.mark.slow


def ahead_job(test: str, params: dict) -> Job:
    profile = params["profile"]
    return Job(f"flaky-control-plane-{profile}",
               lambda report: [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=300",
                               "--basetemp", str(report / "tmp"),
                               f"{RUNS}::test_verdicts_hold_when_the_control_plane_fails_a_tenth_of_calls[{profile}]"],
               timeout_s=360, cwd=ROOT, rerun_when_degraded=True)


@pytest.mark.parametrize("profile", list(EXPECTED))
def test_verdicts_hold_when_the_control_plane_fails_a_tenth_of_calls(profile: str, ahead_run: Ran) -> None:
    out = ahead_run.out
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout[-6000:] + out.stderr[-2000:]
