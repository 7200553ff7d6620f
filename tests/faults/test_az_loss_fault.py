"""az-loss against a twin in this process: FIS cuts exactly the zone's subnets, the zone's targets and nodes
show it, the zonal shift moves away from the zone, and the revert (live or from the journal alone) leaves no
experiment, template, shift or cut subnet behind. The harness side talks only through kubernetes and boto3."""
from __future__ import annotations

import time
from types import SimpleNamespace
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from kubernetes import client
from faultkit import run_context
from support.polling import wait_for

from harness.faults import FAULTS, FaultError
from harness.faults.az_loss import AzLoss, AzLossParams
from harness.faults.fis import fis_role_arn
from harness.journal import owed_reverts
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
    wait_for(lambda: running() == [], 5, "no FIS experiment left running or stopping")
    assert fis.list_experiment_templates()["experimentTemplates"] == []
    assert target.aws("arc-zonal-shift").list_zonal_shifts(status="ACTIVE")["items"] == []
    wait_for(lambda: not twin.world.disrupted_subnets, 6, "connectivity restored")


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
    assert set(fault.subnets) == subnets and all(s in plan for s in subnets)
    assert {n.zone for n in fault.nodes} == {ZONE} and len(fault.nodes) == len(twin.world.nodes_in(ZONE))

    fault.inject()
    fault.injected_at = time.time()
    assert [o.fault for o in owed_reverts(fault.ctx.journal.path)] == ["az-loss"]
    experiment = target.aws("fis").get_experiment(id=fault.experiment_id)["experiment"]
    assert experiment["state"]["status"] == "running"
    assert experiment["targets"]["subnets"]["resourceArns"] == fault.subnet_arns     # explicit, never "all"
    wait_for(lambda: twin.world.disrupted_subnets == subnets, 6, "exactly the zone's subnets cut")
    shifts = target.aws("arc-zonal-shift").list_zonal_shifts(status="ACTIVE")["items"]
    assert fault.away_from == "use2-az1"                # the AZ ID EC2 reports, never the zone name
    assert [s["awayFrom"] for s in shifts] == [fault.away_from]

    evidence = fault.await_landed(time.time() + 10)
    assert evidence and evidence["zone"] == ZONE and evidence["source"] in ("node-condition", "target-health")
    wait_for(lambda: _zone_ready(target, False), 10, "the zone's nodes NotReady")
    assert not any(n.network_reachable is False for n in twin.world.nodes_in("us-east-2b"))

    fault.revert()
    fault.revert()      # idempotent
    assert owed_reverts(fault.ctx.journal.path) == []
    _clean(target, twin)
    wait_for(lambda: _zone_ready(target, True), 10, "the zone's nodes Ready again")


def test_revert_owed_from_the_journal_alone_after_a_crash(target: Target, twin: TwinHandle, tmp_path: Path):
    fault = _fault(target, tmp_path, mode="power", zonal_shift=True)
    fault.plan()
    fault.inject()
    wait_for(lambda: all(n.power != "running" for n in twin.world.nodes_in(ZONE)), 6, "the zone's instances stopped")
    owed = owed_reverts(fault.ctx.journal.path)
    assert len(owed) == 1
    AzLoss.revert_owed(target, owed[0].args)      # what `g7chaos recover` does in a fresh process
    AzLoss.revert_owed(target, owed[0].args)      # twice: a second recover finds nothing left and says nothing
    _clean(target, twin)
    wait_for(lambda: all(n.power in ("running", "rebooting") for n in twin.world.nodes_in(ZONE)), 6,
             "stopped instances started again")
    wait_for(lambda: _zone_ready(target, True), 20, "the zone's nodes Ready again")      # a boot: 90 s at 30x


def _extra_subnets(target: Target, vpc: str, count: int, third_octet: int) -> list[str]:
    ec2 = target.aws("ec2")
    return [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{vpc_octet(target, vpc)}.{third_octet + n}.0/24",
                              AvailabilityZone=ZONE)["Subnet"]["SubnetId"] for n in range(count)]


def vpc_octet(target: Target, vpc: str) -> int:
    cidr = target.aws("ec2").describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"]
    return int(cidr.split(".")[1])


def _cluster_vpc(target: Target, twin: TwinHandle) -> str:
    subnet = twin.world.subnets[ZONE][0]
    return target.aws("ec2").describe_subnets(SubnetIds=[subnet])["Subnets"][0]["VpcId"]


def test_a_twelve_subnet_zone_is_cut_through_targets_of_at_most_five(target: Target, twin: TwinHandle,
                                                                     tmp_path: Path):
    """FIS rejects a target of more than 5 ARNs: the zone's 12 subnets go in 3 targets, each cut by its own
    action, and the twin (which refuses the old one-target shape) accepts the template and cuts all 12."""
    ec2, fis = target.aws("ec2"), target.aws("fis")
    vpc = _cluster_vpc(target, twin)
    extra = _extra_subnets(target, vpc, 10, 112)
    try:
        fault = _fault(target, tmp_path)
        fault.plan()
        assert len(fault.subnet_arns) == 12 and set(extra) <= set(fault.subnets)
        with pytest.raises(ClientError) as refused:        # the one-target shape the harness used to send
            fis.create_experiment_template(
                description="one target for the whole zone", roleArn=fis_role_arn(target),
                stopConditions=[{"source": "none"}],
                targets={"subnets": {"resourceType": "aws:ec2:subnet", "resourceArns": fault.subnet_arns,
                                     "selectionMode": "COUNT(12)"}},
                actions={"disrupt": {"actionId": "aws:network:disrupt-connectivity", "targets": {"Subnets": "subnets"},
                                     "parameters": {"duration": "PT10M", "scope": "all"}}})
        assert refused.value.response["Error"]["Code"] == "ValidationException"

        fault.inject()
        template = fis.get_experiment_template(id=fault.template_id)["experimentTemplate"]
        assert [len(t["resourceArns"]) for t in template["targets"].values()] == [5, 5, 2]
        assert {a["actionId"] for a in template["actions"].values()} == {"aws:network:disrupt-connectivity"}
        assert sorted(a["targets"]["Subnets"] for a in template["actions"].values()) == sorted(template["targets"])
        wait_for(lambda: twin.world.disrupted_subnets == set(fault.subnets), 6, "all 12 subnets cut")
        fault.revert()
        _clean(target, twin)
    finally:
        for subnet in extra:
            ec2.delete_subnet(SubnetId=subnet)


def test_only_the_clusters_vpc_is_cut(target: Target, twin: TwinHandle, tmp_path: Path):
    """Another VPC with subnets in the same zone (another team's) is not this deployment's zone."""
    ec2 = target.aws("ec2")
    other = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    foreign = _extra_subnets(target, other, 2, 1)
    try:
        fault = _fault(target, tmp_path)
        fault.plan()
        assert fault.vpcs == [_cluster_vpc(target, twin)]
        assert set(fault.subnets) == set(twin.world.subnets[ZONE])
        assert not set(foreign) & set(fault.subnets)
        assert not any(s in arn for s in foreign for arn in fault.subnet_arns)
    finally:
        for subnet in foreign:
            ec2.delete_subnet(SubnetId=subnet)
        ec2.delete_vpc(VpcId=other)


def test_a_step_longer_than_fis_can_hold_a_zone_is_refused_at_plan(target: Target, tmp_path: Path):
    """disrupt-connectivity lasts PT1M..PT12H: a step FIS cannot cover is refused before anything is created,
    and a step within it plans an experiment that outlasts the step."""
    fault = _fault(target, tmp_path)
    fault.step = SimpleNamespace(duration=12 * 3600.0)
    with pytest.raises(FaultError, match="PT12H"):
        fault.plan()
    fault.step = SimpleNamespace(duration=600.0)
    fault.plan()
    assert fault.duration_s == 720.0
    assert target.aws("fis").list_experiment_templates()["experimentTemplates"] == []


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
