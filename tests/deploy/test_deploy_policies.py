"""deploy/: the ClusterRole and IAM policy say exactly what the code calls, and the CronJob runs a guarded game day.

Static side, both directions: the kubernetes client methods and boto3 operations named in harness/ (outside
the twin) are derived into (resource, verb) pairs and IAM actions, and must equal the policies' entries, so
a new API call without a policy line fails here, and so does a policy line nothing uses. The dynamic side
(every call a run actually made is allowed) is in tests/target/test_guarded_twin.py, from the twin's audit log.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
REGION_KEY = "aws:RequestedRegion"
_KUBE_METHOD = re.compile(r"\.((?:list|read|create|delete|patch|replace|connect_get|connect_post)_\w+)\b")
_PLURAL = {"node": "nodes", "pod": "pods", "event": "events", "namespace": "namespaces",
           "config_map": "configmaps", "service": "services", "pod_eviction": "pods/eviction"}


def harness_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in (ROOT / "harness").rglob("*.py") if "twin" not in path.parts}


def kube_uses(sources: dict[Path, str]) -> set[tuple[str, str]]:
    """(resource[/subresource], verb) for every kubernetes client method the harness names."""
    uses: set[tuple[str, str]] = set()
    for text in sources.values():
        watches = "watch.Watch" in text or "Watch()" in text
        for method in set(_KUBE_METHOD.findall(text)):
            if method.startswith(("connect_get_namespaced_pod_", "connect_post_namespaced_pod_")):
                sub = method.split("_namespaced_pod_", 1)[1].removesuffix("_with_path")
                verbs = {"get", "create"} if sub in ("exec", "attach", "portforward") else \
                    {"get" if method.startswith("connect_get") else "create"}
                uses |= {(f"pods/{sub}", verb) for verb in verbs}
                continue
            verb, _, rest = method.partition("_")
            kind = rest.removeprefix("namespaced_").removesuffix("_for_all_namespaces")
            if kind not in _PLURAL:
                continue      # not a Kubernetes API method (read_text, create_local_runner...)
            uses.add((_PLURAL[kind], {"read": "get", "replace": "update"}.get(verb, verb)))
            if verb == "list" and watches:
                uses.add((_PLURAL[kind], "watch"))
    return uses


def rbac_documents() -> list[dict]:
    return list(yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()))


def rbac_grants() -> set[tuple[str, str]]:
    role = next(d for d in rbac_documents() if d["kind"] == "ClusterRole")
    grants = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""], rule          # the harness speaks core/v1 only
        assert "*" not in rule["resources"] and "*" not in rule["verbs"], rule
        grants |= {(resource, verb) for resource in rule["resources"] for verb in rule["verbs"]}
    return grants


def aws_services_called(sources: dict[Path, str]) -> set[str]:
    services = set()
    for text in sources.values():
        constants = dict(re.findall(r"^([A-Z_]+)\s*=\s*\"([a-z0-9-]+)\"", text, re.MULTILINE))
        for arg in re.findall(r"\.aws\(\s*(\"[a-z0-9-]+\"|[A-Z_]+)\s*\)", text):
            services.add(arg.strip('"') if arg.startswith('"') else constants.get(arg, arg))
    return services


def aws_actions_called(sources: dict[Path, str]) -> tuple[set[str], set[str]]:
    """IAM actions of the boto3 operations the harness names, plus those its arguments imply."""
    import botocore.session
    from botocore import xform_name
    session = botocore.session.get_session()
    text = "\n".join(sources.values())
    named = set(re.findall(r"\.([a-z_0-9]+)\(", text)) | set(re.findall(r"get_paginator\(\"([a-z_0-9]+)\"\)", text))
    actions: set[str] = set()
    for service in aws_services_called(sources):
        model = session.get_service_model(service)
        prefix = {"monitoring": "cloudwatch"}.get(model.signing_name, model.signing_name)
        actions |= {f"{prefix}:{op}" for op in model.operation_names if xform_name(op) in named}
    implied = set()
    if re.search(r"create_experiment_template\(.{0,800}?\broleArn=", text, re.DOTALL):
        implied.add("iam:PassRole")           # FIS assumes the role it is handed: passing it needs PassRole
    if re.search(r"(create_experiment_template|start_experiment)\(.{0,800}?\btags=", text, re.DOTALL):
        implied.add("fis:TagResource")        # tagging on create is authorised as TagResource
    return actions, implied


def iam_statements() -> list[dict]:
    return json.loads((DEPLOY / "iam-policy.json").read_text())["Statement"]


def test_cluster_role_grants_exactly_what_the_code_calls() -> None:
    uses, grants = kube_uses(harness_sources()), rbac_grants()
    assert uses, "no kubernetes client call found: the scan is broken"
    assert grants - uses == set(), f"granted but never called: {sorted(grants - uses)}"
    assert uses - grants == set(), f"called but not granted: {sorted(uses - grants)}"


def test_cluster_role_is_bound_to_the_cronjob_service_account() -> None:
    docs = {d["kind"]: d for d in rbac_documents()}
    account, binding = docs["ServiceAccount"]["metadata"], docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]
    job = next(d for d in yaml.safe_load_all((DEPLOY / "cronjob.yaml").read_text()) if d["kind"] == "CronJob")
    assert job["metadata"]["namespace"] == account["namespace"]
    assert job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]


def test_iam_policy_allows_exactly_what_the_code_calls() -> None:
    called, implied = aws_actions_called(harness_sources())
    assert {"fis:StartExperiment", "sts:GetCallerIdentity"} <= called, called
    allowed = {action for s in iam_statements() if s["Effect"] == "Allow" for action in s["Action"]}
    assert all("*" not in action for action in allowed), allowed
    assert allowed - (called | implied) == set(), f"allowed but never called: {sorted(allowed - called - implied)}"
    assert (called | implied) - allowed == set(), f"called but not allowed: {sorted(called | implied - allowed)}"


def test_every_iam_statement_is_region_bound_and_pass_role_only_to_fis() -> None:
    for statement in iam_statements():
        regions = statement["Condition"]["StringEquals"][REGION_KEY]
        assert regions, statement
        iam_only = all(action.startswith("iam:") and action != "iam:PassRole" for action in statement["Action"])
        assert regions == (["us-east-1"] if iam_only else ["us-east-2"]), statement   # IAM answers from us-east-1
        if "iam:PassRole" in statement["Action"]:
            assert statement["Action"] == ["iam:PassRole"]
            assert statement["Resource"].startswith("arn:aws:iam::") and ":role/" in statement["Resource"]
            assert statement["Condition"]["StringEquals"]["iam:PassedToService"] == "fis.amazonaws.com"


def test_cronjob_runs_recover_then_a_guarded_game_day_on_a_non_production_target() -> None:
    from harness.cli import build_parser
    from harness.target.model import load_targets_text
    job, config = list(yaml.safe_load_all((DEPLOY / "cronjob.yaml").read_text()))
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["jobTemplate"]["spec"]["backoffLimit"] == 0
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] >= 60
    targets = load_targets_text(config["data"]["targets.yaml"], "cronjob targets.yaml")
    assert all(t.environment != "production" for t in targets.values())   # no terminal: production is refused
    script = pod["containers"][0]["args"][0]
    commands = [shlex.split(part.replace("exec ", "")) for part in script.split("&&")]
    assert [c[:2] for c in commands] == [["g7chaos", "recover"], ["g7chaos", "gameday"]]
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(command[1:])          # every flag exists
        if command[1] == "gameday":
            assert args.target in targets
    kubeconfig = yaml.safe_load(config["data"]["kubeconfig"])
    users = [entry["user"] for entry in kubeconfig["users"]]
    assert all(set(user) == {"tokenFile"} for user in users), users   # a path to the token, never its value


@pytest.mark.parametrize("path", sorted(DEPLOY.iterdir()), ids=lambda p: p.name)
def test_deploy_files_parse(path: Path) -> None:
    if path.suffix == ".json":
        json.loads(path.read_text())
    else:
        assert all(doc for doc in yaml.safe_load_all(path.read_text()))
