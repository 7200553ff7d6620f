"""Targets: endpoints and credential sources of a deployment, its clients, and the guardrails around it.

`resolve_target("twin")` reads the running twin's endpoints file; any other name comes from targets.yaml.
kubernetes and boto3 are imported only when a client is first built.
"""
from harness.redact import redact
from harness.target.guardrails import (GuardrailError, check_allowlist, check_blast_radius, check_scenario_scope,
                                       require_confirmation)
from harness.target.model import TargetSpec, load_targets
from harness.target.target import Target, resolve_target

__all__ = ["GuardrailError", "Target", "TargetSpec", "check_allowlist", "check_blast_radius", "check_scenario_scope",
           "load_targets", "redact", "require_confirmation", "resolve_target"]
