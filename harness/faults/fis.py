"""The AWS FIS plumbing every instance, network and volume fault shares: which role FIS assumes, how a template's
targets are built within FIS's limits, creating the template under a journal token, starting, watching and
stopping its experiments.

Why FIS and not the EC2 calls themselves: FIS is what a game day on AWS uses (IAM role, stop conditions, an
experiment record that says who did what), and an experiment can be stopped from a journal entry alone.
Targets are always explicit resource ARNs: the harness decided what to touch, FIS never widens it.

Limits the real API enforces at CreateExperimentTemplate (ValidationException), which the builders here keep:
a target lists at most 5 `resourceArns` (botocore's fis model, `ResourceArnList` `max: 5`), and an action's
`targets` maps each target key (`Instances`, `Subnets`, `Volumes`, ...) to ONE target name. A set of more than
five resources is therefore several targets of at most five ARNs, each with its own copy of the action (same
parameters, no `startAfter`, so they all start when the experiment does). Selecting by `resourceTags` and
`filters` instead would lift the limit, but it would let FIS choose, at experiment time, whatever matches the
tags then; explicit groups keep exactly the resources the plan named.

The journal-first rule: the revert is on record before FIS holds anything of ours. A run draws a token, owes
the revert under it, then creates the template tagged with it and starts the experiment; `g7chaos recover` finds
the template (and through it every experiment it started) by that tag, so a crash anywhere after the journal
write, even between the template's creation and the experiment's, leaves nothing it cannot find.
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import uuid
from typing import Any, Iterable

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.alarmwatch import MissingAlarms, alarm_names, resolve_alarms
from harness.faults.base import FaultError

TERMINAL = ("completed", "stopped", "failed", "cancelled")
STOP_WAIT_S = 120.0      # FIS rolls an action back before it calls the experiment stopped: seconds, at most minutes
TAG = "g7chaos"
TOKEN_TAG = "g7chaos:token"     # the tag a journal entry finds its template by


FIS_PRINCIPAL = "fis.amazonaws.com"


def _trusts_fis(document: Any) -> bool:
    """Whether an IAM trust policy (as IAM returns it: URL-encoded JSON, or already parsed) lets FIS assume it."""
    if isinstance(document, str):
        try:
            document = json.loads(urllib.parse.unquote(document))
        except ValueError:
            return False
    statements = (document or {}).get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        principal = (statement or {}).get("Principal") or {}
        services = principal.get("Service") if isinstance(principal, dict) else None
        services = [services] if isinstance(services, str) else services or []
        if statement.get("Effect", "Allow") == "Allow" and FIS_PRINCIPAL in services:
            return True
    return False


SERVICE_ROLE_PATH = "/aws-service-role/"     # service-linked roles: AWS's own, never an experiment role


def fis_role_arn(target: Any) -> str:
    """The role FIS assumes: the target's `aws.fis_role_arn`, as given. Without one, the one IAM role whose trust
    policy lets fis.amazonaws.com assume it, service-linked roles left out: every account that has used FIS holds
    `AWSServiceRoleForFIS` (path /aws-service-role/fis.amazonaws.com/), which trusts FIS too but is FIS's own
    role and cannot be handed to an experiment. None or several candidates is an error naming them: guessing
    would run the experiment with permissions nobody chose."""
    configured = getattr(target.spec.aws, "fis_role_arn", None)
    if configured:
        return configured
    try:
        trusting = [role for page in target.aws("iam").get_paginator("list_roles").paginate()
                    for role in page["Roles"] if _trusts_fis(role.get("AssumeRolePolicyDocument"))]
    except Exception as exc:
        raise FaultError(f"cannot list IAM roles to find the FIS role ({type(exc).__name__}: {exc}); set "
                         f"aws.fis_role_arn in the target") from exc
    candidates = [r for r in trusting if not str(r.get("Path") or "/").startswith(SERVICE_ROLE_PATH)]
    if len(candidates) != 1:
        names = ", ".join(sorted(r["RoleName"] for r in candidates)) or "none"
        skipped = sorted(r["RoleName"] for r in trusting if r not in candidates)
        raise FaultError(f"cannot tell which IAM role FIS should assume (roles trusting {FIS_PRINCIPAL}: {names}"
                         + (f"; service-linked, not usable: {', '.join(skipped)}" if skipped else "")
                         + "); set aws.fis_role_arn in the target")
    return candidates[0]["Arn"]


def fis_stop_conditions(ctx: Any) -> list[dict[str, str]]:
    """The FIS stop conditions of a run: one `aws:cloudwatch:alarm` per `alarm:` entry of the scenario's
    stop_when (value = the alarm's ARN), or `source: none` when it names no alarm (FIS wants one entry).

    FIS then stops the experiment on the alarm by itself, even if the harness that started it is gone."""
    names = alarm_names(getattr(ctx, "stop_when", None) or [])
    if not names:
        return [{"source": "none"}]
    known = getattr(ctx, "alarm_arns", None) or {}
    if any(name not in known for name in names):
        try:
            known = {**known, **resolve_alarms(ctx.target.aws("cloudwatch"), names)}
        except MissingAlarms as exc:
            raise FaultError(str(exc)) from exc
        ctx.alarm_arns = known
    return [{"source": "aws:cloudwatch:alarm", "value": known[name]} for name in names]


def stops_on(stop_conditions: list[dict[str, str]]) -> str:
    """How a plan line says which alarms stop the experiment (empty when none do)."""
    arns = [c["value"] for c in stop_conditions if c.get("source") == "aws:cloudwatch:alarm"]
    return f"; FIS stops it on alarm(s) {', '.join(a.rsplit(':', 1)[-1] for a in arns)}" if arns else ""


MAX_ARNS_PER_TARGET = 5     # botocore fis model: CreateExperimentTemplateTargetInput.resourceArns max 5


def explicit_targets(targets: dict[str, Any]) -> dict[str, Any]:
    """Every FIS target names its resources and how many of them: explicit `resourceArns` with
    `COUNT(<how many>)` (ALL, or no mode, becomes exactly that count), or a COUNT(n)/PERCENT(n) the caller
    chose. A target without resourceArns, or selecting ALL of whatever tags or filters match, is refused: the
    harness decided what to touch, and FIS must never widen it. So is a target of more than 5 ARNs, which FIS
    rejects: build such sets with `grouped_action`."""
    out: dict[str, Any] = {}
    for name, spec in targets.items():
        arns = list(spec.get("resourceArns") or [])
        if not arns:
            raise FaultError(f"FIS target {name!r} names no resourceArns: the harness only builds explicit targets")
        if len(arns) > MAX_ARNS_PER_TARGET:
            raise FaultError(f"FIS target {name!r} lists {len(arns)} resourceArns; FIS takes at most "
                             f"{MAX_ARNS_PER_TARGET} per target")
        mode = str(spec.get("selectionMode") or "ALL").strip().upper()
        if mode == "ALL":
            mode = f"COUNT({len(arns)})"
        elif not re.fullmatch(r"(COUNT|PERCENT)\(\d+\)", mode):
            raise FaultError(f"FIS target {name!r}: selectionMode {mode!r} is not COUNT(n) or PERCENT(n)")
        out[name] = {**spec, "resourceArns": arns, "selectionMode": mode}
    return out


def arn_groups(arns: Iterable[str], size: int = MAX_ARNS_PER_TARGET) -> list[list[str]]:
    """The ARNs in order, cut into groups of at most `size` (the last one may be shorter)."""
    arns = list(arns)
    return [arns[i:i + size] for i in range(0, len(arns), size)]


def grouped_action(targets: dict[str, Any], actions: dict[str, Any], *, target: str, action: str,
                   resource_type: str, arns: Iterable[str], action_id: str, target_key: str,
                   parameters: dict[str, str] | None = None) -> list[str]:
    """Add one action on `arns` to a template's `targets` and `actions`, within FIS's limits: a target per group
    of at most 5 ARNs (`COUNT(n)` of exactly them) and a copy of the action per target. The first group keeps
    the plain names (`target`, `action`), the next ones get `-2`, `-3`, ...; returns the action names.
    `arns` may be a list of groups already (e.g. volumes cut by Availability Zone first)."""
    arns = list(arns)
    groups = [g for chunk in arns for g in arn_groups(chunk)] if arns and isinstance(arns[0], list) \
        else arn_groups(arns)
    names = []
    for n, group in enumerate(groups, 1):
        suffix = "" if n == 1 else f"-{n}"
        targets[target + suffix] = {"resourceType": resource_type, "resourceArns": group,
                                    "selectionMode": f"COUNT({len(group)})"}
        actions[action + suffix] = {"actionId": action_id, "targets": {target_key: target + suffix},
                                    **({"parameters": dict(parameters)} if parameters else {})}
        names.append(action + suffix)
    return names


def targeted_arns(experiment_or_template: dict[str, Any], action_names: Iterable[str]) -> set[str]:
    """Every resource ARN the named actions of an experiment (or template) aim at, over all their targets."""
    targets = experiment_or_template.get("targets") or {}
    actions = experiment_or_template.get("actions") or {}
    out: set[str] = set()
    for name in action_names:
        for target_name in ((actions.get(name) or {}).get("targets") or {}).values():
            out.update((targets.get(target_name) or {}).get("resourceArns") or [])
    return out


def template_token() -> str:
    """A fresh token for one fault's FIS template: owed in the journal first, then tagged on the template."""
    return uuid.uuid4().hex


def create_template(target: Any, token: str, description: str, targets: dict[str, Any], actions: dict[str, Any],
                    stop_conditions: list[dict[str, str]] | None = None, tags: dict[str, str] | None = None,
                    role_arn: str | None = None) -> str:
    """Create the template tagged with `token`, which the caller owes in the journal beforehand."""
    fis = target.aws("fis")
    template = fis.create_experiment_template(
        clientToken=token, description=description[:512], roleArn=role_arn or fis_role_arn(target),
        stopConditions=stop_conditions or [{"source": "none"}], targets=explicit_targets(targets), actions=actions,
        tags={TAG: "fault", **(tags or {}), TOKEN_TAG: token})["experimentTemplate"]
    return template["id"]


def templates_tagged(target: Any, token: str) -> list[str]:
    """Ids of the templates carrying our token (normally one; none if the run died before creating it)."""
    pages = target.aws("fis").get_paginator("list_experiment_templates").paginate()
    return [t["id"] for page in pages for t in page.get("experimentTemplates", [])
            if (t.get("tags") or {}).get(TOKEN_TAG) == token]


def start_experiment(target: Any, template_id: str, *, token: str) -> str:
    """Start the template's experiment, tagged with the template's token: IAM lets the harness start, read and
    stop only experiments carrying `g7chaos:token` (deploy/iam-policy.json), so an untagged one could be
    neither started nor stopped."""
    fis = target.aws("fis")
    try:
        return fis.start_experiment(clientToken=f"g7chaos-{time.time_ns()}", experimentTemplateId=template_id,
                                    tags={TAG: "fault", TOKEN_TAG: token})["experiment"]["id"]
    except Exception as exc:
        raise FaultError(f"FIS start_experiment({template_id}) failed: {type(exc).__name__}: {exc}") from exc


def experiment_state(target: Any, experiment_id: str) -> dict[str, Any]:
    return target.aws("fis").get_experiment(id=experiment_id)["experiment"]["state"]


def stop_fis_owed(target: Any, args: dict[str, Any]) -> list[str]:
    """The FIS part of a journal entry: every template its token tags (or the id an older entry names), each
    of their unfinished experiments (and one the entry names) stopped and waited out, then the templates
    deleted. Idempotent: finished experiments and missing templates are left as they are."""
    fis = target.aws("fis")
    template_ids = set(templates_tagged(target, args["template_token"])) if args.get("template_token") else set()
    if args.get("template_id"):
        template_ids.add(args["template_id"])
    experiment_ids: set[str] = {args["experiment_id"]} if args.get("experiment_id") else set()
    for template_id in template_ids:
        pages = fis.get_paginator("list_experiments").paginate(experimentTemplateId=template_id)
        experiment_ids.update(e["id"] for page in pages for e in page.get("experiments", []))
    stopped = []
    for eid in sorted(experiment_ids):
        try:
            if fis.get_experiment(id=eid)["experiment"]["state"]["status"] in TERMINAL:
                continue
            fis.stop_experiment(id=eid)
            stopped.append(eid)
        except Exception as exc:
            if not _gone(exc):
                raise
    for eid in stopped:
        await_experiment_ended(target, eid)
    for template_id in sorted(template_ids):
        try:
            fis.delete_experiment_template(id=template_id)
        except Exception as exc:
            if not _gone(exc):
                raise
    return stopped


def await_experiment_ended(target: Any, experiment_id: str, within_s: float = STOP_WAIT_S) -> None:
    """Until FIS says the experiment ended: `stop_experiment` answers 'stopping' while the action is still being
    rolled back (a zone's network still cut), so a revert that returned then would leave the fault in place."""
    fis = target.aws("fis")

    def status() -> str:
        try:
            return fis.get_experiment(id=experiment_id)["experiment"]["state"]["status"]
        except Exception as exc:
            if _gone(exc):
                return "stopped"
            raise

    try:
        Retrying(stop=stop_after_delay(within_s), wait=wait_fixed(0.2), reraise=True,
                 retry=retry_if_result(lambda s: s not in TERMINAL))(status)
    except Exception as exc:
        raise FaultError(f"FIS experiment {experiment_id} did not end within {within_s:g} s of its stop "
                         f"(last state: {exc})") from exc


def _gone(exc: Exception) -> bool:
    """The experiment or template no longer exists (already stopped and cleaned up): nothing left to undo."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""
    return code in ("ResourceNotFoundException", "NotFoundException") or "not found" in str(exc).lower()


def instance_arn(target: Any, instance_id: str) -> str:
    account = target.spec.aws.account_id or target.caller_account()
    return f"arn:aws:ec2:{target.region}:{account}:instance/{instance_id}"


def await_experiment_started(target: Any, experiment_id: str, deadline: float) -> dict[str, Any]:
    """FIS resolves targets and starts actions asynchronously; a failed experiment is an injection error."""
    stop = threading.Event()
    while True:
        state = experiment_state(target, experiment_id)
        if state.get("status") in ("running", "completed"):
            return state
        if state.get("status") in ("failed", "stopped"):
            raise FaultError(f"FIS experiment {experiment_id} {state.get('status')}: {state.get('reason')}")
        if time.time() >= deadline:
            raise FaultError(f"FIS experiment {experiment_id} still {state.get('status')} after the deadline")
        stop.wait(0.1)


