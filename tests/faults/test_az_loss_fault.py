"""az-loss against a twin in this process: FIS cuts exactly the zone's subnets, the zone's targets and nodes
show it, the zonal shift moves away from the zone, and the revert (live or from the journal alone) leaves no
experiment, template, shift or cut subnet behind. The harness side talks only through kubernetes and boto3."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client
from faultkit import run_context, until as _until

from harness.faults import FAULTS, FaultError
from harness.faults.az_loss import AzLoss
from harness.journal import owed_reverts
from harness.scenario.model import AzLossParams
from harness.target.target import Target
from harness.twin.server import TwinHandle

pytestmark = pytest.mark.slow
ZONE = "us-east-2a"


def _fault(target: Target, tmp_path: Path, **params) -> AzLoss:
    ctx = run_context(target, tmp_path, seed=3)
    return FAULTS["az-loss"](AzLossParams(zone=ZONE, **params), ctx)


def _clean(target: Target, twin: TwinHandle) -> None:
    """stop_experiment answers at once with `stopping`; FIS (and the twin) end the experiment a moment later."""
    fis = target.aws("fis")

    def running() -> list[str]:
        return [e["id"] for e in fis.list_experiments()["experiments"] if e["state"]["status"] not in
                ("completed", "stopped", "failed")]
    _until(lambda: running() == [], 5, "no FIS experiment left running or stopping")
    assert fis.list_experiment_templates()["experimentTemplates"] == []
    assert target.aws("arc-zonal-shift").list_zonal_shifts(status="ACTIVE")["items"] == []
    _until(lambda: not twin.world.disrupted_subnets, 6, "connectivity restored")


def _zone_ready(target: Target, ready: bool) -> bool:
    core = client.CoreV1Api(target.kube(ZONE.replace("us-east-2", "g7-use2")))
    nodes = [n for n in core.list_node().items if n.metadata.labels["topology.kubernetes.io/zone"] == ZONE]
    states = [next(c.status for c in n.status.conditions if c.type == "Ready") == "True" for n in nodes]
    return bool(nodes) and all(s == ready for s in states)


def test_a_zone_outside_the_region_is_refused_before_anything_changes(target: Target, tmp_path: Path):
    ctx = run_context(target, tmp_path, seed=None, journal="j.jsonl")
    with pytest.raises(FaultError, match="region"):
        FAULTS["az-loss"](AzLossParams(zone="eu-west-1a"), ctx).plan()
    assert target.aws("fis").list_experiment_templates()["experimentTemplates"] == []


def test_network_loss_with_zonal_shift_lands_and_reverts_clean(target: Target, twin: TwinHandle, tmp_path: Path):
    fault = _fault(target, tmp_path, zonal_shift=True)
    plan = fault.plan()
    subnets = set(twin.world.subnets[ZONE])
    assert set(fault.extra["subnets"]) == subnets and all(s in plan for s in subnets)
    assert {n.zone for n in fault.nodes} == {ZONE} and len(fault.nodes) == len(twin.world.nodes_in(ZONE))

    fault.inject()
    fault.injected_at = time.time()
    assert [o.fault for o in owed_reverts(fault.ctx.journal.path)] == ["az-loss"]
    experiment = target.aws("fis").get_experiment(id=fault.extra["experiment_id"])["experiment"]
    assert experiment["state"]["status"] == "running"
    assert experiment["targets"]["subnets"]["resourceArns"] == fault.extra["subnet_arns"]     # explicit, never "all"
    _until(lambda: twin.world.disrupted_subnets == subnets, 6, "exactly the zone's subnets cut")
    shifts = target.aws("arc-zonal-shift").list_zonal_shifts(status="ACTIVE")["items"]
    assert fault.extra["away_from"] == "use2-az1"                # the AZ ID EC2 reports, never the zone name
    assert [s["awayFrom"] for s in shifts] == [fault.extra["away_from"]]

    evidence = fault.await_landed(time.time() + 10)
    assert evidence and evidence["zone"] == ZONE and evidence["source"] in ("node-condition", "target-health")
    _until(lambda: _zone_ready(target, False), 10, "the zone's nodes NotReady")
    assert not any(n.network_reachable is False for n in twin.world.nodes_in("us-east-2b"))

    fault.revert()
    fault.revert()      # idempotent
    assert owed_reverts(fault.ctx.journal.path) == []
    _clean(target, twin)
    _until(lambda: _zone_ready(target, True), 10, "the zone's nodes Ready again")


def test_revert_owed_from_the_journal_alone_after_a_crash(target: Target, twin: TwinHandle, tmp_path: Path):
    fault = _fault(target, tmp_path, mode="power", zonal_shift=True)
    fault.plan()
    fault.inject()
    _until(lambda: all(n.power != "running" for n in twin.world.nodes_in(ZONE)), 6, "the zone's instances stopped")
    owed = owed_reverts(fault.ctx.journal.path)
    assert len(owed) == 1
    AzLoss.revert_owed(target, owed[0].args)      # what `g7chaos recover` does in a fresh process
    AzLoss.revert_owed(target, owed[0].args)      # twice: a second recover finds nothing left and says nothing
    _clean(target, twin)
    _until(lambda: all(n.power in ("running", "rebooting") for n in twin.world.nodes_in(ZONE)), 6,
           "stopped instances started again")
    _until(lambda: _zone_ready(target, True), 20, "the zone's nodes Ready again")      # a boot: 90 s at 30x


def test_zonal_shift_preflight_refuses_a_load_balancer_without_it(target: Target, tmp_path: Path):
    """zonal_shift.config.enabled false: the plan fails with the fix in its message, before anything is injected."""
    elbv2 = target.aws("elbv2")
    nlb = elbv2.describe_load_balancers(Names=[target.spec.load_balancer.name])["LoadBalancers"][0]["LoadBalancerArn"]
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=nlb, Attributes=[
        {"Key": "zonal_shift.config.enabled", "Value": "false"}])
    try:
        with pytest.raises(FaultError, match="zonal shift is not enabled.*zonal_shift.config.enabled=true"):
            _fault(target, tmp_path, zonal_shift=True).plan()
        _fault(target, tmp_path).plan()                         # without a shift the zone loss still plans
    finally:
        elbv2.modify_load_balancer_attributes(LoadBalancerArn=nlb, Attributes=[
            {"Key": "zonal_shift.config.enabled", "Value": "true"}])
    assert target.aws("fis").list_experiment_templates()["experimentTemplates"] == []
    assert _fault(target, tmp_path, zonal_shift=True).plan()


def test_a_zone_without_an_az_id_is_refused_not_sent_by_name(tmp_path: Path):
    """No fallback to the zone name: ARC refuses names, so an EC2 answer without ZoneId stops the plan."""
    from types import SimpleNamespace

    ec2 = SimpleNamespace(describe_availability_zones=lambda **_: {"AvailabilityZones": [{"ZoneName": ZONE}]})
    fault = AzLoss.__new__(AzLoss)
    fault.ctx = SimpleNamespace(target=SimpleNamespace(aws=lambda service: ec2))
    with pytest.raises(FaultError, match="AZ IDs"):
        fault._zone_id(ZONE)
    ec2.describe_availability_zones = lambda **_: {"AvailabilityZones": [{"ZoneName": ZONE, "ZoneId": "use2-az1"}]}
    assert fault._zone_id(ZONE) == "use2-az1"
