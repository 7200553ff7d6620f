"""The twin's EKS API returns each nodegroup's nodeRepairConfig as the deployment set it, for auto repair and
`g7chaos audit` to read through `eks.describe_nodegroup`, and the API's minimum wait (1 minute) holds."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from harness.target.target import Target


def test_nodegroups_carry_the_article_repair_config(target: Target, twin) -> None:
    eks = target.aws("eks")
    group = next(g for g in twin.world.nodegroups.values() if g.role == "13b")
    config = eks.describe_nodegroup(clusterName=group.cluster, nodegroupName=group.name)["nodegroup"]["nodeRepairConfig"]
    assert config["enabled"] is True
    (override,) = config["nodeRepairConfigOverrides"]
    assert override == {"nodeMonitoringCondition": "AcceleratedHardwareReady", "nodeUnhealthyReason": "NvidiaDoubleBitError",
                        "minRepairWaitTimeMins": 1, "repairAction": "Replace"}
    with pytest.raises(ParamValidationError):         # minRepairWaitTimeMins has a minimum of 1
        eks.update_nodegroup_config(clusterName=group.cluster, nodegroupName=group.name, nodeRepairConfig={
            "enabled": True, "nodeRepairConfigOverrides": [{**override, "minRepairWaitTimeMins": 0}]})
    partial = {k: v for k, v in override.items() if k != "nodeUnhealthyReason"}
    with pytest.raises(ClientError) as refused:       # an override must specify all its values
        eks.update_nodegroup_config(clusterName=group.cluster, nodegroupName=group.name, nodeRepairConfig={
            "enabled": True, "nodeRepairConfigOverrides": [partial]})
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    again = eks.describe_nodegroup(clusterName=group.cluster, nodegroupName=group.name)["nodegroup"]
    assert again["nodeRepairConfig"] == config, "a refused update changes nothing"
