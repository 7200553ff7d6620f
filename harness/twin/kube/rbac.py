"""Kubernetes RBAC as the API server's authorizer applies it, read from deploy/rbac.yaml.

Why the twin has this: the harness's least-privilege claim ("every call it makes is allowed, exec only where
the faults need it") is only worth something if a call in the wrong namespace is refused the way a real
cluster refuses it. The rules follow https://kubernetes.io/docs/reference/access-authn-authz/rbac/:

- a Role grants only inside its own namespace, and only through a RoleBinding in that namespace;
- a ClusterRole bound by a ClusterRoleBinding grants in every namespace and on cluster-scoped resources;
  bound by a RoleBinding it grants only in that RoleBinding's namespace;
- a rule matches on API group, resource (`pods/exec` names the subresource) and verb, optionally on
  resourceNames; `*` matches all; nothing can match on a label (FIDELITY RBAC-2);
- RBAC only allows: a request no rule allows is forbidden (403).

Tests hold the harness's recorded calls against this (tests/target/test_guarded_twin.py) and the shipped
document's shape against the old cluster-wide grants (tests/deploy/test_deploy_policies.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

NAMESPACE_FROM = "g7chaos.dev/namespace-from"     # which target field a Role's namespace comes from


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Rule:
        return cls(tuple(raw.get("apiGroups") or ()), tuple(raw.get("resources") or ()),
                   tuple(raw.get("verbs") or ()), tuple(raw.get("resourceNames") or ()))

    def matches(self, verb: str, group: str, resource: str, name: str = "") -> bool:
        return ((group in self.api_groups or "*" in self.api_groups)
                and (resource in self.resources or "*" in self.resources)
                and (verb in self.verbs or "*" in self.verbs)
                and (not self.resource_names or name in self.resource_names))


@dataclass(frozen=True)
class Grant:
    """A role's rules as bound to the subject: everywhere (namespace None) or in one namespace."""

    role_kind: str
    role_name: str
    namespace: str | None
    rules: tuple[Rule, ...]


@dataclass
class RbacPolicy:
    """What one ServiceAccount may do, from a set of RBAC documents."""

    subject_namespace: str
    subject_name: str
    grants: list[Grant] = field(default_factory=list)

    @classmethod
    def from_documents(cls, documents: Iterable[dict[str, Any]], subject: tuple[str, str]) -> RbacPolicy:
        docs = [d for d in documents if d]
        roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
                 if d["kind"] in ("Role", "ClusterRole")}
        policy = cls(*subject)
        for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
            if not any(s.get("kind") == "ServiceAccount" and s.get("name") == subject[1]
                       and s.get("namespace") == subject[0] for s in binding.get("subjects") or []):
                continue
            ref = binding["roleRef"]
            bound_in = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
            if binding["kind"] == "ClusterRoleBinding" and ref["kind"] != "ClusterRole":
                continue                     # the API server refuses such a binding; it grants nothing
            role = roles.get((ref["kind"], bound_in if ref["kind"] == "Role" else None, ref["name"]))
            if role is None:
                continue                     # a binding to a missing role (or a Role in another namespace)
            policy.grants.append(Grant(ref["kind"], ref["name"], bound_in,
                                       tuple(Rule.of(r) for r in role.get("rules") or [])))
        return policy

    @classmethod
    def from_yaml(cls, text: str, subject: tuple[str, str] = ("g7chaos", "g7chaos")) -> RbacPolicy:
        return cls.from_documents(yaml.safe_load_all(text), subject)

    def allows(self, verb: str, group: str, resource: str, namespace: str = "", name: str = "") -> bool:
        """Whether the request is allowed; `resource` is `pods` or `pods/exec`, namespace "" = cluster scope."""
        for grant in self.grants:
            if grant.namespace is not None and grant.namespace != namespace:
                continue                     # namespaced grants never reach other namespaces or cluster scope
            if any(rule.matches(verb, group, resource, name) for rule in grant.rules):
                return True
        return False

    def where(self, verb: str, group: str, resource: str) -> set[str | None]:
        """The namespaces a (verb, resource) is allowed in; None in the set means every namespace."""
        return {g.namespace for g in self.grants
                if any(rule.matches(verb, group, resource) for rule in g.rules)}

    def pairs(self) -> set[tuple[str, str, str]]:
        """Every (group, resource, verb) some grant names, wherever it applies."""
        return {(group, resource, verb) for g in self.grants for rule in g.rules
                for group in rule.api_groups for resource in rule.resources for verb in rule.verbs}


def retarget(documents: Iterable[dict[str, Any]], namespaces: dict[str, str]) -> list[dict[str, Any]]:
    """The documents with each Role (and its RoleBinding of the same name) moved to the namespace its
    `g7chaos.dev/namespace-from` field has in a target: `{"selectors.dcgm": "gpu-operator", ...}`."""
    import copy
    docs = [copy.deepcopy(d) for d in documents if d]
    moved = {d["metadata"]["name"]: namespaces[d["metadata"]["annotations"][NAMESPACE_FROM]] for d in docs
             if d["kind"] == "Role" and NAMESPACE_FROM in (d["metadata"].get("annotations") or {})}
    for doc in docs:
        if doc["kind"] in ("Role", "RoleBinding") and doc["metadata"]["name"] in moved:
            doc["metadata"]["namespace"] = moved[doc["metadata"]["name"]]
    return docs
