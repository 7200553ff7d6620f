"""AZ-level faults: FIS disrupt-connectivity, NLB target health from real health checks, ARC zonal shift."""
from __future__ import annotations

import asyncio
import socket
import threading
from typing import Iterator

import boto3
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from conftest import RunningTwin
from support.polling import wait_for


class HealthEndpoint:
    """A stand-in for the serving gateway's per-node health route, on its own loopback server."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.hits: dict[str, int] = {}
        app = Starlette(routes=[Route("/targets/{node}/v2/health/ready", self.ready)])
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    async def ready(self, request: Request) -> PlainTextResponse:
        node = request.path_params["node"]
        self.hits[node] = self.hits.get(node, 0) + 1
        return PlainTextResponse("", status_code=503 if node in self.failing else 200)

    def __enter__(self) -> "HealthEndpoint":
        self.thread.start()
        wait_for(lambda: self.server.started, 5, "health endpoint")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture(scope="module")
def gateway(twin: RunningTwin) -> Iterator[HealthEndpoint]:
    with HealthEndpoint() as endpoint:
        twin.call(lambda: setattr(twin.world, "serving_url", endpoint.url))
        yield endpoint
        twin.call(lambda: setattr(twin.world, "serving_url", ""))


def health(twin: RunningTwin, az: str) -> dict[str, dict]:
    elbv2 = twin.aws.client("elbv2")
    reply = elbv2.describe_target_health(TargetGroupArn=twin.aws.seeded.target_groups[az])
    return {d["Target"]["Id"]: d["TargetHealth"] for d in reply["TargetHealthDescriptions"]}


def test_target_health_follows_real_health_checks(twin: RunningTwin, gateway: HealthEndpoint) -> None:
    targets = health(twin, "us-east-2a")
    assert len(targets) == 2                                   # the 13b nodes of use2a only, not the 70b pair
    victim = twin.world.node_by_instance(sorted(targets)[0])
    assert victim is not None
    wait_for(lambda: gateway.hits.get(victim.name, 0) >= 2, 5, "probes reach the gateway")
    wait_for(lambda: all(h["State"] == "healthy" for h in health(twin, "us-east-2a").values()), 5, "all healthy")
    gateway.failing.add(victim.name)
    wait_for(lambda: health(twin, "us-east-2a")[victim.instance_id]["State"] == "unhealthy", 5, "unhealthy")
    record = health(twin, "us-east-2a")[victim.instance_id]
    assert record["Reason"] == "Target.ResponseCodeMismatch" and "[503]" in record["Description"]
    assert twin.world.target_health[victim.name] == "unhealthy"
    assert all(h["State"] == "healthy" for i, h in health(twin, "us-east-2a").items() if i != victim.instance_id)
    gateway.failing.clear()
    wait_for(lambda: health(twin, "us-east-2a")[victim.instance_id]["State"] == "healthy", 5, "healthy again")
    assert twin.world.target_health[victim.name] == "healthy"


def test_probes_follow_the_groups_interval_and_the_harness_reads_it(twin: RunningTwin, gateway: HealthEndpoint) -> None:
    """Each target is probed once per HealthCheckIntervalSeconds (scaled), and the interval the harness reads for
    the deployment's canary window is the longest of the load balancer's target groups (FIDELITY ELB-1)."""
    from types import SimpleNamespace

    from harness.loadbalancer import health_check_interval
    from harness.target.model import LoadBalancerSpec
    from harness.twin.aws.twin import NLB_NAME

    target = SimpleNamespace(spec=SimpleNamespace(load_balancer=LoadBalancerSpec(name=NLB_NAME)),
                             aws=twin.aws.client)
    assert health_check_interval(target) == (10.0, "g7-13b-use2a")
    elbv2 = twin.aws.client("elbv2")
    slow = twin.aws.seeded.target_groups["us-east-2b"]
    elbv2.modify_target_group(TargetGroupArn=slow, HealthCheckIntervalSeconds=30)
    try:
        assert health_check_interval(target) == (30.0, "g7-13b-use2b")
        named = SimpleNamespace(spec=SimpleNamespace(load_balancer=LoadBalancerSpec(
            name=NLB_NAME, target_groups={"us-east-2a": "g7-13b-use2a"})), aws=twin.aws.client)
        assert health_check_interval(named) == (10.0, "g7-13b-use2a")     # the groups the target names, only
        fast = twin.world.node_by_instance(sorted(health(twin, "us-east-2a"))[0])
        assert fast is not None
        interval_wall = twin.world.clock.wall(10.0)
        start = gateway.hits.get(fast.name, 0)
        wait_for(lambda: gateway.hits.get(fast.name, 0) >= start + 3, 4 * interval_wall + 2, "three more probes")
    finally:
        elbv2.modify_target_group(TargetGroupArn=slow, HealthCheckIntervalSeconds=10)
    missing = SimpleNamespace(spec=SimpleNamespace(load_balancer=LoadBalancerSpec(name="no-such-nlb")),
                              aws=twin.aws.client)
    assert health_check_interval(missing) is None


def _disrupt_template(twin: RunningTwin, az: str, duration: str) -> str:
    fis = twin.aws.client("fis")
    return fis.create_experiment_template(
        description=f"power interruption of {az}", roleArn=twin.aws.seeded.fis_role_arn,
        stopConditions=[{"source": "none"}],
        targets={"subnets": {"resourceType": "aws:ec2:subnet", "selectionMode": "ALL",
                             "resourceTags": {"kubernetes.io/role/internal-elb": "1"},
                             "filters": [{"path": "AvailabilityZone", "values": [az]}]}},
        actions={"cut": {"actionId": "aws:network:disrupt-connectivity", "targets": {"Subnets": "subnets"},
                         "parameters": {"duration": duration, "scope": "all"}}})["experimentTemplate"]["id"]


def test_disrupt_connectivity_cuts_an_az_and_stop_restores_it(twin: RunningTwin, gateway: HealthEndpoint) -> None:
    fis = twin.aws.client("fis")
    subnets = set(twin.world.subnets["us-east-2b"])
    experiment = fis.start_experiment(experimentTemplateId=_disrupt_template(twin, "us-east-2b", "PT10M"))["experiment"]
    wait_for(lambda: (subnets, True) in twin.hooks.named("connectivity"), 3, "disrupted")
    assert twin.world.disrupted_subnets == subnets
    assert all(not n.network_reachable for n in twin.world.nodes_in("us-east-2b"))
    assert all(n.network_reachable for n in twin.world.nodes_in("us-east-2a"))
    wait_for(lambda: all(h["State"] == "unhealthy" for h in health(twin, "us-east-2b").values()), 5, "AZ unhealthy")
    assert {h["Reason"] for h in health(twin, "us-east-2b").values()} == {"Target.Timeout"}
    assert fis.get_experiment(id=experiment["id"])["experiment"]["state"]["status"] == "running"
    fis.stop_experiment(id=experiment["id"])
    wait_for(lambda: (subnets, False) in twin.hooks.named("connectivity"), 3, "restored")
    assert twin.world.disrupted_subnets == set()
    state = fis.get_experiment(id=experiment["id"])["experiment"]["state"]
    assert state["status"] == "stopped"
    wait_for(lambda: all(h["State"] == "healthy" for h in health(twin, "us-east-2b").values()), 5, "AZ healthy")


def test_disrupt_connectivity_ends_with_its_duration(twin: RunningTwin) -> None:
    fis = twin.aws.client("fis")
    subnets = set(twin.world.subnets["us-east-2a"])
    before = len(twin.hooks.named("connectivity"))
    experiment = fis.start_experiment(experimentTemplateId=_disrupt_template(twin, "us-east-2a", "PT1M"))["experiment"]
    wait_for(lambda: len(twin.hooks.named("connectivity")) >= before + 2, 4, "cut and restored")
    assert twin.hooks.named("connectivity")[before:] == [(subnets, True), (subnets, False)]
    wait_for(lambda: fis.get_experiment(id=experiment["id"])["experiment"]["state"]["status"] == "completed", 2,
             "completed")
    listed = {e["id"]: e["state"]["status"] for e in fis.list_experiments()["experiments"]}
    assert listed[experiment["id"]] == "completed"


def test_zonal_shift_through_boto3(twin: RunningTwin) -> None:
    arc = boto3.client("arc-zonal-shift", endpoint_url=twin.urls["zonal"], region_name="us-east-2",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    nlb = twin.aws.seeded.nlb_arn
    resources = arc.list_managed_resources()["items"]
    assert [r["arn"] for r in resources] == [nlb]
    assert sorted(resources[0]["availabilityZones"]) == ["use2-az1", "use2-az2"]
    shift = arc.start_zonal_shift(resourceIdentifier=nlb, awayFrom="use2-az1", expiresIn="30m", comment="az-loss")
    assert shift["status"] == "ACTIVE" and shift["awayFrom"] == "use2-az1"
    assert twin.world.zonal_shift_away == {"us-east-2a"}
    assert arc.get_managed_resource(resourceIdentifier=nlb)["appliedWeights"] == {"use2-az1": 0.0, "use2-az2": 1.0}
    with pytest.raises(arc.exceptions.ConflictException):
        arc.start_zonal_shift(resourceIdentifier=nlb, awayFrom="use2-az2", expiresIn="30m", comment="twice")
    with pytest.raises(arc.exceptions.ResourceNotFoundException):
        arc.start_zonal_shift(resourceIdentifier="arn:aws:nope", awayFrom="use2-az1", expiresIn="30m", comment="x")
    assert [s["zonalShiftId"] for s in arc.list_zonal_shifts(status="ACTIVE")["items"]] == [shift["zonalShiftId"]]
    arc.update_zonal_shift(zonalShiftId=shift["zonalShiftId"], comment="still out")
    cancelled = arc.cancel_zonal_shift(zonalShiftId=shift["zonalShiftId"])
    assert cancelled["status"] == "CANCELED" and twin.world.zonal_shift_away == set()
    # expiresIn is real-world time, scaled: 1m at 60x is one wall second
    short = arc.start_zonal_shift(resourceIdentifier=nlb, awayFrom="use2-az2", expiresIn="1m", comment="brief")
    assert twin.world.zonal_shift_away == {"us-east-2b"}
    wait_for(lambda: not twin.world.zonal_shift_away, 3, "expiry")
    assert arc.list_zonal_shifts(status="EXPIRED")["items"][0]["zonalShiftId"] == short["zonalShiftId"]


def test_zonal_shift_refuses_az_names(twin: RunningTwin) -> None:
    """awayFrom is an AZ ID; the zone name a person would type is a ValidationException, and nothing shifts."""
    arc = boto3.client("arc-zonal-shift", endpoint_url=twin.urls["zonal"], region_name="us-east-2",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    nlb = twin.aws.seeded.nlb_arn
    for away in ("us-east-2a", "use2-az9"):
        with pytest.raises(arc.exceptions.ValidationException) as refused:
            arc.start_zonal_shift(resourceIdentifier=nlb, awayFrom=away, expiresIn="30m", comment="by name")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert refused.value.response["reason"] == "UnsupportedAz"
    assert arc.list_zonal_shifts(status="ACTIVE")["items"] == [] and twin.world.zonal_shift_away == set()


def test_zonal_shift_needs_the_load_balancer_attribute(twin: RunningTwin) -> None:
    """With zonal_shift.config.enabled false the NLB is no managed resource of ARC: start_zonal_shift is
    ResourceNotFoundException; set it true again and the same call works."""
    arc = boto3.client("arc-zonal-shift", endpoint_url=twin.urls["zonal"], region_name="us-east-2",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    elbv2 = twin.aws.client("elbv2")
    nlb = twin.aws.seeded.nlb_arn

    def enabled() -> str:
        attributes = elbv2.describe_load_balancer_attributes(LoadBalancerArn=nlb)["Attributes"]
        return next(a["Value"] for a in attributes if a["Key"] == "zonal_shift.config.enabled")

    assert enabled() == "true"                                        # the article deployment opted in
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=nlb, Attributes=[
        {"Key": "zonal_shift.config.enabled", "Value": "false"}])
    try:
        with pytest.raises(arc.exceptions.ResourceNotFoundException):
            arc.start_zonal_shift(resourceIdentifier=nlb, awayFrom="use2-az1", expiresIn="30m", comment="off")
        assert arc.list_managed_resources()["items"] == []
        assert twin.world.zonal_shift_away == set()
    finally:
        elbv2.modify_load_balancer_attributes(LoadBalancerArn=nlb, Attributes=[
            {"Key": "zonal_shift.config.enabled", "Value": "true"}])
    shift = arc.start_zonal_shift(resourceIdentifier=nlb, awayFrom="use2-az1", expiresIn="30m", comment="on")
    assert twin.world.zonal_shift_away == {"us-east-2a"}
    arc.cancel_zonal_shift(zonalShiftId=shift["zonalShiftId"])
    assert twin.world.zonal_shift_away == set()
