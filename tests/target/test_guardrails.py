"""Guardrails refuse before anything is touched: production confirmation, allowlists, blast radius."""
from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.strict.params import BlastRadius
from harness.target.guardrails import GuardrailError, check_allowlist, check_blast_radius, require_confirmation
from harness.target.model import TargetSpec
from harness.target.target import Target


def spec(environment: str = "production", **overrides) -> TargetSpec:
    data = {
        "name": "prod-use2", "environment": environment, "kubeconfig": "/nonexistent/kubeconfig",
        "contexts": ["prod-use2a", "prod-use2b"], "inference_url": "https://inference.example.com",
        "aws": {"region": "us-east-2", "account_id": "444455556666"},
        "allowlist": {"contexts": ["prod-use2a", "prod-use2b"], "aws_accounts": ["444455556666"],
                      "regions": ["us-east-2"]},
        "caps": {"max_nodes": 1, "max_gpus": 8},
    }
    data.update(overrides)
    return TargetSpec.model_validate(data)


def test_production_without_confirm_is_refused_and_nothing_is_touched():
    target = Target(spec())
    with pytest.raises(GuardrailError, match="run again with --confirm <context>") as info:
        require_confirmation(target, None, is_tty=True)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    assert target._kube == {} and target._aws == {} and target._session is None   # no client was even built


def test_production_without_a_terminal_is_refused_even_with_confirm():
    with pytest.raises(GuardrailError, match="without a terminal"):
        require_confirmation(spec(), "prod-use2a", is_tty=False)


def test_production_confirm_must_name_one_of_its_contexts():
    with pytest.raises(GuardrailError, match="does not name a context"):
        require_confirmation(spec(), "staging-use2a", is_tty=True)
    require_confirmation(spec(), "prod-use2b", is_tty=True)


def test_non_production_needs_no_confirmation():
    require_confirmation(spec("staging"), None, is_tty=False)
    require_confirmation(spec("dev"), None, is_tty=False)


def test_allowlist_mismatches_are_refused_with_the_setting_to_change():
    check_allowlist(spec(), contexts=["prod-use2a"], aws_account="444455556666", region="us-east-2")
    with pytest.raises(GuardrailError) as info:
        check_allowlist(spec(), contexts=["prod-use1a"], aws_account="111122223333", region="eu-west-1")
    message = str(info.value)
    assert "kube context 'prod-use1a'" in message and "allowlist.contexts" in message
    assert "AWS account 111122223333" in message and "AWS region 'eu-west-1'" in message


def test_staging_without_an_account_allowlist_refuses_any_account():
    staging = spec("staging", allowlist={}, aws={"region": "us-east-2"})
    check_allowlist(staging, contexts=["prod-use2a"], region="us-east-2")
    with pytest.raises(GuardrailError, match="names no AWS account"):
        check_allowlist(staging, aws_account="111122223333")


def test_blast_radius_takes_the_tighter_caps():
    check_blast_radius(spec(), None, nodes=1, gpus=8, fleet_nodes=6)
    with pytest.raises(GuardrailError, match="2 nodes exceed max_nodes 1"):
        check_blast_radius(spec(), BlastRadius(max_nodes=4), nodes=2, gpus=8, fleet_nodes=6)
    with pytest.raises(GuardrailError, match="exceed max_fleet_percent 10%"):
        check_blast_radius(spec(), BlastRadius(max_fleet_percent=0.1), nodes=1, gpus=1, fleet_nodes=6)


def test_a_scenario_cannot_reach_outside_its_target():
    from harness.scenario.loader import load_scenario_text
    from harness.target.guardrails import check_scenario_scope
    text = """\
name: s
description: d
duration: 10m
faults:
  - at: 1m
    node-reboot: {node: {cluster: CLUSTER, zone: ZONE}}
  - at: 2m
    az-loss: {zone: AZ}
checks: [{fault-landed: {}}]
"""
    ok = load_scenario_text(text.replace("CLUSTER", "prod-use2a").replace("ZONE", "us-east-2a").replace("AZ", "us-east-2b"))
    check_scenario_scope(spec(), ok)
    bad = load_scenario_text(text.replace("CLUSTER", "g7-use2a").replace("ZONE", "us-west-2a").replace("AZ", "us-east-1a"))
    with pytest.raises(GuardrailError) as info:
        check_scenario_scope(spec(), bad)
    message = str(info.value)
    assert "cluster 'g7-use2a'" in message and "zone 'us-west-2a'" in message and "zone 'us-east-1a'" in message
