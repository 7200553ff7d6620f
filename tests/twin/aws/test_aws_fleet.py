"""Seeding, spot interruptions end to end, and Auto Scaling replacement, through boto3 and IMDS on loopback."""
from __future__ import annotations

import time

from harness.twin.aws.asg import ASG_LAUNCH_DELAY_S

import httpx
import pytest
from botocore.exceptions import ClientError

from conftest import RunningTwin
from support.polling import stays, wait_for


def instances(twin: RunningTwin, **filters: str) -> list[dict]:
    flt = [{"Name": k, "Values": [v]} for k, v in filters.items()]
    pages = twin.aws.client("ec2").describe_instances(Filters=flt)["Reservations"]
    return [i for r in pages for i in r["Instances"]]


def tag(instance: dict, key: str) -> str | None:
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == key), None)


def running_in_group(twin: RunningTwin, nodegroup: str) -> list[dict]:
    return [i for i in instances(twin, **{"tag:eks:nodegroup-name": nodegroup, "instance-state-name": "running"})]


def test_seed_spreads_the_fleet_over_both_azs_with_the_placement_group(twin: RunningTwin) -> None:
    fleet = instances(twin, **{"instance-state-name": "running"})
    assert len(fleet) == 6
    spot = [i for i in fleet if i.get("InstanceLifecycle") == "spot"]
    assert sorted(i["Placement"]["AvailabilityZone"] for i in spot) == ["us-east-2a"] * 2 + ["us-east-2b"] * 2
    assert all(i["SubnetId"] in twin.world.subnets[i["Placement"]["AvailabilityZone"]] for i in fleet)
    # within one AZ the group uses both of the AZ's subnets
    assert len({i["SubnetId"] for i in spot if i["Placement"]["AvailabilityZone"] == "us-east-2a"}) == 2
    tp = [i for i in fleet if tag(i, "eks:nodegroup-name") == "g7-use2a-70b-tp"]
    assert len(tp) == 2 and {i["Placement"]["GroupName"] for i in tp} == {"g7-tp-70b"}
    assert all(i.get("InstanceLifecycle") is None for i in tp)
    assert sorted(i["InstanceId"] for i in instances(twin, **{"instance-lifecycle": "spot"})) == sorted(
        i["InstanceId"] for i in spot)
    assert len(instances(twin, **{"placement-group-name": "g7-tp-70b"})) == 2
    groups = twin.aws.client("ec2").describe_placement_groups()["PlacementGroups"]
    assert [(g["GroupName"], g["Strategy"]) for g in groups] == [("g7-tp-70b", "cluster")]
    for instance in fleet:
        asg = tag(instance, "aws:autoscaling:groupName")
        assert asg == twin.aws.seeded.asg_names[tag(instance, "eks:nodegroup-name")]
        assert tag(instance, "eks:cluster-name") in ("g7-use2a", "g7-use2b")
    # EKS knows the nodegroup's ASG, and the ASG knows its instances
    ng = twin.aws.client("eks").describe_nodegroup(clusterName="g7-use2b", nodegroupName="g7-use2b-13b")["nodegroup"]
    asg_name = ng["resources"]["autoScalingGroups"][0]["name"]
    asg = twin.aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])
    assert len(asg["AutoScalingGroups"][0]["Instances"]) == 2 and asg["AutoScalingGroups"][0]["DesiredCapacity"] == 2
    assert len(twin.hooks.named("launched")) == 6
    assert {n.az for n in twin.world.nodes.values()} == {"us-east-2a", "us-east-2b"}


def test_fis_spot_interruption_notice_terminate_and_replacement(twin: RunningTwin) -> None:
    fis = twin.aws.client("fis")
    launched_before = len(twin.hooks.named("launched"))
    template = fis.create_experiment_template(
        description="spot interruption of one 13b node in use2a", roleArn=twin.aws.seeded.fis_role_arn,
        stopConditions=[{"source": "none"}],
        targets={"spot": {"resourceType": "aws:ec2:spot-instance", "selectionMode": "COUNT(1)",
                          "resourceTags": {"eks:nodegroup-name": "g7-use2a-13b"},
                          "filters": [{"path": "State.Name", "values": ["running"]}]}},
        actions={"interrupt": {"actionId": "aws:ec2:send-spot-instance-interruptions",
                               "parameters": {"durationBeforeInterruption": "PT2M"},
                               "targets": {"SpotInstances": "spot"}}})["experimentTemplate"]
    started = time.time()
    experiment = fis.start_experiment(experimentTemplateId=template["id"])["experiment"]
    notice = wait_for(lambda: twin.hooks.named("spot_notice"), 3, "spot notice")
    instance_id, terminate_at = notice[0]
    assert twin.hooks.named("rebalance")[0] == (instance_id,)
    assert abs(terminate_at - (started + 120 / 60.0)) < 1.0          # PT2M at 60x
    node = twin.world.node_by_instance(instance_id)
    assert node is not None and node.az == "us-east-2a"
    other = next(n for n in twin.world.nodes.values() if n.instance_id != instance_id)
    imds = twin.urls["imds"]
    token = httpx.put(f"{imds}/nodes/{node.name}/latest/api/token",
                      headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).text
    action = httpx.get(f"{imds}/nodes/{node.name}/latest/meta-data/spot/instance-action",
                       headers={"X-aws-ec2-metadata-token": token})
    assert action.status_code == 200 and action.json()["action"] == "terminate"
    assert httpx.get(f"{imds}/nodes/{node.name}/latest/meta-data/events/recommendations/rebalance").status_code == 200
    assert httpx.get(f"{imds}/nodes/{other.name}/latest/meta-data/spot/instance-action").status_code == 404
    assert httpx.get(f"{imds}/nodes/{node.name}/latest/meta-data/instance-id").text == instance_id
    assert httpx.get(f"{imds}/nodes/{node.name}/latest/meta-data/placement/availability-zone").text == "us-east-2a"
    assert httpx.get(f"{imds}/nodes/{node.name}/latest/meta-data/instance-id",
                     headers={"X-aws-ec2-metadata-token": "forged"}).status_code == 401
    assert fis.get_experiment(id=experiment["id"])["experiment"]["state"]["status"] == "running"
    resolved = fis.list_experiment_resolved_targets(experimentId=experiment["id"])["resolvedTargets"]
    assert [r["targetInformation"]["arn"].rsplit("/", 1)[-1] for r in resolved] == [instance_id]

    wait_for(lambda: (instance_id,) in twin.hooks.named("terminated"), 5, "termination")
    assert time.time() >= terminate_at - 0.1, "terminated before the notice ran out"
    gone = instances(twin, **{"instance-id": instance_id})[0]
    assert gone["State"]["Name"] == "terminated"
    assert gone["StateReason"]["Code"] == "Server.SpotInstanceTermination"
    wait_for(lambda: fis.get_experiment(id=experiment["id"])["experiment"]["state"]["status"] == "completed", 3,
             "experiment completed")
    # the replacement (launched early by capacity rebalancing) is in the same AZ, and only one is launched
    wait_for(lambda: len(running_in_group(twin, "g7-use2a-13b")) == 2, 5, "replacement running")
    new = [args for args in twin.hooks.named("launched")[launched_before:]]
    assert len(new) == 1 and new[0][1:3] == ("g7-use2a-13b", "us-east-2a")
    wait_for(lambda: new[0][0] in {n.instance_id for n in twin.world.nodes.values()}, 2, "replacement node")
    # for longer than the group's launch delay, no second replacement follows
    stays(lambda: len(twin.hooks.named("launched")) == launched_before + 1, ASG_LAUNCH_DELAY_S / 60.0 + 0.5,
          "a single replacement")
    asg = twin.aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[twin.aws.seeded.asg_names["g7-use2a-13b"]])["AutoScalingGroups"][0]
    assert sorted(i["InstanceId"] for i in asg["Instances"]) == sorted(i["InstanceId"] for i in
                                                                      running_in_group(twin, "g7-use2a-13b"))


def test_terminations_through_the_asg_and_ec2_apis_are_replaced(twin: RunningTwin) -> None:
    autoscaling, ec2 = twin.aws.client("autoscaling"), twin.aws.client("ec2")
    victims = running_in_group(twin, "g7-use2b-13b")
    launched_before = len(twin.hooks.named("launched"))
    asked = time.time()
    autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=victims[0]["InstanceId"],
                                                         ShouldDecrementDesiredCapacity=False)
    ec2.terminate_instances(InstanceIds=[victims[1]["InstanceId"]])
    wait_for(lambda: {(v["InstanceId"],) for v in victims} <= set(twin.hooks.named("terminated")), 3, "terminated")
    wait_for(lambda: len(twin.hooks.named("launched")) == launched_before + 2, 5, "two replacements")
    # not at once: each replacement waits for the group's (scaled) launch delay
    assert all(t - asked >= ASG_LAUNCH_DELAY_S / 60.0 * 0.9 for t, _ in twin.hooks.timed("launched")[launched_before:])
    new = twin.hooks.named("launched")[launched_before:]
    assert {a[2] for a in new} == {"us-east-2b"}
    assert len({a[3] for a in new}) == 2, "replacements spread over the AZ's two subnets"
    assert len(running_in_group(twin, "g7-use2b-13b")) == 2
    activities = autoscaling.describe_scaling_activities(
        AutoScalingGroupName=twin.aws.seeded.asg_names["g7-use2b-13b"])["Activities"]
    described = [a["Description"] for a in activities]
    assert described[:2] == [f"Launching a new EC2 instance: {a[0]}" for a in reversed(new)]
    assert {f"Terminating EC2 instance: {v['InstanceId']}" for v in victims} <= set(described)
    # the NLB drains the lost targets for the (scaled, 5 s) deregistration delay, then forgets them
    elbv2 = twin.aws.client("elbv2")
    tg = twin.aws.seeded.target_groups["us-east-2b"]
    listed = lambda: {d["Target"]["Id"] for d in elbv2.describe_target_health(TargetGroupArn=tg)[  # noqa: E731
        "TargetHealthDescriptions"]}
    assert listed() == {a[0] for a in new}
    drained = lambda: {d["TargetHealth"]["State"] for d in elbv2.describe_target_health(  # noqa: E731
        TargetGroupArn=tg, Targets=[{"Id": v["InstanceId"]} for v in victims])["TargetHealthDescriptions"]}
    assert drained() == {"draining"}
    wait_for(lambda: drained() == {"unused"}, 8, "deregistration delay over")


def test_fis_reboot_and_stop_with_restart(twin: RunningTwin) -> None:
    fis = twin.aws.client("fis")
    tp = running_in_group(twin, "g7-use2a-70b-tp")
    arns = [f"arn:aws:ec2:us-east-2:123456789012:instance/{i['InstanceId']}" for i in tp]
    template = fis.create_experiment_template(
        description="reboot one, then stop the other for a minute", roleArn=twin.aws.seeded.fis_role_arn,
        stopConditions=[{"source": "none"}],
        targets={"first": {"resourceType": "aws:ec2:instance", "resourceArns": arns[:1], "selectionMode": "ALL"},
                 "second": {"resourceType": "aws:ec2:instance", "resourceArns": arns[1:], "selectionMode": "ALL"}},
        actions={"reboot": {"actionId": "aws:ec2:reboot-instances", "targets": {"Instances": "first"}},
                 "stop": {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "second"},
                          "parameters": {"startInstancesAfterDuration": "PT1M"}, "startAfter": ["reboot"]}},
    )["experimentTemplate"]
    experiment = fis.start_experiment(experimentTemplateId=template["id"])["experiment"]
    wait_for(lambda: (tp[0]["InstanceId"],) in twin.hooks.named("rebooted"), 3, "reboot")
    wait_for(lambda: (tp[1]["InstanceId"],) in twin.hooks.named("stopped"), 3, "stop")
    assert instances(twin, **{"instance-id": tp[1]["InstanceId"]})[0]["State"]["Name"] == "stopped"
    wait_for(lambda: (tp[1]["InstanceId"],) in twin.hooks.named("started"), 4, "restart after PT1M")
    wait_for(lambda: fis.get_experiment(id=experiment["id"])["experiment"]["state"]["status"] == "completed", 3,
             "completed")
    actions = fis.get_experiment(id=experiment["id"])["experiment"]["actions"]
    assert {a["state"]["status"] for a in actions.values()} == {"completed"}
    assert not [a for a in twin.hooks.named("terminated") if a[0] in {i["InstanceId"] for i in tp}]


def test_fis_describes_the_actions_it_can_run(twin: RunningTwin) -> None:
    fis = twin.aws.client("fis")
    ids = {a["id"] for a in fis.list_actions()["actions"]}
    assert {"aws:ec2:send-spot-instance-interruptions", "aws:network:disrupt-connectivity",
            "aws:ec2:reboot-instances", "aws:ec2:stop-instances"} <= ids
    spot = fis.get_action(id="aws:ec2:send-spot-instance-interruptions")["action"]
    assert spot["targets"] == {"SpotInstances": {"resourceType": "aws:ec2:spot-instance"}}
    assert spot["parameters"]["durationBeforeInterruption"]["required"] is True


def test_an_unsupported_action_fails_the_experiment_with_a_reason(twin: RunningTwin) -> None:
    fis = twin.aws.client("fis")
    template = fis.create_experiment_template(
        description="not in the twin", roleArn=twin.aws.seeded.fis_role_arn, stopConditions=[{"source": "none"}],
        targets={}, actions={"x": {"actionId": "aws:eks:inject-kubernetes-custom-resource"}})["experimentTemplate"]
    experiment = fis.start_experiment(experimentTemplateId=template["id"])["experiment"]
    state = wait_for(lambda: (s := fis.get_experiment(id=experiment["id"])["experiment"]["state"])["status"] == "failed"
                     and s, 3, "failed")
    assert "aws:eks:inject-kubernetes-custom-resource" in state["reason"]


def test_a_spot_duration_outside_pt2m_pt15m_is_refused_at_template_creation(twin: RunningTwin) -> None:
    """FIS validates action parameters when the template is created: nothing exists and nothing is sent."""
    fis = twin.aws.client("fis")
    notices, templates = len(twin.hooks.named("spot_notice")), len(fis.list_experiment_templates()["experimentTemplates"])
    for duration in ("PT30S", "PT1M59S", "PT16M", "soon"):
        with pytest.raises(ClientError) as refused:
            fis.create_experiment_template(
                description="out of range", roleArn=twin.aws.seeded.fis_role_arn, stopConditions=[{"source": "none"}],
                targets={"spot": {"resourceType": "aws:ec2:spot-instance", "selectionMode": "COUNT(1)",
                                  "resourceTags": {"eks:nodegroup-name": "g7-use2b-13b"}}},
                actions={"interrupt": {"actionId": "aws:ec2:send-spot-instance-interruptions",
                                       "parameters": {"durationBeforeInterruption": duration},
                                       "targets": {"SpotInstances": "spot"}}})
        assert refused.value.response["Error"]["Code"] == "ValidationException", duration
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(fis.list_experiment_templates()["experimentTemplates"]) == templates
    assert len(twin.hooks.named("spot_notice")) == notices


def test_fis_spot_rebalance_at_once_notice_two_minutes_before_the_interruption(twin: RunningTwin) -> None:
    """PT5M at 60x: the rebalance recommendation at the action's start, the interruption notice 3 min later (2 min
    before the interruption), the instance reclaimed at 5 min; IMDS shows each signal only from its time on."""
    fis = twin.aws.client("fis")
    node = next(n for n in twin.world.nodes.values() if n.nodegroup == "g7-use2b-13b" and n.power == "running"
                and n.rebalance_at is None)
    arn = f"arn:aws:ec2:us-east-2:123456789012:instance/{node.instance_id}"
    template = fis.create_experiment_template(
        description="spot interruption with a rebalance lead", roleArn=twin.aws.seeded.fis_role_arn,
        stopConditions=[{"source": "none"}],
        targets={"spot": {"resourceType": "aws:ec2:spot-instance", "selectionMode": "COUNT(1)",
                          "resourceArns": [arn]}},
        actions={"interrupt": {"actionId": "aws:ec2:send-spot-instance-interruptions",
                               "parameters": {"durationBeforeInterruption": "PT5M"},
                               "targets": {"SpotInstances": "spot"}}})["experimentTemplate"]
    started = time.time()
    fis.start_experiment(experimentTemplateId=template["id"])
    base = f"{twin.urls['imds']}/nodes/{node.name}/latest/meta-data"
    wait_for(lambda: (node.instance_id,) in twin.hooks.named("rebalance"), 2, "the rebalance recommendation")
    rebalanced = time.time()
    assert rebalanced - started < 1.0
    assert httpx.get(f"{base}/events/recommendations/rebalance").status_code == 200
    assert httpx.get(f"{base}/spot/instance-action").status_code == 404          # no notice yet
    assert not [n for n in twin.hooks.named("spot_notice") if n[0] == node.instance_id]
    notice = wait_for(lambda: [n for n in twin.hooks.named("spot_notice") if n[0] == node.instance_id], 5,
                      "the interruption notice")
    noticed = time.time()
    assert 3.0 - 0.3 <= noticed - started <= 3.0 + 1.0, f"notice after {noticed - started:.2f} s, not 3 s"
    terminate_at = notice[0][1]
    assert abs(terminate_at - (started + 5.0)) < 1.0                                  # PT5M at 60x
    action = httpx.get(f"{base}/spot/instance-action")
    assert action.status_code == 200 and action.json()["action"] == "terminate"
    wait_for(lambda: (node.instance_id,) in twin.hooks.named("terminated"), 4, "the interruption")
    assert time.time() >= terminate_at - 0.1, "interrupted before its time"


def test_imds_answers_like_imds(twin: RunningTwin) -> None:
    imds = twin.urls["imds"]
    node = next(n for n in twin.world.nodes.values() if n.role == "70b-tp" and n.power == "running")
    base = f"{imds}/nodes/{node.name}/latest"
    assert httpx.put(f"{base}/api/token").status_code == 400                      # the TTL header is required
    assert httpx.get(f"{imds}/nodes/ip-10-9-9-9.us-east-2.compute.internal/latest/meta-data/instance-id"
                     ).status_code == 404
    assert httpx.get(f"{base}/meta-data/instance-type").text == "g7.48xlarge"
    assert httpx.get(f"{base}/meta-data/instance-life-cycle").text == "on-demand"
    assert httpx.get(f"{base}/meta-data/placement/group-name").text == "g7-tp-70b"
    assert httpx.get(f"{base}/meta-data/local-ipv4").text == node.private_ip
    assert httpx.get(f"{base}/meta-data/spot/instance-action").status_code == 404
    assert httpx.get(f"{base}/meta-data/events/recommendations/rebalance").status_code == 404
    assert "instance-id" in httpx.get(f"{base}/meta-data/").text.split()
