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

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import yaml

NAMESPACE_FROM = "g7chaos.dev/namespace-from"     # which target field a Role's namespace comes from
# An exec, attach or port-forward over WebSocket is an HTTP GET, authorized as `get`; since Kubernetes 1.35
# the API server also checks `create` for it (AuthorizePodWebsocketUpgradeCreatePermission, on by default).
STREAMING_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
WEBSOCKET_STREAM_VERBS = ("get", "create")        # FIDELITY RBAC-1


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


def forbidden_status(user: str, verb: str, group: str, resource: str, namespace: str, name: str) -> dict[str, Any]:
    """The API server's 403 body, worded as apierrors.NewForbidden and the authorizer's reason word it
    (FIDELITY RBAC-3): `<resource>[.<group>] ["<name>"] is forbidden: User ... cannot <verb> resource ...`."""
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    qualified = resource.split("/")[0] + (f".{group}" if group else "")
    subject = f'{qualified} "{name}"' if name else qualified
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group '
                       f'"{group}" {scope}',
            "reason": "Forbidden", "details": {"name": name, "group": group, "kind": resource.split("/")[0]},
            "code": 403}


class KubeRbacApp:
    """ASGI wrapper: answers 403 Forbidden, as the API server does, to any resource request the policy does not
    allow. Discovery, /version and the twin's own endpoints pass (every authenticated user may read them)."""

    def __init__(self, app: Any, policy: RbacPolicy) -> None:
        self.app = app
        self.policy = policy
        self.user = f"system:serviceaccount:{policy.subject_namespace}:{policy.subject_name}"

    def denied(self, method: str, path: str, query: str) -> dict[str, Any] | None:
        from harness.twin.kube.auditlog import describe_kube
        seen = describe_kube(method, path, query)
        if not seen.get("resource"):
            return None
        resource = f"{seen['resource']}/{seen['subresource']}" if seen.get("subresource") else seen["resource"]
        verbs = WEBSOCKET_STREAM_VERBS if method == "GET" and seen.get("subresource") in STREAMING_SUBRESOURCES \
            else (seen["verb"],)
        for verb in verbs:
            if not self.policy.allows(verb, seen["group"], resource, seen["namespace"], seen["name"]):
                return forbidden_status(self.user, verb, seen["group"], resource, seen["namespace"], seen["name"])
        return None

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        status = self.denied(method, scope.get("path", ""), (scope.get("query_string") or b"").decode("latin-1"))
        if status is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps(status).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})     # uvicorn answers the handshake with 403


def install_rbac(twin: Any, policy: RbacPolicy) -> None:
    """Enforce `policy` on every Kubernetes API of a started TwinServer, inside its audit log (which then
    records the refused calls with status 403, as a real audit log does)."""
    from harness.twin.kube.auditlog import KubeAuditApp
    for served in twin._served:
        if not served.name.startswith("kube:"):
            continue
        config = served.server.config
        attribute = "loaded_app" if getattr(config, "loaded_app", None) is not None else "app"
        outer = getattr(config, attribute)
        if isinstance(outer, KubeAuditApp):
            outer.app = KubeRbacApp(outer.app, policy)
        else:
            setattr(config, attribute, KubeRbacApp(outer, policy))
