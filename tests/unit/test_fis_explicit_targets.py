"""FIS targets the harness builds always name their resources and how many: ALL of explicit ARNs becomes
COUNT(len), a chosen COUNT/PERCENT is kept, a target that would let FIS choose by tags alone is refused, and so
is one of more than 5 ARNs (FIS's limit): bigger sets become several targets, one action copy each. The FIS role
is the target's, or the one experiment role IAM shows, never FIS's own service-linked role."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.faults import FaultError
from harness.faults.fis import explicit_targets, fis_role_arn, grouped_action, targeted_arns

ARNS = [f"arn:aws:ec2:us-east-2:123456789012:instance/i-{n:017x}" for n in range(3)]


@pytest.mark.parametrize("mode, expected", [(None, "COUNT(3)"), ("ALL", "COUNT(3)"), ("all", "COUNT(3)"),
                                            ("COUNT(1)", "COUNT(1)"), ("PERCENT(50)", "PERCENT(50)")])
def test_selection_is_counted(mode: str | None, expected: str) -> None:
    spec = {"resourceType": "aws:ec2:instance", "resourceArns": ARNS, **({"selectionMode": mode} if mode else {})}
    out = explicit_targets({"nodes": spec})
    assert out["nodes"]["selectionMode"] == expected and out["nodes"]["resourceArns"] == ARNS


@pytest.mark.parametrize("spec", [
    {"resourceType": "aws:ec2:instance", "resourceTags": {"role": "gpu"}, "selectionMode": "ALL"},
    {"resourceType": "aws:ec2:instance", "resourceTags": {"role": "gpu"}, "selectionMode": "COUNT(1)"},
    {"resourceType": "aws:ec2:instance", "resourceArns": ARNS, "selectionMode": "SOME(2)"},
])
def test_targets_fis_would_widen_are_refused(spec: dict) -> None:
    with pytest.raises(FaultError):
        explicit_targets({"nodes": spec})


def test_more_than_five_arns_in_one_target_is_refused_before_fis_sees_it() -> None:
    six = [f"arn:aws:ec2:us-east-2:123456789012:subnet/subnet-{n:017x}" for n in range(6)]
    with pytest.raises(FaultError, match="at most 5"):
        explicit_targets({"subnets": {"resourceType": "aws:ec2:subnet", "resourceArns": six}})


def test_a_twelve_subnet_zone_becomes_three_targets_each_cut_by_its_own_action() -> None:
    subnets = [f"arn:aws:ec2:us-east-2:123456789012:subnet/subnet-{n:017x}" for n in range(12)]
    targets: dict = {}
    actions: dict = {}
    names = grouped_action(targets, actions, target="subnets", action="disrupt", resource_type="aws:ec2:subnet",
                           arns=subnets, action_id="aws:network:disrupt-connectivity", target_key="Subnets",
                           parameters={"duration": "PT10M", "scope": "all"})
    assert names == ["disrupt", "disrupt-2", "disrupt-3"]
    assert [len(t["resourceArns"]) for t in targets.values()] == [5, 5, 2]
    assert [a["targets"] for a in actions.values()] == [{"Subnets": "subnets"}, {"Subnets": "subnets-2"},
                                                        {"Subnets": "subnets-3"}]
    assert all(a["parameters"] == {"duration": "PT10M", "scope": "all"} and "startAfter" not in a
               for a in actions.values())                      # every group is cut at the same moment
    assert explicit_targets(targets) == targets                # every target within the limit, counted exactly
    assert targeted_arns({"targets": targets, "actions": actions}, names) == set(subnets)


def test_groups_given_by_zone_are_never_mixed() -> None:
    """EBS actions want one target's volumes in one zone: groups cut by zone stay apart, then go by fives."""
    zone_a = [f"arn:aws:ec2:us-east-2:123456789012:volume/vol-a{n:016x}" for n in range(7)]
    zone_b = [f"arn:aws:ec2:us-east-2:123456789012:volume/vol-b{n:016x}" for n in range(2)]
    targets: dict = {}
    grouped_action(targets, {}, target="volumes", action="stall", resource_type="aws:ec2:ebs-volume",
                   arns=[zone_a, zone_b], action_id="aws:ebs:pause-volume-io", target_key="Volumes",
                   parameters={"duration": "PT5M"})
    assert [t["resourceArns"] for t in targets.values()] == [zone_a[:5], zone_a[5:], zone_b]


# ------------------------------------------------------------------------------------------- the FIS role

SLR = {"RoleName": "AWSServiceRoleForFIS", "Path": "/aws-service-role/fis.amazonaws.com/",
       "Arn": "arn:aws:iam::123456789012:role/aws-service-role/fis.amazonaws.com/AWSServiceRoleForFIS",
       "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"Service": "fis.amazonaws.com"},
                                                   "Action": "sts:AssumeRole"}]}}


def _role(name: str, service: str = "fis.amazonaws.com") -> dict:
    return {"RoleName": name, "Path": "/", "Arn": f"arn:aws:iam::123456789012:role/{name}",
            "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                                                        "Action": "sts:AssumeRole"}]}}


class _Iam:
    def __init__(self, roles: list[dict]) -> None:
        self.roles = roles

    def get_paginator(self, name: str) -> "_Iam":
        assert name == "list_roles"
        return self

    def paginate(self):
        return iter([{"Roles": self.roles[:1]}, {"Roles": self.roles[1:]}])


class _Target:
    def __init__(self, roles: list[dict] | None, configured: str | None = None) -> None:
        self.spec = SimpleNamespace(aws=SimpleNamespace(fis_role_arn=configured))
        self.roles = roles

    def aws(self, service: str):
        assert service == "iam" and self.roles is not None, "IAM asked although the role was configured"
        return _Iam(self.roles)


def test_discovery_skips_the_service_linked_role() -> None:
    roles = [SLR, _role("g7chaos-fis"), _role("g7-eks-node", "ec2.amazonaws.com")]
    assert fis_role_arn(_Target(roles)) == "arn:aws:iam::123456789012:role/g7chaos-fis"


def test_discovery_with_only_the_service_linked_role_says_so() -> None:
    with pytest.raises(FaultError, match=r"none; service-linked, not usable: AWSServiceRoleForFIS.*fis_role_arn"):
        fis_role_arn(_Target([SLR, _role("g7-eks-node", "ec2.amazonaws.com")]))


def test_discovery_refuses_to_guess_between_two_experiment_roles() -> None:
    with pytest.raises(FaultError, match="chaos-fis, team-b-fis"):
        fis_role_arn(_Target([SLR, _role("chaos-fis"), _role("team-b-fis")]))


def test_a_configured_role_is_used_as_is_without_asking_iam() -> None:
    arn = "arn:aws:iam::111122223333:role/path/g7chaos-fis"
    assert fis_role_arn(_Target(None, configured=arn)) == arn
