"""node-reboot against a twin in this process: one FIS experiment reboots exactly the chosen instance, the node
goes NotReady and comes back, and the revert leaves neither a running experiment nor a template behind."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client
from faultkit import run_context
from support.polling import wait_for

from harness.faults import FAULTS
from harness.faults.fis import _trusts_fis, fis_role_arn
from harness.faults.node_reboot import NodeRebootParams
from harness.journal import owed_reverts
from harness.strict.params import NodeSelector
from harness.target.target import Target
from harness.twin.server import TwinHandle

pytestmark = pytest.mark.slow


def test_the_fis_role_is_the_one_fis_may_assume(target: Target):
    assert fis_role_arn(target).endswith(":role/g7chaos-fis")
    assert _trusts_fis('%7B%22Statement%22%3A%5B%7B%22Principal%22%3A%7B%22Service%22%3A%22fis.amazonaws.com%22%7D%7D%5D%7D')
    assert not _trusts_fis({"Statement": [{"Principal": {"Service": "ec2.amazonaws.com"}}]})


def test_reboot_lands_on_the_chosen_node_only_and_reverts_clean(target: Target, twin: TwinHandle, tmp_path: Path):
    ctx = run_context(target, tmp_path, seed=5)
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
    experiment = target.aws("fis").get_experiment(id=fault.experiment_id)["experiment"]
    assert experiment["state"]["status"] == "completed"
    assert {n.name: n.booted_at for n in twin.world.nodes.values() if n.name != node.name} == others

    core = client.CoreV1Api(target.kube(node.context))
    wait_for(lambda: next(c.status for c in core.read_node(node.name).status.conditions if c.type == "Ready") == "True"
             and core.read_node(node.name).status.allocatable.get("nvidia.com/gpu") == "8", 20,
             "the node Ready again with its 8 GPUs")
    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    assert target.aws("fis").list_experiment_templates()["experimentTemplates"] == []
