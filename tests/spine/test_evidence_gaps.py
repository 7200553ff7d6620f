"""A pass needs evidence: runs that lose their load evidence or cannot put the fleet back never come out green.

Each run goes the whole way against a twin in this process (a GPU temperature injection held for a few seconds),
with one thing taken away: the load process's stop raises, a load worker dies mid-run, or the revert fails.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness.faults import FAULTS
from harness.journal import owed_reverts, read_records
from harness.load.process import LoadProcess
from harness.run.runner import RunOptions, Runner
from harness.scenario.loader import load_scenario_text
from harness.target.target import Target

pytestmark = pytest.mark.slow

THERMAL = "gpu-thermal-throttle: {node: {zone: us-east-2a, model: llama-13b-fp8, pick: first}, gpu: 0, temperature: 92}"


def scenario(workers: int = 1) -> str:
    return f"""\
name: evidence-gap
description: a short fault whose evidence the test takes away
target: twin
duration: 3m
load: {{users: 8, spawn_rate: 8, prompt_tokens: 64, max_tokens: 32, timeout: 30s, stall_timeout: 5s, workers: {workers}}}
steady_state: {{ttft_p99: 5s, tbt_p99: 1s, error_rate: 5%}}
faults:
  - at: 30s
    duration: 30s
    {THERMAL}
checks:
  - fault-landed: {{within: 1m}}
  - slo: {{window: whole, ttft_p99: 5s, tbt_p99: 1s, error_rate: 50%}}
"""


@pytest.fixture(scope="module")
def target(twin_pool) -> Target:
    handle = twin_pool.get("article", nodes_per_az=1)
    return Target.from_twin_endpoints(Path(handle.twin.out_dir) / "endpoints.json")


def _runner(target: Target, tmp_path: Path, workers: int = 1) -> Runner:
    return Runner(load_scenario_text(scenario(workers)), target, RunOptions(report_root=tmp_path, seed=1))


def test_a_load_stop_that_raises_is_not_a_pass(target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real_stop = LoadProcess.stop

    def stop_then_raise(self, timeout_s: float = 20.0):
        real_stop(self, timeout_s)        # the load still stops: no load process outlives its run
        raise RuntimeError("the load's control file could not be read")

    monkeypatch.setattr(LoadProcess, "stop", stop_then_raise)
    result = _runner(target, tmp_path).run()
    assert (result.verdict, result.exit_code) == ("inconclusive", 5), result.summary()
    assert result.checks == []
    assert any("no load evidence (RuntimeError: the load's control file could not be read)" in m
               for m in result.missing_evidence), result.missing_evidence


def test_a_load_worker_killed_mid_run_is_not_a_pass_and_says_so(target: Target, tmp_path: Path):
    runner = _runner(target, tmp_path, workers=2)
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            records = list(read_records(runner.journal.path)) if runner.journal.path.exists() else []
            if any(r.get("event") == "fault-landed" for r in records) and runner.load and len(runner.load.procs) > 1:
                worker = runner.load.procs[-1]
                os.kill(worker.pid, signal.SIGKILL)
                killed.append(worker.pid)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill_a_worker, daemon=True)
    thread.start()
    result = runner.run()
    thread.join(timeout=5)
    assert killed, "the fault never landed, so no worker was killed"
    assert result.verdict != "pass" and result.exit_code != 0, result.summary()
    said = " ".join([result.error or "", *result.missing_evidence])
    assert "load" in said and ("exited" in said or "died" in said or "no final figures" in said), said
    assert f"worker-{len(runner.load.procs) - 2}" in said, said           # the worker, named


def test_a_failed_revert_is_not_a_pass_and_stays_owed(target: Target, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    fault_cls = FAULTS["gpu-thermal-throttle"]
    real_revert = fault_cls.revert_owed

    def refuse(cls, target_, args):
        raise RuntimeError("pod exec refused: 503")

    monkeypatch.setattr(fault_cls, "revert_owed", classmethod(refuse))
    runner = _runner(target, tmp_path)
    try:
        result = runner.run()
    finally:
        monkeypatch.setattr(fault_cls, "revert_owed", real_revert)
        for owed in owed_reverts(runner.journal.path):       # what `g7chaos recover` would finish
            real_revert(target, owed.args)
    assert (result.verdict, result.exit_code) == ("error", 4), result.summary()
    assert "revert of gpu-thermal-throttle failed" in result.error and "g7chaos recover" in result.error
    assert result.faults[0].revert_error
