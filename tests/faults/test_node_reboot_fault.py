"""node-reboot against a twin in this process: one FIS experiment reboots exactly the chosen instance, the node
goes NotReady and comes back, and the revert leaves neither a running experiment nor a template behind."""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.faults import FAULTS, RunContext
from harness.faults.node_reboot import _trusts_fis, fis_role_arn
from harness.journal import Journal, owed_reverts
from harness.observe import Timeline
from harness.scenario.model import NodeRebootParams, NodeSelector
from harness.target.target import Target
from harness.twin.server import TwinHandle, TwinServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinHandle]:
    out = tmp_path_factory.mktemp("reboot-twin")
    handle = TwinServer.start_in_thread(profile="article", nodes_per_az=1, time_scale=30.0, out_dir=out / "twin")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture()
def target(twin: TwinHandle) -> Target:
    return Target.from_twin_endpoints(Path(twin.twin.out_dir) / "endpoints.json")


def _until(predicate, seconds: float, what: str):
    try:
        return Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.1), retry=retry_if_result(lambda v: not v),
                        reraise=True)(predicate)
    except Exception as exc:
        raise AssertionError(f"{what} within {seconds} s") from exc


def test_the_fis_role_is_the_one_fis_may_assume(target: Target):
    assert fis_role_arn(target).endswith(":role/g7chaos-fis")
    assert _trusts_fis('%7B%22Statement%22%3A%5B%7B%22Principal%22%3A%7B%22Service%22%3A%22fis.amazonaws.com%22%7D%7D%5D%7D')
    assert not _trusts_fis({"Statement": [{"Principal": {"Service": "ec2.amazonaws.com"}}]})


def test_reboot_lands_on_the_chosen_node_only_and_reverts_clean(target: Target, twin: TwinHandle, tmp_path: Path):
    ctx = RunContext(target=target, journal=Journal(tmp_path / "journal.jsonl"), timeline=Timeline(),
                     rng=random.Random(5))
    fault = FAULTS["node-reboot"](NodeRebootParams(node=NodeSelector(zone="us-east-2b", model="llama-13b-fp8")), ctx)
    plan = fault.plan()
    node = fault.nodes[0]
    assert node.zone == "us-east-2b" and node.instance_id in plan
    others = {n.name: n.booted_at for n in twin.world.nodes.values() if n.name != node.name}

    fault.inject()
    fault.injected_at = time.time()
    assert [o.fault for o in owed_reverts(ctx.journal.path)] == ["node-reboot"]
    evidence = fault.await_landed(time.time() + 10)
    assert evidence and evidence["nodes"][node.name]["source"] in ("node-condition", "event")
    experiment = target.aws("fis").get_experiment(id=fault.extra["experiment_id"])["experiment"]
    assert experiment["state"]["status"] == "completed"
    assert {n.name: n.booted_at for n in twin.world.nodes.values() if n.name != node.name} == others

    core = client.CoreV1Api(target.kube(node.context))
    _until(lambda: next(c.status for c in core.read_node(node.name).status.conditions if c.type == "Ready") == "True"
           and core.read_node(node.name).status.allocatable.get("nvidia.com/gpu") == "8", 20,
           "the node Ready again with its 8 GPUs")
    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    assert target.aws("fis").list_experiment_templates()["experimentTemplates"] == []
