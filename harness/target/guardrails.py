"""Guardrails that run before anything is injected: allowlists, production confirmation, blast radius.

A chaos tool earns the right to touch staging or production by refusing loudly, before the first
mutation, whenever a run would reach beyond what it was told it may touch. Every refusal is a
`GuardrailError`: invalid input, exit 2, with the setting to change in the message.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from harness.errors import TargetError, UsageError
from harness.strict.params import BlastRadius
from harness.target.model import TargetSpec


class GuardrailError(UsageError):
    """A run was refused before it touched anything (exit 2)."""


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


def require_confirmation(target: Any, confirm: str | None, is_tty: bool,
                         ask: Callable[[str], str] | None = None) -> None:
    """A production target runs only when a person at a terminal typed `--confirm <one of its contexts>`.

    Without a terminal (CI, cron) a production run is always refused, even with --confirm: a pipeline that
    can confirm on its own is not a person deciding to touch production. With `ask` (the CLI passes
    `input`), the person must also type the context name again at the prompt: a flag can sit in shell
    history or a copied command line, an answer cannot.
    """
    spec = _spec(target)
    if spec.environment != "production":
        return
    if not is_tty:
        raise GuardrailError(f"target {spec.name!r} is production: refusing to run without a terminal, "
                             f"where no one can confirm (a production run needs --confirm <context> and the "
                             f"context typed again at the prompt)")
    if confirm is None:
        raise GuardrailError(f"target {spec.name!r} is production: run again with --confirm <context> "
                             f"naming one of its contexts ({', '.join(spec.contexts)})")
    if confirm not in spec.contexts:
        raise GuardrailError(f"--confirm {confirm!r} does not name a context of production target {spec.name!r} "
                             f"({', '.join(spec.contexts)})")
    if ask is None:
        return
    try:
        answer = ask(f"target {spec.name!r} is PRODUCTION ({', '.join(spec.contexts)}). "
                     f"Type {confirm!r} to inject faults: ")
    except EOFError:
        answer = ""
    if answer.strip() != confirm:
        raise GuardrailError(f"production target {spec.name!r}: the answer did not repeat {confirm!r}; "
                             f"nothing was touched")


class TargetUnreachableError(TargetError):
    """The target's API did not answer a read-only pre-flight call (exit 4, not bad input)."""


def kubeconfig_contexts(target: Any) -> list[str]:
    """Context names the target's kubeconfig defines (a local read; nothing is called)."""
    spec = _spec(target)
    path = spec.kubeconfig_path()
    if not path.is_file():
        raise GuardrailError(f"target {spec.name!r}: kubeconfig {path} does not exist")
    from kubernetes.config import ConfigException, list_kube_config_contexts
    try:
        contexts, _ = list_kube_config_contexts(config_file=str(path))
    except (ConfigException, OSError, ValueError, TypeError, AttributeError) as exc:
        raise GuardrailError(f"target {spec.name!r}: kubeconfig {path} cannot be read: {exc}") from exc
    return [str(c.get("name")) for c in contexts or [] if isinstance(c, dict)]


def caller_account(target: Any) -> str:
    """The AWS account the target's credentials belong to, from STS GetCallerIdentity (read-only).

    Credentials that AWS rejects are the user's to fix (exit 2); an endpoint that does not answer is an
    unreachable target (exit 4).
    """
    from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError,
                                     NoRegionError, PartialCredentialsError)
    try:
        return str(target.aws("sts").get_caller_identity()["Account"])
    except (NoCredentialsError, PartialCredentialsError, NoRegionError) as exc:
        raise GuardrailError(f"target {_spec(target).name!r}: no usable AWS credentials: {exc}") from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise GuardrailError(f"target {_spec(target).name!r}: AWS refused the credentials ({code}): "
                             f"check aws.credentials") from exc
    except (EndpointConnectionError, BotoCoreError) as exc:
        raise TargetUnreachableError(f"target {_spec(target).name!r}: STS did not answer: {exc}") from exc


def preflight(target: Any, scenarios: Iterable[Any], *, confirm: str | None = None, is_tty: bool = False,
              ask: Callable[[str], str] | None = None, dry_run: bool = False) -> str:
    """Every guardrail, before a run, game day, matrix cell or dry run touches anything. Returns the account.

    Order: the production confirmation flag and terminal first (local, no call made), then the scenarios'
    scope, the kubeconfig's contexts, the AWS account (STS GetCallerIdentity) and region against the
    allowlist, and last the typed answer, so the person confirms knowing the account was verified.
    A dry run changes nothing by construction (no fault's inject is ever called), so it needs no production
    confirmation and can run in CI to show a plan for review; every allowlist check still applies, because
    even a plan reads the cluster and the account.
    """
    spec = _spec(target)
    confirming = spec.environment == "production" and not dry_run
    if confirming:
        require_confirmation(spec, confirm, is_tty)
    for scenario in scenarios:
        check_scenario_scope(spec, scenario)
    defined = kubeconfig_contexts(spec)
    missing = [c for c in spec.contexts if c not in defined]
    if missing:
        raise GuardrailError(f"refused before touching anything: kube context(s) {', '.join(missing)} of target "
                             f"{spec.name!r} are not in kubeconfig {spec.kubeconfig_path()}")
    account = caller_account(target)
    check_allowlist(spec, contexts=spec.contexts, aws_account=account, region=spec.aws.region)
    if confirming:
        require_confirmation(spec, confirm, is_tty, ask)
    return account


def check_blast_radius(target: Any, scenario_caps: BlastRadius | None, *, nodes: int, gpus: int,
                       fleet_nodes: int) -> None:
    """Refuse a fault that would touch more than the tighter of the scenario's and the target's caps."""
    caps = _spec(target).caps.tighter(scenario_caps)
    problems = caps.violations(nodes=nodes, gpus=gpus, fleet_nodes=fleet_nodes)
    if problems:
        raise GuardrailError("blast radius exceeded: " + "; ".join(problems))


GPU_RESOURCE = "nvidia.com/gpu"


def planned_reach(target: Any, faults: Iterable[Any]) -> tuple[int, int, int, list[str]]:
    """What planned faults touch together: (nodes, GPUs, nodes in the fleet, one line per fault).

    Nodes are counted once however many faults hit them. A fault that names GPUs (ECC, thermal) touches
    those; one that names none (reboot, spot, zone loss) touches the whole node, i.e. every GPU the node
    advertises as `nvidia.com/gpu` capacity. The fleet is every node of the target's contexts. Read-only:
    one node list per context."""
    from kubernetes import client
    capacity: dict[tuple[str, str], int] = {}
    for context in _spec(target).contexts:
        for node in client.CoreV1Api(target.kube(context)).list_node().items:
            gpus = (node.status.capacity or {}).get(GPU_RESOURCE) if node.status else None
            capacity[(context, node.metadata.name)] = int(gpus or 0)
    touched: dict[tuple[str, str], set[int] | None] = {}    # None = the whole node
    lines: list[str] = []
    for fault in faults:
        refs = list(getattr(fault, "nodes", []) or [])
        for ref in refs:
            key = (ref.context, ref.name)
            whole = not ref.gpus
            if whole or touched.get(key, set()) is None:
                touched[key] = None
            else:
                touched[key] = set(touched.get(key) or set()) | set(ref.gpus)
        lines.append(f"{getattr(fault, 'name', type(fault).__name__)}: {len(refs)} node(s) "
                     f"({', '.join(r.name for r in refs[:5])}{', ...' if len(refs) > 5 else ''})")
    gpus = sum(capacity.get(key, 0) if which is None else len(which) for key, which in touched.items())
    return len(touched), gpus, len(capacity), lines


def check_planned_blast_radius(target: Any, scenario_caps: BlastRadius | None, faults: Iterable[Any],
                               reach: tuple[int, int, int, list[str]] | None = None) -> None:
    """Refuse a scenario whose planned faults, together, reach past the caps (before anything is injected).
    `reach` is `planned_reach(target, faults)` when the caller has it already (one node list per context)."""
    nodes, gpus, fleet, lines = reach if reach is not None else planned_reach(target, list(faults))
    try:
        check_blast_radius(target, scenario_caps, nodes=nodes, gpus=gpus, fleet_nodes=fleet)
    except GuardrailError as exc:
        raise GuardrailError(f"refused before touching anything: {exc} (scenario blast_radius and target "
                             f"{_spec(target).name!r} caps; planned: {'; '.join(lines)})") from None


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
