"""The twin's FIS refuses at CreateExperimentTemplate what the real FIS refuses there, with ValidationException:
more than 5 resourceArns in a target, both or neither of resourceArns and resourceTags, a selectionMode that is
not ALL / COUNT(n) / PERCENT(n), unknown or missing action parameters, values outside the documented ranges,
and targets of the wrong resourceType for an action's key. What it accepts is shown next to each refusal.
Its IAM holds FIS's service-linked role beside the experiment role, as an account that has used FIS does."""
from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import RunningTwin
from support.polling import wait_for
from harness.twin.aws.fis import PARAMETER_RULES

SPOT = "aws:ec2:send-spot-instance-interruptions"
DISRUPT = "aws:network:disrupt-connectivity"
STOP = "aws:ec2:stop-instances"
WAIT = "aws:fis:wait"
IO_LATENCY = "aws:ebs:volume-io-latency"


def _arns(kind: str, n: int) -> list[str]:
    return [f"arn:aws:ec2:us-east-2:123456789012:{kind}/{kind[:3]}-{i:017x}" for i in range(n)]


def _create(twin: RunningTwin, targets: dict[str, Any], actions: dict[str, Any]) -> dict[str, Any]:
    """Create the template; an accepted one is deleted again at once (the twin's FIS is shared by the module)."""
    fis = twin.aws.client("fis")
    template = fis.create_experiment_template(description="rules probe", roleArn=twin.aws.seeded.fis_role_arn,
                                              stopConditions=[{"source": "none"}], targets=targets,
                                              actions=actions)["experimentTemplate"]
    fis.delete_experiment_template(id=template["id"])
    return template


def _refused(twin: RunningTwin, targets: dict[str, Any], actions: dict[str, Any]) -> str:
    templates = len(twin.aws.client("fis").list_experiment_templates()["experimentTemplates"])
    with pytest.raises(ClientError) as refused:
        _create(twin, targets, actions)
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException", error
    assert len(twin.aws.client("fis").list_experiment_templates()["experimentTemplates"]) == templates
    return error["Message"]


def _subnets(arns: list[str], mode: str = "ALL") -> dict[str, Any]:
    return {"subnets": {"resourceType": "aws:ec2:subnet", "resourceArns": arns, "selectionMode": mode}}


def _disrupt(parameters: dict[str, str], target: str = "subnets", key: str = "Subnets") -> dict[str, Any]:
    return {"cut": {"actionId": DISRUPT, "parameters": parameters, "targets": {key: target}}}


def test_a_target_takes_at_most_five_arns(twin: RunningTwin) -> None:
    cut = _disrupt({"duration": "PT10M", "scope": "all"})
    assert _create(twin, _subnets(_arns("subnet", 5)), cut)["targets"]["subnets"]["resourceArns"]
    assert "less than or equal to 5" in _refused(twin, _subnets(_arns("subnet", 6)), cut)
    # more than five is several targets, each with its own copy of the action (one target per key)
    groups = {"subnets": _subnets(_arns("subnet", 12)[:5])["subnets"],
              "subnets-2": _subnets(_arns("subnet", 12)[5:10])["subnets"],
              "subnets-3": _subnets(_arns("subnet", 12)[10:])["subnets"]}
    actions = {"cut" + s: _disrupt({"duration": "PT10M", "scope": "all"}, "subnets" + s)["cut"]
               for s in ("", "-2", "-3")}
    assert set(_create(twin, groups, actions)["actions"]) == {"cut", "cut-2", "cut-3"}


@pytest.mark.parametrize("target, accepted", [
    ({"resourceType": "aws:ec2:subnet", "resourceTags": {"role": "private"}, "selectionMode": "ALL"}, True),
    ({"resourceType": "aws:ec2:subnet", "resourceArns": _arns("subnet", 1), "selectionMode": "PERCENT(100)"}, True),
    ({"resourceType": "aws:ec2:subnet", "resourceArns": _arns("subnet", 2), "resourceTags": {"role": "private"},
      "selectionMode": "ALL"}, False),
    ({"resourceType": "aws:ec2:subnet", "selectionMode": "ALL",
      "filters": [{"path": "AvailabilityZone", "values": ["us-east-2a"]}]}, False),
    ({"resourceType": "aws:ec2:subnet", "resourceArns": _arns("subnet", 2), "selectionMode": "SOME(1)"}, False),
    ({"resourceType": "aws:ec2:subnet", "resourceArns": _arns("subnet", 2), "selectionMode": "COUNT(0)"}, False),
    ({"resourceType": "aws:ec2:subnet", "resourceArns": _arns("subnet", 2), "selectionMode": "PERCENT(150)"}, False),
])
def test_target_selection_syntax(twin: RunningTwin, target: dict[str, Any], accepted: bool) -> None:
    cut = _disrupt({"duration": "PT10M"})
    if accepted:
        assert _create(twin, {"subnets": target}, cut)
    else:
        assert "subnets" in _refused(twin, {"subnets": target}, cut)


INSTANCES = {"nodes": {"resourceType": "aws:ec2:instance", "resourceArns": _arns("instance", 1),
                       "selectionMode": "ALL"}}
SPOTS = {"spot": {"resourceType": "aws:ec2:spot-instance", "resourceArns": _arns("instance", 1),
                  "selectionMode": "ALL"}}
VOLUMES = {"volumes": {"resourceType": "aws:ec2:ebs-volume", "resourceArns": _arns("volume", 1),
                       "selectionMode": "ALL"}}


@pytest.mark.parametrize("action_id, targets, key, target, parameters, accepted", [
    (DISRUPT, _subnets(_arns("subnet", 1)), "Subnets", "subnets", {"duration": "PT1M", "scope": "all"}, True),
    (DISRUPT, _subnets(_arns("subnet", 1)), "Subnets", "subnets", {"duration": "PT12H",
                                                                   "scope": "availability-zone"}, True),
    (DISRUPT, _subnets(_arns("subnet", 1)), "Subnets", "subnets", {"duration": "PT30S"}, False),
    (DISRUPT, _subnets(_arns("subnet", 1)), "Subnets", "subnets", {"duration": "PT12H1M"}, False),
    (DISRUPT, _subnets(_arns("subnet", 1)), "Subnets", "subnets", {"duration": "PT10M", "scope": "zone"}, False),
    (DISRUPT, _subnets(_arns("subnet", 1)), "Subnets", "subnets", {"duration": "ten minutes"}, False),
    (DISRUPT, _subnets(_arns("subnet", 1)), "Subnets", "subnets", {"scope": "all"}, False),        # no duration
    (DISRUPT, _subnets(_arns("subnet", 1)), "Subnets", "subnets", {"duration": "PT10M", "force": "true"}, False),
    (SPOT, SPOTS, "SpotInstances", "spot", {"durationBeforeInterruption": "PT2M"}, True),
    (SPOT, SPOTS, "SpotInstances", "spot", {"durationBeforeInterruption": "PT15M"}, True),
    (SPOT, SPOTS, "SpotInstances", "spot", {"durationBeforeInterruption": "PT16M"}, False),
    (STOP, INSTANCES, "Instances", "nodes", {"startInstancesAfterDuration": "PT30S"}, False),
    (STOP, INSTANCES, "Instances", "nodes", {"completeIfInstancesTerminated": "maybe"}, False),
    (IO_LATENCY, VOLUMES, "Volumes", "volumes", {"duration": "PT1S", "readIOLatencyMilliseconds": "60000"}, True),
    (IO_LATENCY, VOLUMES, "Volumes", "volumes", {"duration": "PT5M", "readIOLatencyMilliseconds": "60001"}, False),
    (IO_LATENCY, VOLUMES, "Volumes", "volumes", {"duration": "PT5M", "writeIOPercentage": "0.05"}, False),
    (WAIT, {}, None, None, {"duration": "PT1M"}, True),
    (WAIT, {}, None, None, {"duration": "PT30S"}, False),
])
def test_action_parameters_follow_the_actions_reference(twin: RunningTwin, action_id: str, targets: dict, key: str,
                                                        target: str, parameters: dict[str, str],
                                                        accepted: bool) -> None:
    assert set(parameters) <= set(PARAMETER_RULES[action_id]) or not accepted
    action = {"actionId": action_id, "parameters": parameters, **({"targets": {key: target}} if key else {})}
    if accepted:
        assert _create(twin, targets, {"a": action})["actions"]["a"]["parameters"] == parameters
    else:
        assert action_id in _refused(twin, targets, {"a": action})


@pytest.mark.parametrize("targets, action", [
    (INSTANCES, _disrupt({"duration": "PT10M"}, "nodes")),                        # instances where subnets go
    (_subnets(_arns("subnet", 1)), _disrupt({"duration": "PT10M"}, "subnets", "Instances")),   # wrong key
    (_subnets(_arns("subnet", 1)), _disrupt({"duration": "PT10M"}, "elsewhere")),  # no such target
    (INSTANCES, {"cut": {"actionId": SPOT, "parameters": {"durationBeforeInterruption": "PT2M"},
                         "targets": {"SpotInstances": "nodes"}}}),               # aws:ec2:instance is not spot
    (INSTANCES, {"cut": {"actionId": "aws:ec2:reboot-instances"}}),               # no target at all
])
def test_an_action_takes_only_its_own_key_and_resource_type(twin: RunningTwin, targets: dict, action: dict) -> None:
    assert "cut" in _refused(twin, targets, action)


def test_the_account_holds_the_fis_service_linked_role_next_to_the_experiment_role(twin: RunningTwin) -> None:
    roles = {r["RoleName"]: r for r in twin.aws.client("iam").list_roles()["Roles"]}
    linked = roles["AWSServiceRoleForFIS"]
    assert linked["Path"] == "/aws-service-role/fis.amazonaws.com/"

    def trusted(role: dict) -> set[str]:
        document = role["AssumeRolePolicyDocument"]
        document = json.loads(urllib.parse.unquote(document)) if isinstance(document, str) else document
        return {s["Principal"]["Service"] for s in document["Statement"]}

    assert trusted(linked) == {"fis.amazonaws.com"}
    fis_trusting = sorted(name for name, role in roles.items() if "fis.amazonaws.com" in trusted(role))
    assert fis_trusting == ["AWSServiceRoleForFIS", "g7chaos-fis"]      # the EKS roles trust EKS and EC2


def test_an_ebs_action_on_volumes_of_two_zones_fails(twin: RunningTwin) -> None:
    """The actions reference: an EBS action's target volumes must be in the same Availability Zone."""
    fis, ec2 = twin.aws.client("fis"), twin.aws.client("ec2")
    volumes = {v["AvailabilityZone"]: v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]
               if v.get("Attachments")}
    assert len(volumes) >= 2
    arns = [f"arn:aws:ec2:us-east-2:123456789012:volume/{v}" for v in list(volumes.values())[:2]]
    template = fis.create_experiment_template(
        description="volumes of two zones", roleArn=twin.aws.seeded.fis_role_arn, stopConditions=[{"source": "none"}],
        targets={"volumes": {"resourceType": "aws:ec2:ebs-volume", "resourceArns": arns, "selectionMode": "ALL"}},
        actions={"pause": {"actionId": "aws:ebs:pause-volume-io", "parameters": {"duration": "PT5M"},
                           "targets": {"Volumes": "volumes"}}})["experimentTemplate"]
    try:
        experiment = fis.start_experiment(experimentTemplateId=template["id"])["experiment"]
        state = wait_for(lambda: (s := fis.get_experiment(id=experiment["id"])["experiment"]["state"])["status"]
                         in ("failed", "completed", "stopped") and s, 5, "the experiment ending")
        assert state["status"] == "failed" and "same Availability Zone" in state["reason"], state
        assert not twin.world.io_latency_s
    finally:
        fis.delete_experiment_template(id=template["id"])
