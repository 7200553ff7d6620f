"""targets.yaml: the same strict, located loading as scenarios, and guardrails that are consistent."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.strict.problems import ScenarioError
from harness.target.model import find_target_spec, load_targets, load_targets_text

STAGING = textwrap.dedent("""\
    targets:
      staging-use2:
        environment: staging
        kubeconfig: kube/config
        contexts: [stg-use2a, stg-use2b]
        aws: {region: us-east-2, credentials: {source: profile, profile: chaos-staging}}
        inference_url: https://inference.staging.example.com
        allowlist: {contexts: [stg-use2a, stg-use2b], aws_accounts: ["111122223333"], regions: [us-east-2]}
        caps: {max_nodes: 1, max_gpus: 8, max_fleet_percent: 25%}
    """)
PRODUCTION = textwrap.indent(textwrap.dedent("""\
      prod-use2:
        environment: production
        kubeconfig: /etc/kube/prod
        contexts: [prod-use2a]
        aws: {region: us-east-2, account_id: "444455556666"}
        inference_url: https://inference.example.com
        allowlist: {contexts: [prod-use2a], aws_accounts: ["444455556666"], regions: [us-east-2]}
        caps: {max_nodes: 1}
    """), "  ")


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_targets_text(text, "targets.yaml")
    return [str(p) for p in info.value.problems]


def test_targets_load_with_names_from_keys_and_paths_resolved(tmp_path):
    path = tmp_path / "targets.yaml"
    path.write_text(STAGING + PRODUCTION)
    specs = load_targets(path)
    staging = specs["staging-use2"]
    assert staging.name == "staging-use2" and staging.environment == "staging"
    assert staging.kubeconfig == str(tmp_path / "kube" / "config")
    assert staging.caps.max_fleet_percent == 0.25 and staging.time_scale == 1.0
    assert staging.selectors.dcgm.namespace == "kube-system" and staging.selectors.dcgm.label_selector == \
        "k8s-app=dcgm-server"
    assert staging.selectors.device_plugin.label_selector == "name=nvidia-device-plugin-ds"
    assert staging.alarms.for_metric("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "stg-use2a") == "stg-use2a-gpu-ecc-dbe"
    assert specs["prod-use2"].environment == "production"


def test_gpu_operator_preset_and_single_overrides():
    spec = load_targets_text(STAGING + "    selectors: {preset: gpu-operator, dcgm: {namespace: monitoring, "
                                       "label_selector: 'app=dcgm'}}\n")["staging-use2"]
    assert spec.selectors.dcgm.namespace == "monitoring"
    assert (spec.selectors.device_plugin.namespace, spec.selectors.dcgm_exporter.label_selector) == \
        ("gpu-operator", "app=nvidia-dcgm-exporter")


def test_misspelt_key_is_located_with_allowed_keys():
    assert problems(STAGING.replace("inference_url", "inferenceurl")) == [
        "targets.yaml:3:5: targets.staging-use2: missing required key 'inference_url'",
        "targets.yaml:7:5: unknown key 'inferenceurl' in staging-use2; allowed: name, description, environment, "
        "kubeconfig, contexts, aws, inference_url, served_by_headers, load_master, time_scale, allowlist, caps, selectors, "
        "alarms, load_balancer, harness_namespace, twin_flaky_api"]


@pytest.mark.parametrize("edit,expected", [
    (("environment: staging", "environment: prod"), "targets.yaml:3:18: targets.staging-use2.environment"),
    (("region: us-east-2,", "region: mars,"), "targets.yaml:6:19: targets.staging-use2.aws.region"),
    (('aws_accounts: ["111122223333"]', "aws_accounts: [111122223333]"), "is not a 12-digit AWS account id"),
    (("contexts: [stg-use2a, stg-use2b]\n", "contexts: [stg-use2a, other]\n"),
     "contexts other are not in allowlist.contexts"),
    (("source: profile, profile: chaos-staging", "source: profile"), "needs 'profile: <name>'"),
    (("{region: us-east-2,", "{region: us-east-2, account_id: 111122223333,"), "must be quoted in YAML"),
    (("https://inference.staging.example.com", "file:///etc/passwd"), "inference_url"),
])
def test_invalid_values_are_located(edit, expected):
    found = problems(STAGING.replace(*edit))
    assert any(expected in line for line in found), found


def test_alarm_name_templates_allow_only_the_cluster_placeholder():
    found = problems(STAGING + "    alarms: {ecc_dbe: '{cluster.__class__}'}\n")
    assert "the only placeholder allowed is {cluster}" in found[0]


def test_production_requires_allowlists_caps_and_real_time():
    base = "targets:\n" + PRODUCTION
    assert load_targets_text(base)["prod-use2"].caps.max_nodes == 1
    found = problems(base.replace("    caps: {max_nodes: 1}\n", "").replace(', aws_accounts: ["444455556666"]', ""))
    assert "a production target must set allowlist.aws_accounts, caps.max_nodes or caps.max_fleet_percent" in found[0]
    assert "time_scale must be 1" in problems(base + "    time_scale: 30\n")[0]
    assert "dummy credentials" in problems(base.replace('account_id: "444455556666"}',
                                                        'account_id: "444455556666", credentials: {source: twin}}'))[0]


def test_builtin_name_and_mismatched_names_are_refused():
    assert "'twin' is the built-in target" in problems(STAGING.replace("staging-use2:", "twin:"))[0]
    assert "differs from its key" in problems(STAGING + "    name: other\n")[0]


def test_find_target_spec_names_the_known_targets(tmp_path, monkeypatch):
    path = tmp_path / "targets.yaml"
    path.write_text(STAGING)
    assert find_target_spec("staging-use2", path).name == "staging-use2"
    with pytest.raises(ScenarioError, match="unknown target 'prod'; known: twin, staging-use2"):
        find_target_spec("prod", path)
    monkeypatch.setenv("G7CHAOS_TARGETS", str(path))
    assert find_target_spec("staging-use2").contexts == ["stg-use2a", "stg-use2b"]
    with pytest.raises(ScenarioError, match="does not exist"):
        find_target_spec("x", Path(tmp_path / "none.yaml"))
