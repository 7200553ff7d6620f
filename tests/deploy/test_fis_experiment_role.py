"""deploy/fis-experiment-role-*.json: the role FIS assumes holds exactly the permissions the FIS actions reference
lists for the actions the harness's templates can use, scoped to the account's instances, volumes, subnets and
the network ACLs FIS itself tags `managedByFIS=true`; only FIS experiments of the account may assume it; and the
CronJob's target names it (`fis_role_arn`), the same role deploy/iam-policy.json lets the harness pass.

The action IDs are walked from the fault modules (every `"aws:<service>:<action>"` literal that is not a resource
type or a stop-condition source), so a fault that starts using a new FIS action fails here until its permissions
are added to the table below and to the policy."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from harness.twin.aws.fis import ACTION_CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
FAULTS = ROOT / "harness" / "faults"
ROLE_ARN = "arn:aws:iam::111122223333:role/g7chaos-fis-experiment"

# https://docs.aws.amazon.com/fis/latest/userguide/fis-actions-reference.html, "Permissions" of each action
# (kms:CreateGrant: stop-instances' startInstancesAfterDuration on instances with encrypted volumes).
REFERENCE_PERMISSIONS: dict[str, set[str]] = {
    "aws:ec2:reboot-instances": {"ec2:RebootInstances", "ec2:DescribeInstances"},
    "aws:ec2:send-spot-instance-interruptions": {"ec2:SendSpotInstanceInterruptions", "ec2:DescribeInstances"},
    "aws:ec2:stop-instances": {"ec2:StopInstances", "ec2:StartInstances", "ec2:DescribeInstances", "kms:CreateGrant"},
    "aws:ec2:terminate-instances": {"ec2:TerminateInstances", "ec2:DescribeInstances"},
    "aws:network:disrupt-connectivity": {"ec2:CreateNetworkAcl", "ec2:CreateNetworkAclEntry", "ec2:CreateTags",
                                         "ec2:DeleteNetworkAcl", "ec2:DescribeManagedPrefixLists",
                                         "ec2:DescribeNetworkAcls", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
                                         "ec2:GetManagedPrefixListEntries", "ec2:ReplaceNetworkAclAssociation"},
    "aws:ebs:pause-volume-io": {"ec2:DescribeVolumes", "ec2:PauseVolumeIO", "tag:GetResources"},
    "aws:ebs:volume-io-latency": {"ec2:DescribeVolumes", "ec2:InjectVolumeIOLatency", "tag:GetResources"},
    "aws:fis:wait": set(),
}
NOT_ACTIONS = {kind for entry in ACTION_CATALOGUE.values() for kind in entry["targets"].values()} | \
    {"aws:cloudwatch:alarm"}       # resource types and the stop-condition source share the aws:x:y shape


def harness_action_ids() -> set[str]:
    literals = {m for path in FAULTS.glob("*.py") for m in re.findall(r"[\"'](aws:[a-z0-9]+:[a-z0-9-]+)[\"']",
                                                                     path.read_text())}
    return literals - NOT_ACTIONS


def policy(name: str) -> dict:
    return json.loads((DEPLOY / name).read_text())


def granted() -> set[str]:
    return {action for s in policy("fis-experiment-role-policy.json")["Statement"] if s["Effect"] == "Allow"
            for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def test_the_walk_finds_the_actions_the_faults_use() -> None:
    assert {"aws:ec2:reboot-instances", "aws:ec2:send-spot-instance-interruptions", "aws:ec2:stop-instances",
            "aws:network:disrupt-connectivity", "aws:ebs:pause-volume-io",
            "aws:ebs:volume-io-latency"} <= harness_action_ids()


def gaps(used: set[str], allowed: set[str]) -> dict[str, list[str]]:
    """What a role granting `allowed` lacks for the actions `used`, and what it grants beyond them."""
    unknown = used - set(REFERENCE_PERMISSIONS)
    needed = set().union(*(REFERENCE_PERMISSIONS[a] for a in used - unknown))
    return {"unknown actions": sorted(unknown), "missing": sorted(needed - allowed),
            "not needed": sorted(allowed - needed)}


def test_every_action_the_harness_uses_has_its_reference_permissions_and_nothing_more() -> None:
    assert gaps(harness_action_ids(), granted()) == {"unknown actions": [], "missing": [], "not needed": []}


def test_the_coverage_check_catches_a_missing_permission_and_a_new_action() -> None:
    used = harness_action_ids()
    assert gaps(used, granted() - {"ec2:PauseVolumeIO"})["missing"] == ["ec2:PauseVolumeIO"]
    assert gaps(used - {"aws:ebs:pause-volume-io"}, granted())["not needed"] == ["ec2:PauseVolumeIO"]
    assert gaps(used | {"aws:eks:pod-delete"}, granted())["unknown actions"] == ["aws:eks:pod-delete"]


def test_the_policy_acts_only_on_the_accounts_resources_and_on_network_acls_fis_tagged() -> None:
    for statement in policy("fis-experiment-role-policy.json")["Statement"]:
        actions = statement["Action"]
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        mutating = [a for a in actions if not a.split(":")[1].startswith(("Describe", "Get"))]
        if not mutating:
            assert statement["Condition"]["StringEquals"]["aws:RequestedRegion"] == "us-east-2"
            continue
        assert all(r.startswith(("arn:aws:ec2:us-east-2:111122223333:", "arn:aws:kms:us-east-2:111122223333:"))
                   for r in resources), statement
        if {"ec2:CreateNetworkAclEntry", "ec2:DeleteNetworkAcl"} & set(actions):
            assert statement["Condition"]["StringEquals"]["ec2:ResourceTag/managedByFIS"] == "true"
        if "ec2:CreateTags" in actions:
            assert statement["Condition"]["StringEquals"]["ec2:CreateAction"] == "CreateNetworkAcl"


def test_only_fis_experiments_of_the_account_may_assume_the_role() -> None:
    (statement,) = policy("fis-experiment-role-trust.json")["Statement"]
    assert statement["Principal"] == {"Service": "fis.amazonaws.com"} and statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "111122223333"
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"].startswith("arn:aws:fis:us-east-2:111122223333:")


def test_the_cronjob_names_the_role_the_harness_may_pass() -> None:
    from harness.target.model import load_targets_text
    _job, config = list(yaml.safe_load_all((DEPLOY / "cronjob.yaml").read_text()))
    targets = load_targets_text(config["data"]["targets.yaml"], "cronjob targets.yaml")
    assert {t.aws.fis_role_arn for t in targets.values()} == {ROLE_ARN}
    pass_role = [s for s in json.loads((DEPLOY / "iam-policy.json").read_text())["Statement"]
                 if "iam:PassRole" in s["Action"]]
    assert [s["Resource"] for s in pass_role] == [ROLE_ARN]
