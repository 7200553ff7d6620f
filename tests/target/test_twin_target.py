"""The built-in `twin` target against the real twin: `g7chaos twin up` in a child process, then only its
endpoints file, the kubernetes client and boto3 — exactly the path a run takes."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as kube_client
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.scenario.loader import load_scenario
from harness.target import check_scenario_scope, resolve_target

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def twin_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("twin")
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "twin", "up", "--out", str(out)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    endpoints = out / "endpoints.json"

    def started() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"twin exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        return endpoints.exists()

    try:
        try:
            Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.1), retry=retry_if_result(lambda ok: not ok))(started)
        except RetryError:
            pytest.fail("twin did not write its endpoints file within 30 s")
        yield endpoints
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_twin_target_reaches_every_cluster_and_aws(twin_endpoints: Path):
    target = resolve_target("twin", twin_endpoints=twin_endpoints)
    assert target.contexts == ["g7-use2a", "g7-use2b"] and target.time_scale == 30.0
    zones = set()
    for context in target.contexts:
        nodes = kube_client.CoreV1Api(target.kube(context)).list_node(_request_timeout=10).items
        assert nodes, context
        zones |= {n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes}
    assert zones == {"us-east-2a", "us-east-2b"}
    target.check_allowlist(aws_account=target.caller_account())
    alarms = {a["AlarmName"] for a in target.aws("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert target.spec.alarms.for_metric("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "g7-use2a") in alarms


def test_shipped_scenario_is_in_scope_of_the_twin(twin_endpoints: Path):
    target = resolve_target("twin", twin_endpoints=twin_endpoints)
    check_scenario_scope(target, load_scenario(REPO / "scenarios" / "ecc-double-bit-error.yaml"))
