"""Hostile targets.yaml files: a target spec or a clean located error, nothing else."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.strict.problems import ScenarioError
from harness.target.model import load_targets_text

SEED = """\
targets:
  staging-use2:
    environment: staging
    kubeconfig: kube/config
    contexts: [stg-use2a, stg-use2b]
    aws: {region: us-east-2, account_id: "111122223333", credentials: {source: profile, profile: chaos}}
    inference_url: https://inference.staging.example.com
    allowlist: {contexts: [stg-use2a, stg-use2b], aws_accounts: ["111122223333"], regions: [us-east-2]}
    caps: {max_nodes: 1, max_gpus: 8, max_fleet_percent: 25%}
    alarms: {ecc_dbe: "{cluster}-gpu-ecc-dbe"}
"""
FRAGMENTS = ["&a ", "*a", "!!python/name:os.system ", "{", "}", "[", ": ", "- ", "'", "\t", "production", "{cluster",
             "twin", "\x07", "111122223333", "name: x\n    ", "<<: *a\n"]


@st.composite
def mutated(draw) -> str:
    text = SEED
    for _ in range(draw(st.integers(1, 5))):
        position = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:position] + draw(st.sampled_from(FRAGMENTS) | st.text(max_size=6)) + text[position:]
        else:
            text = text[:position] + text[position + draw(st.integers(1, 12)):]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(mutated())
def test_mutated_targets_files_load_or_fail_cleanly(text):
    try:
        specs = load_targets_text(text, "targets.yaml")
    except ScenarioError as exc:
        assert exc.problems and all(p.line >= 1 and p.column >= 1 for p in exc.problems)
        return
    assert all(spec.name == name for name, spec in specs.items())
