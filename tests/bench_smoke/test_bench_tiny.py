"""Every benchmark once at a tiny size: proves `make bench` still works. No timing is asserted here.

Generic on purpose: a benchmark is a module in bench/, so a new one is covered by this test as soon as it
exists. The run is one command, run once per session in the background (tests/ahead.py); every check reads its
output.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ahead import Job, Ran

ROOT = Path(__file__).resolve().parents[2]


def _discovered() -> list[str]:
    proc = subprocess.run([sys.executable, "-c", "from bench.__main__ import BENCHMARKS; print(' '.join(BENCHMARKS))"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def ahead_job(test: str, params: dict) -> Job:
    return Job("bench-tiny", lambda report: [sys.executable, "-m", "bench", "--tiny", "--out",
                                             str(report / "latest.json")],
               timeout_s=280, cwd=ROOT, env={"COLUMNS": "200"})


@pytest.fixture()
def tiny_run(ahead_run: Ran):
    proc = ahead_run.out
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads((ahead_run.report_dir / "latest.json").read_text())


def test_every_discovered_benchmark_produced_its_result(tiny_run):
    proc, data = tiny_run
    names = _discovered()
    assert names, "no benchmark discovered in bench/"
    assert data["tiny"] is True
    for name in names:
        result = data["benchmarks"].get(name)
        assert isinstance(result, dict) and result, f"benchmark {name} left no result"
        assert "error" not in result, f"benchmark {name} failed: {result.get('error')}"
    took = data["seconds_per_benchmark"]
    assert set(took) == set(names) and all(seconds > 0 for seconds in took.values()), took


def test_the_table_was_printed(tiny_run):
    proc, data = tiny_run
    assert "g7chaos benchmarks (tiny)" in proc.stdout
    assert "what" in proc.stdout and "figures" in proc.stdout and "verdict" in proc.stdout
    assert proc.stdout.count("\n") > len(data["benchmarks"]) + 4, "the table has fewer rows than benchmarks"
