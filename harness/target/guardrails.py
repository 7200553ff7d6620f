"""Guardrails that run before anything is injected: allowlists, production confirmation, blast radius.

A chaos tool earns the right to touch staging or production by refusing loudly, before the first
mutation, whenever a run would reach beyond what it was told it may touch. Every refusal is a
`GuardrailError`: invalid input, exit 2, with the setting to change in the message.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.cli import UsageError
from harness.scenario.model import BlastRadius
from harness.target.model import TargetSpec


class GuardrailError(UsageError):
    """A run was refused before it touched anything (exit 2)."""

    exit_code = 2


def _spec(target: Any) -> TargetSpec:
    return target if isinstance(target, TargetSpec) else target.spec


def check_allowlist(target: Any, *, contexts: Iterable[str] | None = None, aws_account: str | None = None,
                    region: str | None = None) -> None:
    """Refuse contexts, an account or a region the target does not allow.

    `contexts` are those a run is about to use (default: the target's); `aws_account` is what STS says the
    credentials belong to and `region` the one the clients will call. Empty allowlist entries mean the
    target's own contexts and region; an account is then only checked against `aws.account_id`.
    """
    spec = _spec(target)
    problems: list[str] = []
    allowed_contexts = spec.allowlist.contexts or spec.contexts
    for context in (spec.contexts if contexts is None else list(contexts)):
        if context not in allowed_contexts:
            problems.append(f"kube context {context!r} is not allowlisted for target {spec.name!r} "
                            f"(allowlist.contexts: {', '.join(allowed_contexts)})")
    allowed_regions = spec.allowlist.regions or [spec.aws.region]
    if region is not None and region not in allowed_regions:
        problems.append(f"AWS region {region!r} is not allowlisted for target {spec.name!r} "
                        f"(allowlist.regions: {', '.join(allowed_regions)})")
    if aws_account is not None:
        allowed_accounts = spec.allowlist.aws_accounts or ([spec.aws.account_id] if spec.aws.account_id else [])
        if allowed_accounts and aws_account not in allowed_accounts:
            problems.append(f"AWS account {aws_account} is not allowlisted for target {spec.name!r} "
                            f"(allowlist.aws_accounts: {', '.join(allowed_accounts)})")
        if not allowed_accounts and spec.environment != "dev":
            problems.append(f"target {spec.name!r} is {spec.environment} but names no AWS account: set "
                            f"allowlist.aws_accounts")
    if problems:
        raise GuardrailError("refused before touching anything: " + "; ".join(problems))


def require_confirmation(target: Any, confirm: str | None, is_tty: bool) -> None:
    """A production target runs only when a person at a terminal typed `--confirm <one of its contexts>`.

    Without a terminal (CI, cron) a production run is always refused, even with --confirm: a pipeline that
    can confirm on its own is not a person deciding to touch production.
    """
    spec = _spec(target)
    if spec.environment != "production":
        return
    if not is_tty:
        raise GuardrailError(f"target {spec.name!r} is production: refusing to run without a terminal, "
                             f"where no one can confirm")
    if confirm is None:
        raise GuardrailError(f"target {spec.name!r} is production: run again with --confirm <context> "
                             f"naming one of its contexts ({', '.join(spec.contexts)})")
    if confirm not in spec.contexts:
        raise GuardrailError(f"--confirm {confirm!r} does not name a context of production target {spec.name!r} "
                             f"({', '.join(spec.contexts)})")


def check_blast_radius(target: Any, scenario_caps: BlastRadius | None, *, nodes: int, gpus: int,
                       fleet_nodes: int) -> None:
    """Refuse a fault that would touch more than the tighter of the scenario's and the target's caps."""
    caps = _spec(target).caps.tighter(scenario_caps)
    problems = caps.violations(nodes=nodes, gpus=gpus, fleet_nodes=fleet_nodes)
    if problems:
        raise GuardrailError("blast radius exceeded: " + "; ".join(problems))


def check_scenario_scope(target: Any, scenario: Any) -> None:
    """Refuse a scenario that names clusters or zones outside the target, before anything is resolved.

    Node selectors may name a `cluster` (a kube context) and faults a `zone`; both must belong to the target
    (its allowlisted contexts, zones of its region), so a scenario written for one deployment cannot reach
    into another when pointed at the wrong target.
    """
    spec = _spec(target)
    problems: list[str] = []
    allowed_contexts = spec.allowlist.contexts or spec.contexts
    regions = spec.allowlist.regions or [spec.aws.region]
    for index, step in enumerate(scenario.faults):
        params = step.params
        node = getattr(params, "node", None)
        cluster = getattr(node, "cluster", None)
        if cluster is not None and (cluster not in spec.contexts or cluster not in allowed_contexts):
            problems.append(f"faults[{index}] ({step.fault}) names cluster {cluster!r}, not a context of target "
                            f"{spec.name!r} ({', '.join(spec.contexts)})")
        for zone in (getattr(node, "zone", None), getattr(params, "zone", None)):
            if zone is not None and not any(zone.startswith(region) and len(zone) > len(region) for region in regions):
                problems.append(f"faults[{index}] ({step.fault}) names zone {zone!r}, outside target {spec.name!r}'s "
                                f"region(s) {', '.join(regions)}")
    if problems:
        raise GuardrailError("refused before touching anything: " + "; ".join(problems))
