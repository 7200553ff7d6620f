"""Profiles that change the AWS side: one EKS cluster over both AZs, no placement group, no DBE/EFA alarms."""
from __future__ import annotations

from typing import Iterator

import pytest

from conftest import RunningTwin, node_in, state
from support.polling import wait_for
from harness.twin.world import DCGM_FI_DEV_ECC_DBE_VOL_TOTAL


@pytest.fixture(scope="module")
def stretched(twin: RunningTwin) -> Iterator[RunningTwin]:
    twin.stop()
    running = RunningTwin("single-multi-az-cluster,no-placement-group").start()
    yield running
    running.stop()


def test_one_cluster_over_both_azs_without_placement_group(stretched: RunningTwin) -> None:
    twin = stretched
    assert twin.aws.client("eks").list_clusters()["clusters"] == ["g7-use2"]
    cluster = twin.aws.client("eks").describe_cluster(name="g7-use2")["cluster"]
    assert set(cluster["resourcesVpcConfig"]["subnetIds"]) == {s for ids in twin.world.subnets.values() for s in ids}
    assert twin.aws.client("ec2").describe_placement_groups()["PlacementGroups"] == []
    reservations = twin.aws.client("ec2").describe_instances()["Reservations"]
    fleet = [i for r in reservations for i in r["Instances"]]
    assert {i["Placement"]["GroupName"] for i in fleet} == {""}
    spot = [i for i in fleet if i.get("InstanceLifecycle") == "spot"]
    assert sorted(i["Placement"]["AvailabilityZone"] for i in spot) == ["us-east-2a"] * 2 + ["us-east-2b"] * 2
    names = {a["AlarmName"] for a in twin.aws.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert names == {"g7-use2-gpu-ecc-dbe", "g7-use2-gpu-temperature", "g7-use2-efa-errors"}


def test_a_stretched_group_replaces_into_the_az_that_lost_the_instance(stretched: RunningTwin) -> None:
    twin = stretched
    ec2 = twin.aws.client("ec2")
    victim = next(n for n in twin.world.nodes.values() if n.role == "13b" and n.az == "us-east-2b")
    before = len(twin.hooks.named("launched"))
    ec2.terminate_instances(InstanceIds=[victim.instance_id])
    wait_for(lambda: len(twin.hooks.named("launched")) == before + 1, 5, "replacement")
    replacement = twin.hooks.named("launched")[-1]
    assert replacement[1:3] == ("g7-use2-13b", "us-east-2b")
    assert replacement[3] == victim.subnet_id, "the AZ's emptier subnet"


def test_nodegroup_scaling_config_resizes_its_group(stretched: RunningTwin) -> None:
    twin = stretched
    eks = twin.aws.client("eks")
    before = len(twin.hooks.named("launched"))
    eks.update_nodegroup_config(clusterName="g7-use2", nodegroupName="g7-use2-13b",
                                scalingConfig={"minSize": 5, "maxSize": 8, "desiredSize": 5})
    wait_for(lambda: len(twin.hooks.named("launched")) == before + 1, 5, "scale out")
    asg_name = twin.aws.seeded.asg_names["g7-use2-13b"]
    group = twin.aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[asg_name])["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == 5 and len(group["Instances"]) == 5
    terminated = len(twin.hooks.named("terminated"))
    eks.update_nodegroup_config(clusterName="g7-use2", nodegroupName="g7-use2-13b",
                                scalingConfig={"minSize": 3, "maxSize": 8, "desiredSize": 3})
    wait_for(lambda: len(twin.hooks.named("terminated")) == terminated + 2, 5, "scale in")


@pytest.fixture(scope="module")
def no_dbe_alarm_twin(stretched: RunningTwin) -> Iterator[RunningTwin]:
    stretched.stop()
    other = RunningTwin("no-dbe-alarm,no-efa-monitoring").start()
    yield other
    other.stop()


def test_profiles_without_the_alarms(no_dbe_alarm_twin: RunningTwin) -> None:
    twin = no_dbe_alarm_twin
    names = {a["AlarmName"] for a in twin.aws.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert names == {"g7-use2a-gpu-temperature", "g7-use2b-gpu-temperature"}
    node = node_in(twin, "g7-use2a")
    twin.call(lambda: node.gpus[0].fields.__setitem__(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, 1.0))
    # the metric is still published: only the alarm on it is missing
    wait_for(lambda: twin.aws.client("cloudwatch").list_metrics(
        Namespace="G7/GPU", MetricName="DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")["Metrics"], 3, "metric")
    assert state(twin, "g7-use2a-gpu-ecc-dbe") == "absent"
