"""EC2 placement groups, which moto 5.2 does not implement at all (create_placement_group 500s), and the
describe_instances filters a spot-aware tool uses that moto lacks (`instance-lifecycle` 500s).

The tensor-parallel pair must sit in a `cluster` placement group, and an audit of the deployment asks EC2
for its placement groups and for each instance's Placement.GroupName. The twin adds the two calls that
needs (create/describe_placement_groups, plus delete) to moto's EC2 responder, keeping the records on the
region's EC2 backend, and stamps the group on instances launched into it.
"""
from __future__ import annotations

import uuid
from typing import Any

from harness.twin.aws import backends

STRATEGIES = ("cluster", "spread", "partition")


def _groups(ec2_backend: Any) -> dict[str, dict[str, Any]]:
    if not hasattr(ec2_backend, "twin_placement_groups"):
        ec2_backend.twin_placement_groups = {}
    return ec2_backend.twin_placement_groups


def install() -> None:
    from moto.ec2 import utils as ec2_utils

    ec2_utils.filter_dict_attribute_mapping.setdefault("instance-lifecycle", "lifecycle")
    ec2_utils.filter_dict_attribute_mapping.setdefault("placement-group-name", "placement.group_name")
    _install_responses()


def _install_responses() -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses import EC2Response

    if getattr(EC2Response, "describe_placement_groups", None) is not None:
        return

    def create_placement_group(self: Any) -> ActionResult:
        name = self._get_param("GroupName")
        strategy = self._get_param("Strategy") or "cluster"
        if strategy not in STRATEGIES:
            raise EC2ClientError("InvalidParameterValue", f"Invalid placement group strategy {strategy}")
        groups = _groups(self.ec2_backend)
        if name in groups:
            raise EC2ClientError("InvalidPlacementGroup.Duplicate", f"The Placement Group '{name}' already exists.")
        group_id = f"pg-{uuid.uuid4().hex[:17]}"
        groups[name] = {
            "GroupName": name, "State": "available", "Strategy": strategy, "GroupId": group_id,
            "GroupArn": f"arn:aws:ec2:{self.region}:{backends.ACCOUNT_ID}:placement-group/{name}",
            "Tags": [], **({"PartitionCount": int(self._get_param("PartitionCount") or 2)}
                           if strategy == "partition" else {}),
        }
        return ActionResult({"PlacementGroup": groups[name]})

    def describe_placement_groups(self: Any) -> ActionResult:
        names = self._get_param("GroupNames", []) or []
        groups = _groups(self.ec2_backend)
        missing = [n for n in names if n not in groups]
        if missing:
            raise EC2ClientError("InvalidPlacementGroup.Unknown", f"The Placement Group '{missing[0]}' is unknown.")
        return ActionResult({"PlacementGroups": [g for n, g in groups.items() if not names or n in names]})

    def delete_placement_group(self: Any) -> ActionResult:
        name = self._get_param("GroupName")
        if _groups(self.ec2_backend).pop(name, None) is None:
            raise EC2ClientError("InvalidPlacementGroup.Unknown", f"The Placement Group '{name}' is unknown.")
        return EmptyResult()

    EC2Response.create_placement_group = create_placement_group  # type: ignore[attr-defined]
    EC2Response.describe_placement_groups = describe_placement_groups  # type: ignore[attr-defined]
    EC2Response.delete_placement_group = delete_placement_group  # type: ignore[attr-defined]


def stamp(region: str, instance_id: str, group_name: str) -> None:
    """Record the placement group on an instance (moto's run_instances drops Placement.GroupName)."""
    backends.backend("ec2", region).get_instance(instance_id).placement.group_name = group_name
