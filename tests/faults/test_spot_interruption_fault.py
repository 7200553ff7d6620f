"""spot-interruption against a twin in this process: the FIS experiment really notifies the instance, the
landing evidence is what the cluster shows, the revert leaves no experiment running and no template, and
the journal holds no owed revert afterwards. The harness side talks only through kubernetes and boto3."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client

from faultkit import run_context
from support.polling import wait_for
from harness.faults import FAULTS, FaultError
from harness.faults.spot_interruption import SpotInterruptionParams, fis_role_arn, iso8601_duration
from harness.journal import owed_reverts
from harness.scenario.stopwhen import coerce_stop_condition
from harness.strict.params import NodeSelector
from harness.target.target import Target

pytestmark = pytest.mark.slow
TWIN_LEAVES_MARKS = True     # the interrupted instance is reclaimed and replaced: no later module sees that fleet


def _ctx(target: Target, tmp_path: Path):
    return run_context(target, tmp_path, seed=3)


def test_durations_are_iso8601_as_fis_wants():
    assert [iso8601_duration(s) for s in (120, 150, 900, 45)] == ["PT2M", "PT2M30S", "PT15M", "PT45S"]


def test_the_fis_role_is_found_by_its_trust_policy(target: Target):
    assert fis_role_arn(target).endswith(":role/g7chaos-fis")


def test_on_demand_nodes_are_refused_before_anything_changes(target: Target, tmp_path: Path):
    params = SpotInterruptionParams(node=NodeSelector(nodegroup="g7-use2a-70b-tp"))
    fault = FAULTS["spot-interruption"](params, _ctx(target, tmp_path))
    with pytest.raises(FaultError, match="spot node"):
        fault.plan()
    assert target.aws("fis").list_experiment_templates()["experimentTemplates"] == []


def test_notice_lands_on_the_node_and_revert_stops_the_experiment(target: Target, tmp_path: Path):
    ctx = _ctx(target, tmp_path)
    ctx.stop_when = [coerce_stop_condition("alarm:g7-use2a-gpu-ecc-dbe")]
    params = SpotInterruptionParams(node=NodeSelector(zone="us-east-2a", model="llama-13b-fp8"), notice=120)
    fault = FAULTS["spot-interruption"](params, ctx)
    plan = fault.plan()
    node = fault.nodes[0]
    assert "PT2M" in plan and node.instance_id in plan and node.zone == "us-east-2a"
    assert fault.stop_conditions[0]["source"] == "aws:cloudwatch:alarm"
    assert fault.stop_conditions[0]["value"].endswith(":alarm:g7-use2a-gpu-ecc-dbe")

    before = time.time()
    fault.inject()
    fault.injected_at = time.time()
    assert [o.fault for o in owed_reverts(ctx.journal.path)] == ["spot-interruption"]
    terminate_at = fault.times.notice_end_at
    assert before + 4.0 - 0.1 <= terminate_at <= time.time() + 4.0     # 2 minutes at 30x

    evidence = fault.await_landed(time.time() + 3.0)
    assert evidence is not None, "the notice never showed on the node"
    assert evidence["action_status"] == "running"
    assert evidence["nodes"][node.name]["via"] in ("cordoned", "taint", "event")
    # landed when FIS sent the notice, which is before the handler's cordon the harness saw
    assert fault.injected_at <= fault.landed_at <= evidence["action_started_at"] + 0.001 or \
        fault.landed_at == fault.injected_at
    assert abs(fault.times.notice_end_at - evidence["action_started_at"] - 4.0) < 0.05
    fis = target.aws("fis")
    template = fis.get_experiment_template(id=fault.template_id)["experimentTemplate"]
    assert template["roleArn"].endswith(":role/g7chaos-fis")
    assert template["targets"]["SpotInstances"]["resourceArns"] == [
        f"arn:aws:ec2:us-east-2:123456789012:instance/{node.instance_id}"]
    assert template["actions"]["interrupt"]["parameters"] == {"durationBeforeInterruption": "PT2M"}
    core = client.CoreV1Api(target.kube(node.context))
    assert core.read_node(node.name).spec.unschedulable

    fault.revert()
    fault.revert()                                   # idempotent
    assert fis.get_experiment(id=fault.experiment_id)["experiment"]["state"]["status"] in ("stopping", "stopped")
    wait_for(lambda: fis.get_experiment(id=fault.experiment_id)["experiment"]["state"]["status"] == "stopped", 3,
             "the experiment to stop")
    assert fis.list_experiment_templates()["experimentTemplates"] == []
    assert owed_reverts(ctx.journal.path) == []
    # from the journal alone (g7chaos recover in a fresh process): nothing left to do, and no error
    FAULTS["spot-interruption"].revert_owed(target, {"template_id": fault.template_id,
                                                     "experiment_id": fault.experiment_id})
    # EC2 still reclaims the instance at the end of the notice: a notice cannot be recalled
    ec2 = target.aws("ec2")
    wait_for(lambda: ec2.describe_instances(InstanceIds=[node.instance_id])["Reservations"][0]["Instances"][0]
             ["State"]["Name"] in ("shutting-down", "terminated"), 8, "EC2 to reclaim the instance after its notice")


def test_rebalance_first_lands_on_the_recommendation_before_the_notice(target: Target, tmp_path: Path):
    """notice 5m with rebalance_first: FIS gets PT5M; the handler's RebalanceRecommendation Event (or cordon) proves
    the landing while the interruption notice is still 3 minutes away, and the timeline says when each comes."""
    ctx = _ctx(target, tmp_path)
    params = SpotInterruptionParams(node=NodeSelector(zone="us-east-2b", model="llama-13b-fp8"), notice=300,
                                    rebalance_first=True)
    fault = FAULTS["spot-interruption"](params, ctx)
    plan = fault.plan()
    assert "PT5M" in plan and "interruption notice after 180 s" in plan
    node = fault.nodes[0]
    fault.inject()
    fault.injected_at = time.time()
    try:
        evidence = fault.await_landed(time.time() + 3.0)
        assert evidence is not None, "the rebalance recommendation never showed on the node"
        assert evidence["signal"] == "rebalance-recommendation"
        sent = evidence["action_started_at"]
        assert abs(fault.times.notice_at - (sent + 6.0)) < 0.05          # 3 minutes at 30x
        assert abs(fault.times.notice_end_at - (sent + 10.0)) < 0.05      # 5 minutes at 30x
        core = client.CoreV1Api(target.kube(node.context))
        reasons = {e.reason for e in core.list_event_for_all_namespaces(
            field_selector=f"involvedObject.name={node.name}").items}
        assert "RebalanceRecommendation" in reasons
        assert time.time() < fault.times.notice_at, "the check ran too late to see the lead"
        assert "SpotInterruption" not in reasons, "the interruption notice came with the recommendation"
        template = target.aws("fis").get_experiment_template(id=fault.template_id)["experimentTemplate"]
        assert template["actions"]["interrupt"]["parameters"] == {"durationBeforeInterruption": "PT5M"}
    finally:
        fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    # stopping the experiment during the lead recalls nothing: the interruption notice still comes at its time
    wait_for(lambda: "SpotInterruption" in {e.reason for e in core.list_event_for_all_namespaces(
        field_selector=f"involvedObject.name={node.name}").items}, fault.times.notice_at + 3.0 - time.time(),
        "the interruption notice after the experiment was stopped")
    assert time.time() >= fault.times.notice_at - 0.2
