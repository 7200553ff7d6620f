"""deploy/: RBAC and IAM say exactly what the code calls, each only where the code calls it, and the CronJob runs
a guarded game day away from the zone it cuts.

Static side, both directions: the kubernetes client methods and boto3 operations named in harness/ (outside
the twin) are derived into (group, resource, verb) triples and IAM actions, and must equal the policies'
entries, so a new API call without a policy line fails here, and so does a policy line nothing uses.
Scope side: the documents are evaluated the way the API server's RBAC authorizer and IAM evaluate them
(harness/twin/kube/rbac.py, harness/twin/aws/iam.py), and the old wide grants (exec and pod writes
cluster-wide, FIS stop/delete and zonal shifts on `*`) are shown to fail the same checks the shipped files
pass. The dynamic side (every call a run actually made is allowed, in the namespace it was made in) is
tests/target/test_guarded_twin.py, from the twin's audit log.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.twin.aws.iam import IamPolicy, condition_holds
from harness.twin.kube.rbac import NAMESPACE_FROM, RbacPolicy, retarget

from support.deploy import DEPLOY, ROOT, az_loss_zones, cronjob_documents, zones_excluded
REGION_KEY = "aws:RequestedRegion"
ACCOUNT, REGION = "111122223333", "us-east-2"
TOKEN_KEY = "g7chaos:token"
SUBJECT = ("g7chaos", "g7chaos")
_KUBE_METHOD = re.compile(r"\.((?:list|read|create|delete|patch|replace|connect_get|connect_post)_\w+)\b")
_PLURAL = {"node": "nodes", "pod": "pods", "event": "events", "namespace": "namespaces",
           "config_map": "configmaps", "service": "services", "pod_eviction": "pods/eviction",
           "pod_log": "pods/log"}
MUTATING_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
RUNS_SOMETHING = {"pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "nodes/proxy"}

# Granted for calls the code of this release makes through modules still being written (the freeze helper's
# log reads, the MPIJob launch, the nodegroup and load balancer preflights, FIS role validation). Each entry
# must leave this list the moment the code calls it: test_awaiting_entries_are_not_called_yet fails then.
AWAITING_KUBE: set[tuple[str, str, str]] = set()
LAUNCHER = "g7chaos-mpi-launcher"     # efa-saturation's launcher pod runs as this ServiceAccount
AWAITING_AWS = {"iam:GetRole"}

# The grants deploy/ shipped before it was scoped: what the scope checks below must refuse.
OLD_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: g7chaos}
rules:
  - {apiGroups: [""], resources: [nodes], verbs: [get, list, watch]}
  - {apiGroups: [""], resources: [pods], verbs: [get, list, watch, create, delete]}
  - {apiGroups: [""], resources: [pods/exec], verbs: [create, get]}
  - {apiGroups: [""], resources: [pods/proxy], verbs: [get]}
  - {apiGroups: [""], resources: [events], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: g7chaos}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: g7chaos}
subjects: [{kind: ServiceAccount, name: g7chaos, namespace: g7chaos}]
"""
OLD_IAM = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Resource": "*", "Condition": {"StringEquals": {REGION_KEY: [REGION]}},
     "Action": ["fis:CreateExperimentTemplate", "fis:DeleteExperimentTemplate", "fis:StartExperiment",
                "fis:StopExperiment", "fis:TagResource", "fis:GetExperiment"]},
    {"Effect": "Allow", "Resource": "*", "Condition": {"StringEquals": {REGION_KEY: [REGION]}},
     "Action": ["arc-zonal-shift:StartZonalShift", "arc-zonal-shift:CancelZonalShift"]},
    {"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": f"arn:aws:iam::{ACCOUNT}:role/g7chaos-fis",
     "Condition": {"StringEquals": {"iam:PassedToService": "fis.amazonaws.com", REGION_KEY: [REGION]}}}]})


def harness_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in (ROOT / "harness").rglob("*.py") if "twin" not in path.parts}


def kube_uses(sources: dict[Path, str]) -> set[tuple[str, str, str]]:
    """(API group, resource[/subresource], verb) for every kubernetes client method the harness names."""
    uses: set[tuple[str, str, str]] = set()
    for text in sources.values():
        watches = "watch.Watch" in text or "Watch()" in text
        for method in set(_KUBE_METHOD.findall(text)):
            if method.startswith(("connect_get_namespaced_pod_", "connect_post_namespaced_pod_")):
                sub = method.split("_namespaced_pod_", 1)[1].removesuffix("_with_path")
                # exec/attach/portforward over WebSocket: get, and create since Kubernetes 1.35 (RBAC-1)
                verbs = {"get", "create"} if sub in ("exec", "attach", "portforward") else \
                    {"get" if method.startswith("connect_get") else "create"}
                uses |= {("", f"pods/{sub}", verb) for verb in verbs}
                continue
            verb, _, rest = method.partition("_")
            kind = rest.removeprefix("namespaced_").removesuffix("_for_all_namespaces")
            verb = {"read": "get", "replace": "update"}.get(verb, verb)
            if kind == "custom_object":       # CustomObjectsApi: group and plural are string arguments
                groups = set(re.findall(r"\"([a-z0-9-]+(?:\.[a-z0-9-]+)+)\"", text)) - {"kubernetes.io"}
                plurals = set(re.findall(r"\"([a-z]+s)\"", text)) & {"mpijobs"}
                uses |= {(group, plural, verb) for group in groups if group.endswith(".org")
                         for plural in plurals}
                if verb == "list" and watches:
                    uses |= {(group, plural, "watch") for group in groups if group.endswith(".org")
                             for plural in plurals}
                continue
            if kind not in _PLURAL:
                continue      # not a Kubernetes API method (read_text, create_local_runner...)
            uses.add(("", _PLURAL[kind], verb))
            if verb == "list" and watches:
                uses.add(("", _PLURAL[kind], "watch"))
    return uses


def rbac_text() -> str:
    return (DEPLOY / "rbac.yaml").read_text()


def rbac_documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(rbac_text()) if d]


def rbac() -> RbacPolicy:
    return RbacPolicy.from_yaml(rbac_text(), SUBJECT)


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
        implied.add("iam:PassRole")           # FIS assumes the role it is handed: passing it needs PassRole (IAM-4)
    if re.search(r"(create_experiment_template|start_experiment)\(.{0,800}?\btags=", text, re.DOTALL):
        implied.add("fis:TagResource")        # tagging on create is authorised as TagResource (IAM-2)
    return actions, implied


def iam_text() -> str:
    return (DEPLOY / "iam-policy.json").read_text()


def iam_statements() -> list[dict]:
    return json.loads(iam_text())["Statement"]


def iam() -> IamPolicy:
    return IamPolicy.from_json(iam_text())


def fis_arn(kind: str, ident: str = "EXT1a2b3c") -> str:
    return f"arn:aws:fis:{REGION}:{ACCOUNT}:{kind}/{ident}"


def nlb_arn(name: str) -> str:
    return f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/net/{name}/0123456789abcdef"


def in_region(**keys: Any) -> dict[str, Any]:
    return {REGION_KEY: REGION, **keys}


# ------------------------------------------------------------------------------------------- Kubernetes RBAC


def test_rbac_grants_exactly_what_the_code_calls() -> None:
    uses, grants = kube_uses(harness_sources()), rbac().pairs()
    assert uses, "no kubernetes client call found: the scan is broken"
    assert grants - uses - AWAITING_KUBE == set(), f"granted but never called: {sorted(grants - uses - AWAITING_KUBE)}"
    assert uses - grants == set(), f"called but not granted: {sorted(uses - grants)}"


def test_awaiting_entries_are_not_called_yet_and_are_granted() -> None:
    """The moment the code calls an awaited permission, it must leave the awaiting lists (and be checked as
    every other call is)."""
    assert AWAITING_KUBE & kube_uses(harness_sources()) == set(), "remove these from AWAITING_KUBE: the code calls them"
    called, implied = aws_actions_called(harness_sources())
    assert AWAITING_AWS & (called | implied) == set(), "remove these from AWAITING_AWS: the code calls them"
    assert AWAITING_KUBE <= rbac().pairs() and AWAITING_AWS <= iam().actions()


def wide_kube_grants(policy: RbacPolicy, exec_namespaces: set[str]) -> list[str]:
    """What a least-privilege document must not grant: writes or anything that runs code cluster-wide, and
    exec outside the namespaces the faults exec in."""
    found = []
    for group, resource, verb in sorted(policy.pairs()):
        where = policy.where(verb, group, resource)
        if None in where and (verb in MUTATING_VERBS or resource in RUNS_SOMETHING):
            found.append(f"{verb} {resource} cluster-wide")
        if resource == "pods/exec" and (None in where or not where <= exec_namespaces):
            found.append(f"{verb} pods/exec in {sorted(str(n) for n in where)}")
    return found


def test_no_write_exec_or_proxy_is_granted_cluster_wide_and_the_old_grants_were() -> None:
    exec_namespaces = {"g7chaos", "kube-system"}
    assert wide_kube_grants(rbac(), exec_namespaces) == []
    old = wide_kube_grants(RbacPolicy.from_yaml(OLD_RBAC, SUBJECT), exec_namespaces)
    assert {"create pods cluster-wide", "delete pods cluster-wide", "create pods/exec cluster-wide",
            "get pods/proxy cluster-wide"} <= set(old), old


@pytest.mark.parametrize(("verb", "resource", "namespace", "allowed"), [
    ("create", "pods/exec", "kube-system", True),        # dcgmi in the DCGM pod (eks-addons)
    ("get", "pods/exec", "kube-system", True),
    ("create", "pods/exec", "g7chaos", True),            # the harness's own helper pods
    ("create", "pods/exec", "inference", False),         # never into the workload
    ("create", "pods/exec", "default", False),
    ("create", "pods/exec", "gpu-operator", False),      # only once the operator rebinds the Role there
    ("create", "pods", "g7chaos", True),
    ("create", "pods", "kube-system", False),            # no pod creation next to privileged system pods
    ("create", "pods", "default", False),
    ("delete", "pods", "g7chaos", True),
    ("delete", "pods", "kube-system", True),             # device-plugin-race restarts the plugin
    ("delete", "pods", "inference", False),
    ("get", "pods/proxy", "kube-system", True),          # dcgm-exporter /metrics
    ("get", "pods/proxy", "inference", False),
    ("get", "pods/log", "g7chaos", True),
    ("get", "pods/log", "kube-system", False),
    ("list", "pods", "inference", True),                 # reads are cluster-wide
    ("watch", "nodes", "", True),
    ("patch", "nodes", "", False),
    ("create", "pods/eviction", "inference", False),
])
def test_rbac_allows_each_call_only_in_its_namespace(verb: str, resource: str, namespace: str, allowed: bool) -> None:
    assert rbac().allows(verb, "", resource, namespace) is allowed


def test_mpijobs_are_allowed_only_in_the_harness_namespace() -> None:
    policy = rbac()
    assert policy.allows("create", "kubeflow.org", "mpijobs", "g7chaos")
    assert not policy.allows("create", "kubeflow.org", "mpijobs", "default")
    assert not policy.allows("create", "", "mpijobs", "g7chaos")      # the API group is part of the match


def test_a_role_grants_nothing_outside_its_namespace_even_when_named_like_a_cluster_role() -> None:
    """RBAC-2: a Role is namespaced and reaches its namespace only through a RoleBinding there; a RoleBinding
    to a ClusterRole grants only in the RoleBinding's namespace."""
    text = """
kind: Role
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: exec, namespace: a}
rules: [{apiGroups: [""], resources: [pods/exec], verbs: [create]}]
---
kind: RoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: exec, namespace: b}
roleRef: {kind: Role, name: exec, apiGroup: rbac.authorization.k8s.io}
subjects: [{kind: ServiceAccount, name: g7chaos, namespace: g7chaos}]
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: deleter}
rules: [{apiGroups: [""], resources: [pods], verbs: [delete]}]
---
kind: RoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: deleter, namespace: c}
roleRef: {kind: ClusterRole, name: deleter, apiGroup: rbac.authorization.k8s.io}
subjects: [{kind: ServiceAccount, name: g7chaos, namespace: g7chaos}]
"""
    policy = RbacPolicy.from_yaml(text, SUBJECT)
    assert not policy.allows("create", "", "pods/exec", "a")     # a binding in b cannot reach a Role in a
    assert not policy.allows("create", "", "pods/exec", "b")
    assert policy.allows("delete", "", "pods", "c")
    assert not policy.allows("delete", "", "pods", "d") and not policy.allows("delete", "", "pods", "")


def test_each_role_says_which_target_field_its_namespace_comes_from_and_is_bound_there() -> None:
    from harness.target.model import PRESETS, TargetSpec
    defaults = {"harness_namespace": TargetSpec.model_fields["harness_namespace"].default,
                **{f"selectors.{name}": sel.namespace for name, sel in PRESETS["eks-addons"].items()}}
    docs = rbac_documents()
    roles = [d for d in docs if d["kind"] == "Role"]
    assert {r["metadata"]["annotations"][NAMESPACE_FROM] for r in roles} == \
        {"harness_namespace", "selectors.dcgm", "selectors.device_plugin", "selectors.dcgm_exporter"}
    for role in roles:
        meta = role["metadata"]
        assert meta["namespace"] == defaults[meta["annotations"][NAMESPACE_FROM]], meta
        binding = next(d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == meta["name"])
        assert binding["metadata"]["namespace"] == meta["namespace"]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": meta["name"]}
    cluster_roles = [d for d in docs if d["kind"] == "ClusterRole"]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} and all("/" not in r for r in rule["resources"])
               for role in cluster_roles for rule in role["rules"])


def test_with_the_gpu_operator_preset_the_nvidia_roles_move_to_its_namespace() -> None:
    """The operator's rebinding, as deploy/rbac.yaml describes it: exec lands in gpu-operator and kube-system
    keeps no exec, no delete and no proxy."""
    from harness.target.model import Selectors
    selectors = Selectors(preset="gpu-operator")
    namespaces = {"harness_namespace": "g7chaos",
                  **{f"selectors.{n}": getattr(selectors, n).namespace
                     for n in ("dcgm", "device_plugin", "dcgm_exporter")}}
    policy = RbacPolicy.from_documents(retarget(rbac_documents(), namespaces), SUBJECT)
    assert policy.allows("create", "", "pods/exec", "gpu-operator")
    assert policy.allows("delete", "", "pods", "gpu-operator")
    for verb, resource in (("create", "pods/exec"), ("delete", "pods"), ("get", "pods/proxy")):
        assert not policy.allows(verb, "", resource, "kube-system"), (verb, resource)
    # the text the file tells the operator to run does the same
    sed = rbac_text().replace("namespace: kube-system", "namespace: gpu-operator")
    assert RbacPolicy.from_yaml(sed, SUBJECT).grants == policy.grants


def test_every_binding_binds_the_cronjob_service_account() -> None:
    docs = rbac_documents()
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]
    namespace = next(d for d in docs if d["kind"] == "Namespace")["metadata"]
    assert namespace["name"] == account["namespace"]
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"   # the freeze helper's pod
    subject = [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    launcher = [b for b in bindings if b["metadata"]["name"] == LAUNCHER]
    assert bindings and all(b["subjects"] == subject for b in bindings if b not in launcher)
    # the MPI launcher's own account: bound to its own Role only, exec and pod reads in the harness's namespace
    assert [b["subjects"] for b in launcher] == [[{"kind": "ServiceAccount", "name": LAUNCHER,
                                                   "namespace": account["namespace"]}]]
    assert launcher[0]["roleRef"]["name"] == LAUNCHER and launcher[0]["metadata"]["namespace"] == account["namespace"]
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == LAUNCHER)
    assert {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]} == {
        ("pods", "get"), ("pods", "list"), ("pods/exec", "create"), ("pods/exec", "get")}
    job = next(d for d in yaml.safe_load_all((DEPLOY / "cronjob.yaml").read_text()) if d["kind"] == "CronJob")
    assert job["metadata"]["namespace"] == account["namespace"]
    assert job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]


# ------------------------------------------------------------------------------------------- IAM


def test_iam_policy_allows_exactly_what_the_code_calls() -> None:
    called, implied = aws_actions_called(harness_sources())
    assert {"fis:StartExperiment", "sts:GetCallerIdentity"} <= called, called
    allowed = iam().actions()
    assert all("*" not in action for action in allowed), allowed
    unused = allowed - (called | implied) - AWAITING_AWS
    assert unused == set(), f"allowed but never called: {sorted(unused)}"
    assert (called | implied) - allowed == set(), f"called but not allowed: {sorted(called | implied - allowed)}"


def test_every_iam_statement_is_region_bound_and_pass_role_only_to_fis() -> None:
    for statement in iam_statements():
        regions = statement["Condition"]["StringEquals"][REGION_KEY]
        assert regions, statement
        iam_only = all(action.startswith("iam:") and action != "iam:PassRole" for action in statement["Action"])
        assert regions == (["us-east-1"] if iam_only else [REGION]), statement   # IAM answers from us-east-1
        if "iam:PassRole" in statement["Action"]:
            assert statement["Action"] == ["iam:PassRole"]
            assert statement["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/g7chaos-fis-experiment"
            assert statement["Condition"]["StringEquals"]["iam:PassedToService"] == "fis.amazonaws.com"


def wide_aws_grants(policy: IamPolicy) -> list[str]:
    """Mutations a least-privilege document must not allow: on any resource, or on FIS resources without our
    tag, or on a load balancer other than the target's."""
    found = []
    mutations = sorted(a for a in policy.actions() if not a.split(":", 1)[1].startswith(("Describe", "List", "Get")))
    probes = {
        "fis:StopExperiment": [(fis_arn("experiment"), in_region())],
        "fis:GetExperiment": [(fis_arn("experiment"), in_region())],
        "fis:DeleteExperimentTemplate": [(fis_arn("experiment-template"), in_region())],
        "fis:StartExperiment": [(fis_arn("experiment-template"), in_region()),
                                (fis_arn("experiment"), in_region())],
        "fis:CreateExperimentTemplate": [(fis_arn("experiment-template"), in_region())],
        "fis:TagResource": [(fis_arn("experiment-template"), in_region())],
        "arc-zonal-shift:StartZonalShift": [(nlb_arn("other-teams-nlb"), in_region())],
        "arc-zonal-shift:CancelZonalShift": [(nlb_arn("other-teams-nlb"), in_region())],
        "iam:PassRole": [(f"arn:aws:iam::{ACCOUNT}:role/admin",
                          in_region(**{"iam:PassedToService": "fis.amazonaws.com"})),
                         (f"arn:aws:iam::{ACCOUNT}:role/g7chaos-fis-experiment",
                          in_region(**{"iam:PassedToService": "ec2.amazonaws.com"}))],
    }
    for action in mutations:
        if "*" in policy.resources_of(action):
            found.append(f"{action} on *")
        for resource, context in probes.get(action, []):
            if policy.allows(action, resource, context):
                found.append(f"{action} on {resource.rsplit(':', 1)[-1]} without our tag or name")
    return found


def test_no_mutation_is_allowed_beyond_our_tag_and_load_balancer_and_the_old_policy_allowed_them() -> None:
    assert wide_aws_grants(iam()) == []
    old = wide_aws_grants(IamPolicy.from_json(OLD_IAM))
    assert {"fis:StopExperiment on *", "fis:DeleteExperimentTemplate on *", "arc-zonal-shift:StartZonalShift on *",
            "arc-zonal-shift:CancelZonalShift on *"} <= set(old), old


def test_fis_stop_and_delete_need_the_token_tag() -> None:
    """IAM-1: FIS experiments and templates carry aws:ResourceTag; the policy requires g7chaos:token on both."""
    policy, tagged = iam(), in_region(**{f"aws:ResourceTag/{TOKEN_KEY}": "0f4e"})
    for action, kind in (("fis:StopExperiment", "experiment"), ("fis:GetExperiment", "experiment"),
                         ("fis:DeleteExperimentTemplate", "experiment-template")):
        assert policy.allows(action, fis_arn(kind), tagged), action
        assert not policy.allows(action, fis_arn(kind), in_region(**{"aws:ResourceTag/team": "payments"})), action
        assert not policy.allows(action, fis_arn(kind), {**tagged, REGION_KEY: "eu-west-1"}), action


def test_fis_create_and_start_need_the_token_on_the_request_and_on_the_template() -> None:
    """IAM-2: CreateExperimentTemplate authorises the action and experiment-template resources and tag-on-create
    as TagResource; StartExperiment authorises the template (its tags) and the new experiment (the request's
    tags). All are needed: each request context must be allowed."""
    policy = iam()
    request = in_region(**{f"aws:RequestTag/{TOKEN_KEY}": "0f4e", "aws:TagKeys": ["g7chaos", TOKEN_KEY]})
    create = [("fis:CreateExperimentTemplate", f"arn:aws:fis:{REGION}::action/aws:ec2:reboot-instances"),
              ("fis:CreateExperimentTemplate", fis_arn("experiment-template")),
              ("fis:TagResource", fis_arn("experiment-template"))]
    assert all(policy.allows(a, r, request) for a, r in create)
    assert not any(policy.allows(a, r, in_region()) for a, r in create[1:])      # untagged: refused
    foreign_key = {**request, "aws:TagKeys": ["g7chaos", TOKEN_KEY, "owner"]}
    assert not policy.allows("fis:TagResource", fis_arn("experiment-template"), foreign_key)
    template = in_region(**{f"aws:ResourceTag/{TOKEN_KEY}": "0f4e", f"aws:RequestTag/{TOKEN_KEY}": "0f4e"})
    assert policy.allows("fis:StartExperiment", fis_arn("experiment-template"), template)
    assert policy.allows("fis:StartExperiment", fis_arn("experiment", "EXP1"), template)
    assert not policy.allows("fis:StartExperiment", fis_arn("experiment-template"), request)   # someone else's
    assert not policy.allows("fis:StartExperiment", fis_arn("experiment", "EXP1"),
                             in_region(**{f"aws:ResourceTag/{TOKEN_KEY}": "0f4e"}))           # untagged experiment


class _RecordingFis:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def create_experiment_template(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("CreateExperimentTemplate", kwargs))
        return {"experimentTemplate": {"id": "EXT1"}}

    def start_experiment(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("StartExperiment", kwargs))
        return {"experiment": {"id": "EXP1"}}


def test_the_harness_tags_every_template_and_experiment_so_iam_lets_it_act_on_them() -> None:
    """What the harness sends, evaluated as IAM would: the template and the experiment it starts carry the
    token, so create, tag-on-create and both StartExperiment contexts are allowed."""
    from types import SimpleNamespace

    from harness.faults.fis import TOKEN_TAG, create_template, start_experiment
    fis = _RecordingFis()
    role = f"arn:aws:iam::{ACCOUNT}:role/g7chaos-fis-experiment"
    target = SimpleNamespace(aws=lambda service: fis, spec=SimpleNamespace(aws=SimpleNamespace(fis_role_arn=role)))
    template_id = create_template(target, "0f4e", "probe", {"n": {"resourceType": "aws:ec2:instance",
                                                                  "resourceArns": ["arn:aws:ec2:::instance/i-1"]}},
                                  {"reboot": {"actionId": "aws:ec2:reboot-instances", "targets": {"Instances": "n"}}})
    start_experiment(target, template_id, token="0f4e")
    policy = iam()
    (_, create), (_, start) = fis.calls
    assert TOKEN_TAG == TOKEN_KEY
    create_ctx = in_region(**{f"aws:RequestTag/{k}": v for k, v in create["tags"].items()},
                           **{"aws:TagKeys": sorted(create["tags"])})
    assert policy.allows("fis:CreateExperimentTemplate", fis_arn("experiment-template"), create_ctx)
    assert policy.allows("fis:TagResource", fis_arn("experiment-template"), create_ctx)
    assert policy.allows("iam:PassRole", create["roleArn"], in_region(**{"iam:PassedToService": "fis.amazonaws.com"}))
    start_ctx = in_region(**{f"aws:RequestTag/{k}": v for k, v in start["tags"].items()},
                          **{f"aws:ResourceTag/{k}": v for k, v in create["tags"].items()},
                          **{"aws:TagKeys": sorted(start["tags"])})
    assert policy.allows("fis:StartExperiment", fis_arn("experiment-template"), start_ctx)
    assert policy.allows("fis:StartExperiment", fis_arn("experiment"), start_ctx)
    assert policy.allows("fis:StopExperiment", fis_arn("experiment"),
                         in_region(**{f"aws:ResourceTag/{k}": v for k, v in start["tags"].items()}))
    # every other place that starts an experiment tags it with the token as well
    checked = 0
    for path, text in harness_sources().items():
        for call in re.finditer(r"(?:\.|= |return )start_experiment\(", text):
            args = re.split(r"\)\[\"experiment\"\]|\)\n", text[call.end():call.end() + 600], maxsplit=1)[0]
            assert "token=" in args or "TOKEN_TAG" in args, f"{path.name}: start_experiment({args[:160]}"
            checked += 1
    assert checked >= 4, checked      # the wrapper, its three callers, spot-interruption's own call


def fis_actions_used(sources: dict[Path, str]) -> set[str]:
    """FIS action IDs the harness puts in templates: its string literals that name an action FIS runs."""
    from harness.twin.aws.fis import ACTION_CATALOGUE
    literals = {m for text in sources.values() for m in re.findall(r"\"(aws:[a-z0-9]+:[a-z0-9-]+)\"", text)}
    return literals & set(ACTION_CATALOGUE)


def test_templates_may_hold_exactly_the_fis_actions_the_code_uses() -> None:
    """IAM-2: CreateExperimentTemplate authorizes each action of the template as an `action` resource, so the
    role cannot build a template that terminates instances or runs SSM documents, which no fault does."""
    used = fis_actions_used(harness_sources())
    assert {"aws:ec2:reboot-instances", "aws:network:disrupt-connectivity"} <= used, used
    resources = iam().resources_of("fis:CreateExperimentTemplate")
    granted = {r.split(":action/", 1)[1] for r in resources if ":action/" in r}
    assert granted == used, f"granted, unused: {sorted(granted - used)}; used, not granted: {sorted(used - granted)}"
    request = in_region(**{f"aws:RequestTag/{TOKEN_KEY}": "0f4e"})
    for action_id in sorted(used):
        assert iam().allows("fis:CreateExperimentTemplate", f"arn:aws:fis:{REGION}::action/{action_id}", request)
    for foreign in ("aws:ec2:terminate-instances", "aws:ssm:send-command", "aws:eks:terminate-nodegroup-instances"):
        assert not iam().allows("fis:CreateExperimentTemplate", f"arn:aws:fis:{REGION}::action/{foreign}", request)
        assert IamPolicy.from_json(OLD_IAM).allows("fis:CreateExperimentTemplate",
                                                   f"arn:aws:fis:{REGION}::action/{foreign}", in_region())


def test_zonal_shifts_only_on_the_target_load_balancer() -> None:
    """IAM-3: ARC zonal shift authorises the load balancer's ARN (`loadbalancer/net/<name>/<id>`)."""
    from harness.target.model import LoadBalancerSpec
    policy, name = iam(), LoadBalancerSpec().name
    for action in ("arc-zonal-shift:StartZonalShift", "arc-zonal-shift:CancelZonalShift"):
        resources = policy.resources_of(action)
        assert resources and "*" not in resources
        assert all(r.startswith(f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/") for r in resources)
        assert policy.allows(action, nlb_arn(name), in_region())
        assert not policy.allows(action, nlb_arn("other-teams-nlb"), in_region())
        assert not policy.allows(action, f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/{name}/1",
                                 in_region())


def test_pass_role_only_the_experiment_role_only_to_fis() -> None:
    """IAM-4: iam:PassRole is checked on the role's ARN with iam:PassedToService = the service it goes to."""
    policy, role = iam(), f"arn:aws:iam::{ACCOUNT}:role/g7chaos-fis-experiment"
    assert policy.allows("iam:PassRole", role, in_region(**{"iam:PassedToService": "fis.amazonaws.com"}))
    assert not policy.allows("iam:PassRole", role, in_region(**{"iam:PassedToService": "ec2.amazonaws.com"}))
    assert not policy.allows("iam:PassRole", role, in_region())
    assert not policy.allows("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/Admin",
                             in_region(**{"iam:PassedToService": "fis.amazonaws.com"}))


@pytest.mark.parametrize(("operator", "key", "wanted", "context", "holds"), [
    ("Null", "aws:ResourceTag/k", "false", {"aws:ResourceTag/k": "v"}, True),
    ("Null", "aws:ResourceTag/k", "false", {}, False),
    ("Null", "aws:ResourceTag/k", "true", {}, True),
    ("StringEquals", "aws:RequestedRegion", ["us-east-2"], {}, False),                  # absent key: no match
    ("StringEquals", "aws:RequestedRegion", ["us-east-2", "us-east-1"], {"aws:RequestedRegion": "us-east-1"}, True),
    ("ForAllValues:StringLike", "aws:TagKeys", ["g7chaos", "g7chaos:*"], {"aws:TagKeys": ["g7chaos:token"]}, True),
    ("ForAllValues:StringLike", "aws:TagKeys", ["g7chaos", "g7chaos:*"], {"aws:TagKeys": ["g7chaos", "team"]}, False),
    ("ForAllValues:StringLike", "aws:TagKeys", ["g7chaos"], {}, True),                  # vacuous, as IAM has it
    ("ForAnyValue:StringEquals", "aws:TagKeys", ["g7chaos"], {}, False),
    ("ArnLike", "aws:SourceArn", "arn:aws:fis:*:*:experiment/*", {"aws:SourceArn": fis_arn("experiment")}, True),
])
def test_condition_operators_evaluate_as_iam_documents_them(operator: str, key: str, wanted: Any,
                                                           context: dict[str, Any], holds: bool) -> None:
    assert condition_holds(operator, key, wanted, context) is holds


def test_an_unknown_condition_operator_is_refused_rather_than_read_as_allowing() -> None:
    with pytest.raises(ValueError, match="not evaluated here"):
        condition_holds("NumericLessThan", "aws:MultiFactorAuthAge", "3600", {"aws:MultiFactorAuthAge": "1"})


# ------------------------------------------------------------------------------------------- the CronJob


def test_cronjob_runs_recover_then_a_guarded_game_day_on_a_non_production_target() -> None:
    from harness.cli import build_parser
    from harness.target.model import load_targets_text
    job, config = cronjob_documents()
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


def test_cronjob_target_names_the_fis_role_the_iam_policy_lets_it_pass() -> None:
    from harness.target.model import load_targets_text
    _, config = cronjob_documents()
    targets = load_targets_text(config["data"]["targets.yaml"], "cronjob targets.yaml")
    role = targets["staging"].aws.fis_role_arn
    assert role == f"arn:aws:iam::{ACCOUNT}:role/g7chaos-fis-experiment"
    assert iam().allows("iam:PassRole", role, in_region(**{"iam:PassedToService": "fis.amazonaws.com"}))


def test_the_harness_pod_never_runs_in_a_zone_a_scenario_cuts_nor_on_spot() -> None:
    job, _ = cronjob_documents()
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    cut = az_loss_zones()
    assert cut, "no az-loss scenario found: the check is vacuous"
    assert cut <= zones_excluded(pod), f"the game day may run inside {sorted(cut - zones_excluded(pod))}"
    expressions = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"]
    assert {"key": "eks.amazonaws.com/capacityType", "operator": "NotIn", "values": ["SPOT"]} in expressions
    unguarded = {k: v for k, v in pod.items() if k != "affinity"}
    assert zones_excluded(unguarded) == set()          # the check does fail on a pod with no affinity


@pytest.mark.parametrize("path", sorted(p for p in DEPLOY.iterdir() if p.suffix in (".json", ".yaml")),
                         ids=lambda p: p.name)
def test_deploy_files_parse(path: Path) -> None:
    if path.suffix == ".json":
        json.loads(path.read_text())
    else:
        assert all(doc for doc in yaml.safe_load_all(path.read_text()))


def test_websocket_exec_is_a_get_on_pods_exec_and_every_exec_grant_also_has_create() -> None:
    """RBAC-1: the python client's exec is a WebSocket upgrade of an HTTP GET, which the API server authorizes
    as `get` on pods/exec; since Kubernetes 1.35 it also checks `create` (SPDY exec, a POST, always was
    `create`). A grant with one verb breaks exec on one side of that version."""
    from harness.twin.kube.auditlog import describe_kube
    seen = describe_kube("GET", "/api/v1/namespaces/kube-system/pods/dcgm-x/exec", "command=dcgmi&stdout=true")
    assert (seen["verb"], seen["resource"], seen["subresource"], seen["namespace"]) == \
        ("get", "pods", "exec", "kube-system")
    assert describe_kube("POST", "/api/v1/namespaces/kube-system/pods/dcgm-x/exec", "")["verb"] == "create"
    policy = rbac()
    assert policy.where("get", "", "pods/exec") == policy.where("create", "", "pods/exec") == {"g7chaos", "kube-system"}
    assert {("", "pods/exec", "get"), ("", "pods/exec", "create")} <= kube_uses(harness_sources())
    one_verb = rbac_text().replace("resources: [pods/exec]\n    verbs: [create, get]",
                                   "resources: [pods/exec]\n    verbs: [create]")
    narrowed = RbacPolicy.from_yaml(one_verb, SUBJECT)
    assert not narrowed.allows("get", "", "pods/exec", "kube-system")     # the pre-1.35 WebSocket exec is refused
