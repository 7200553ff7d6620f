"""The audit's node-auto-repair rule on nodegroup configurations a real account may hold: the default 10-minute
wait does not fit the ECC scenario's limit, an override does, disabled repair and NoAction never repair."""
from __future__ import annotations

from types import SimpleNamespace

from harness.commands.audit import node_repair_finding, repair_wait_limit_s, repair_wait_s

OVERRIDE = {"nodeMonitoringCondition": "AcceleratedHardwareReady", "nodeUnhealthyReason": "NvidiaDoubleBitError",
            "minRepairWaitTimeMins": 1, "repairAction": "Replace"}


class FakeEks:
    """list_clusters / list_nodegroups paginators and describe_nodegroup, as boto3's eks client answers them."""

    def __init__(self, config):
        self.config = config

    def get_paginator(self, name):
        pages = {"list_clusters": [{"clusters": ["c1"]}], "list_nodegroups": [{"nodegroups": ["gpu"]}]}[name]
        return SimpleNamespace(paginate=lambda **_: pages)

    def describe_nodegroup(self, clusterName, nodegroupName):
        return {"nodegroup": {"nodegroupName": nodegroupName, **({"nodeRepairConfig": self.config} if self.config else {})}}


def _finding(config):
    node = SimpleNamespace(metadata=SimpleNamespace(labels={"eks.amazonaws.com/nodegroup": "gpu"}),
                           status=SimpleNamespace(capacity={"nvidia.com/gpu": "8"}))
    target = SimpleNamespace(aws=lambda service: FakeEks(config))
    return node_repair_finding(target, {"c1": [node]})


def test_the_limit_follows_the_ecc_scenario():
    assert repair_wait_limit_s() == 180 - 60 - 60          # node-drained 3m - detection 60 s - drain 60 s


def test_an_override_that_fits_passes_and_the_default_wait_fails():
    assert _finding({"enabled": True, "nodeRepairConfigOverrides": [OVERRIDE]}).passed
    default = _finding({"enabled": True})
    assert not default.passed and "after 600 s" in default.detail
    assert repair_wait_s({"enabled": True}) == 600.0


def test_disabled_absent_or_no_action_repair_fails():
    assert not _finding({"enabled": False}).passed
    assert not _finding(None).passed
    assert not _finding({"enabled": True, "nodeRepairConfigOverrides": [{**OVERRIDE, "repairAction": "NoAction"}]}).passed
