"""A Target is endpoints plus clients: the kubernetes client per context, boto3 per service, an inference URL.

Nothing here knows whether it talks to the twin or to a real cluster; the twin is just a target whose
endpoints come from its endpoints file. Clients are built lazily and cached, and only for contexts the
target names (and its allowlist admits), so a typo in a scenario cannot reach a cluster it was not given.

    target = Target.from_twin_endpoints("reports/twin/endpoints.json")
    nodes = kubernetes.client.CoreV1Api(target.kube("g7-use2a")).list_node()
    alarms = target.aws("cloudwatch").describe_alarms()
    wall = target.wall_seconds(scenario.duration)

Control planes fail: API servers answer 500 and 429, time out and cut watches; AWS throttles. Every client
built here retries what is safe to retry, bounded in attempts and time: Kubernetes calls through urllib3's
Retry for idempotent methods (GET, PUT, PATCH, DELETE; Retry-After honoured) with a per-request timeout,
creates (POST) through tenacity with "409 AlreadyExists for an object we sent" counted as done, and boto3 in
botocore's standard retry mode. Faults and checks get this by using `Target.kube` and `Target.aws`.

Secrets: credentials are read from where the spec says (profile, env, default chain) at client creation
and never stored in the spec; `Target.redact` removes them, and the kubeconfig's own tokens and keys, from
anything bound for a report.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes.client import rest as kube_rest
from tenacity import (RetryCallState, Retrying, retry_if_exception_type, retry_if_result, stop_after_attempt,
                      stop_after_delay, wait_exponential)

from harness.redact import Redactor, redact
from harness.target.endpoints import DEFAULT_ENDPOINTS_PATH, TWIN_ACCESS_KEY, TWIN_SECRET_KEY, TwinEndpoints
from harness.target.guardrails import GuardrailError, check_allowlist, check_blast_radius, require_confirmation
from harness.target.model import AwsCredentials, AwsSpec, Allowlist, TargetSpec, find_target_spec

__all__ = ["Target", "GuardrailError", "check_allowlist", "check_blast_radius", "require_confirmation", "redact",
           "resolve_target"]

_KUBECONFIG_SECRET_FIELDS = ("token", "password", "client-key-data", "client-certificate-data", "id-token",
                             "refresh-token", "client-secret")
_MAX_KUBECONFIG_BYTES = 4 << 20

KUBE_RETRY_STATUSES = (429, 500, 502, 503, 504)
KUBE_ATTEMPTS = 6                       # 1 call + 5 retries: at a 10% failure rate, 1 in a million calls fails
KUBE_RETRY_DEADLINE_S = 30.0
KUBE_REQUEST_TIMEOUT_S = (5.0, 30.0)    # connect, read: a hung API server never hangs a run (watches excepted)
AWS_RETRY_CONFIG = {"total_max_attempts": 8, "mode": "standard"}
_NOT_CREATES = ("/exec", "/attach", "/portforward", "/eviction")   # POSTs that are not creates: a 429 on an
# eviction is a PodDisruptionBudget saying no, which the caller must hear at once, not a throttle to wait out


def kube_retry() -> urllib3.Retry:
    """urllib3 retries for idempotent Kubernetes calls: connection errors, read timeouts and 429/5xx answers."""
    return urllib3.Retry(total=KUBE_ATTEMPTS - 1, connect=KUBE_ATTEMPTS - 1, read=KUBE_ATTEMPTS - 1,
                         status=KUBE_ATTEMPTS - 1, other=0, backoff_factor=0.1, backoff_max=2.0,
                         status_forcelist=KUBE_RETRY_STATUSES,
                         allowed_methods=frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"}),
                         respect_retry_after_header=True, raise_on_status=False)


def _wait_create(state: RetryCallState) -> float:
    """Exponential backoff, or the server's Retry-After when it asks for longer."""
    backoff = wait_exponential(multiplier=0.1, max=2.0)(state)
    outcome = state.outcome
    if outcome is None or outcome.failed:
        return backoff
    retry_after = outcome.result().getheader("retry-after") or ""
    return max(backoff, min(float(retry_after), 10.0)) if retry_after.isdigit() else backoff


class ResilientRestClient(kube_rest.RESTClientObject):
    """The kubernetes client's REST layer with a default timeout and safe retries for creates.

    Idempotent methods are retried by urllib3 (`configuration.retries`). A POST is not idempotent: it is
    retried here, and a 409 AlreadyExists met after an attempt that may have been applied is success when
    the object found carries every label and annotation we sent (it is ours); anything else stays a 409.
    """

    def request(self, method, url, headers=None, body=None, post_params=None, _request_timeout=None):  # type: ignore[override]
        if _request_timeout is None and "watch=true" not in url:
            _request_timeout = KUBE_REQUEST_TIMEOUT_S
        call = super().request
        if method != "POST" or url.partition("?")[0].rstrip("/").endswith(_NOT_CREATES):
            return call(method, url, headers=headers, body=body, post_params=post_params,
                        _request_timeout=_request_timeout)
        maybe_applied = False

        def attempt() -> Any:
            nonlocal maybe_applied
            try:
                response = call(method, url, headers=dict(headers or {}), body=body, post_params=post_params,
                                _request_timeout=_request_timeout)
            except urllib3.exceptions.HTTPError:
                maybe_applied = True       # sent, and no answer: it may have been applied
                raise
            if response.status in KUBE_RETRY_STATUSES:
                maybe_applied = maybe_applied or response.status != 429   # a 429 is refused before it is applied
                response.read()
                return response
            if response.status == 409 and maybe_applied:
                adopted = self._adopt(url, headers, body, _request_timeout)
                if adopted is not None:
                    response.read()
                    return adopted
            return response

        retrying = Retrying(
            retry=retry_if_exception_type(urllib3.exceptions.HTTPError)
            | retry_if_result(lambda response: response.status in KUBE_RETRY_STATUSES),
            wait=_wait_create, reraise=True, retry_error_callback=lambda state: state.outcome.result(),
            stop=stop_after_attempt(KUBE_ATTEMPTS) | stop_after_delay(KUBE_RETRY_DEADLINE_S))
        return retrying(attempt)

    def _adopt(self, url: str, headers: Any, body: Any, timeout: Any) -> Any:
        """The existing object named in the create `body`, if it is the one we sent (else None)."""
        sent = body if isinstance(body, dict) else json.loads(body) if isinstance(body, (str, bytes)) else None
        metadata = (sent or {}).get("metadata") or {}
        name = metadata.get("name")
        if not name:
            return None
        base = url.partition("?")[0]
        read_headers = {k: v for k, v in (headers or {}).items() if k.lower() in ("accept", "authorization")}
        found = super().request("GET", f"{base.rstrip('/')}/{name}", headers=read_headers, _request_timeout=timeout)
        if found.status != 200:
            found.read()
            return None
        existing = (json.loads(found.read() or b"{}").get("metadata") or {})
        for field in ("labels", "annotations"):
            mine, theirs = metadata.get(field) or {}, existing.get(field) or {}
            if any(theirs.get(k) != v for k, v in mine.items()):
                return None
        return found


class CredentialsError(GuardrailError):
    """The credentials source named by the target cannot provide credentials."""


class Target:
    """Endpoints and clients for one deployment. Construct from a TargetSpec or a twin endpoints file."""

    def __init__(self, spec: TargetSpec, *, env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self._env = dict(os.environ if env is None else env)
        self._kube: dict[str, Any] = {}
        self._aws: dict[str, Any] = {}
        self._session: Any = None
        self._redactor: Redactor | None = None

    # ------------------------------------------------------------------------------------- facts

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def environment(self) -> str:
        return self.spec.environment

    @property
    def contexts(self) -> list[str]:
        return list(self.spec.contexts)

    @property
    def region(self) -> str:
        return self.spec.aws.region

    @property
    def inference_url(self) -> str:
        return self.spec.inference_url.rstrip("/")

    @property
    def time_scale(self) -> float:
        return self.spec.time_scale

    @property
    def served_by_headers(self) -> list[str]:
        return list(self.spec.served_by_headers)

    @property
    def load_master(self) -> tuple[str, int] | None:
        """Where the load master binds for remote workers (None: a free loopback port)."""
        if self.spec.load_master is None:
            return None
        host, _, port = self.spec.load_master.rpartition(":")
        return host.strip("[]"), int(port)

    def wall_seconds(self, deployment_seconds: float) -> float:
        """Wall-clock seconds a scenario duration (deployment time) takes on this target."""
        return deployment_seconds / self.spec.time_scale

    def __repr__(self) -> str:   # never the credentials
        return f"Target(name={self.name!r}, environment={self.environment!r}, contexts={self.contexts!r})"

    # ------------------------------------------------------------------------------------ kube

    def kube(self, context: str) -> Any:
        """A `kubernetes.client.ApiClient` for one of the target's contexts (new_client_from_config)."""
        if context not in self.spec.contexts:
            raise GuardrailError(f"context {context!r} is not one of target {self.name!r}'s contexts "
                                 f"({', '.join(self.spec.contexts)})")
        check_allowlist(self.spec, contexts=[context])
        if context not in self._kube:
            from kubernetes import client as kube_client, config as kube_config
            configuration = kube_client.Configuration()
            kube_config.load_kube_config(config_file=str(self.spec.kubeconfig_path()), context=context,
                                         client_configuration=configuration, persist_config=False)
            configuration.retries = kube_retry()
            api_client = kube_client.ApiClient(configuration=configuration)
            api_client.rest_client = ResilientRestClient(configuration)
            self._kube[context] = api_client
        return self._kube[context]

    # ------------------------------------------------------------------------------------- aws

    def endpoint_for(self, service: str) -> str | None:
        return self.spec.aws.endpoints.get(service) or self.spec.aws.endpoint_url

    def aws_session(self) -> Any:
        if self._session is None:
            import boto3
            creds = self.spec.aws.credentials
            region = self.spec.aws.region
            if creds.source == "twin":
                self._session = boto3.session.Session(aws_access_key_id=TWIN_ACCESS_KEY,
                                                      aws_secret_access_key=TWIN_SECRET_KEY, region_name=region)
            elif creds.source == "env":
                key, secret = self._env.get("AWS_ACCESS_KEY_ID"), self._env.get("AWS_SECRET_ACCESS_KEY")
                if not key or not secret:
                    raise CredentialsError(f"target {self.name!r} takes AWS credentials from the environment, "
                                           f"but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set")
                self._session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                                                      aws_session_token=self._env.get("AWS_SESSION_TOKEN"),
                                                      region_name=region)
            elif creds.source == "profile":
                self._session = boto3.session.Session(profile_name=creds.profile, region_name=region)
            else:
                self._session = boto3.session.Session(region_name=region)
        return self._session

    def aws(self, service: str) -> Any:
        """A boto3 client for `service` in the target's region, at its endpoint when one is configured."""
        if service not in self._aws:
            from botocore.config import Config
            config = Config(retries=dict(AWS_RETRY_CONFIG), connect_timeout=5, read_timeout=30)
            self._aws[service] = self.aws_session().client(
                service, region_name=self.spec.aws.region, endpoint_url=self.endpoint_for(service), config=config)
        return self._aws[service]

    # ------------------------------------------------------------------------------- guardrails

    def check_allowlist(self, *, contexts: list[str] | None = None, aws_account: str | None = None,
                        region: str | None = None) -> None:
        check_allowlist(self.spec, contexts=contexts, aws_account=aws_account,
                        region=self.spec.aws.region if region is None else region)

    def caller_account(self) -> str:
        """The AWS account the credentials belong to (STS), for the allowlist check before a run."""
        return str(self.aws("sts").get_caller_identity()["Account"])

    # -------------------------------------------------------------------------------- redaction

    def secret_values(self) -> list[str]:
        """Literal secrets this target knows of: kubeconfig credentials and static AWS keys in use."""
        values: list[str] = []
        try:
            path = self.spec.kubeconfig_path()
            if path.is_file() and path.stat().st_size <= _MAX_KUBECONFIG_BYTES:
                config = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace")) or {}
                for entry in config.get("users", []) or []:
                    user = (entry or {}).get("user") or {}
                    values.extend(str(user[k]) for k in _KUBECONFIG_SECRET_FIELDS if user.get(k))
                    auth = (user.get("auth-provider") or {}).get("config") or {}
                    values.extend(str(v) for k, v in auth.items() if k in _KUBECONFIG_SECRET_FIELDS and v)
        except (OSError, yaml.YAMLError, AttributeError, TypeError):
            pass   # an unreadable kubeconfig holds nothing we could leak from it
        if self._session is not None and self.spec.aws.credentials.source != "twin":
            frozen = self._session.get_credentials()
            if frozen is not None:
                frozen = frozen.get_frozen_credentials()
                values.extend(v for v in (frozen.access_key, frozen.secret_key, frozen.token) if v)
        return values

    def redact(self, value: Any) -> Any:
        """`value` with every credential of this target and of the environment removed."""
        if self._redactor is None:
            self._redactor = Redactor(self.secret_values(), environ=self._env)
        return self._redactor.data(value)

    def describe(self) -> dict[str, Any]:
        """What a report says about the target: names and endpoints, never credentials."""
        return self.redact({
            "name": self.name, "environment": self.environment, "contexts": self.contexts,
            "region": self.region, "aws_endpoint": self.spec.aws.endpoint_url,
            "aws_endpoints": dict(self.spec.aws.endpoints), "inference_url": self.inference_url,
            "time_scale": self.time_scale, "aws_auth_source": self.spec.aws.credentials.source,
            **({"twin_flaky_api": self.spec.twin_flaky_api} if self.spec.twin_flaky_api else {}),
        })

    # ------------------------------------------------------------------------------ constructors

    @classmethod
    def from_spec(cls, spec: TargetSpec, **kwargs: Any) -> Target:
        return cls(spec, **kwargs)

    @classmethod
    def from_twin_endpoints(cls, path: Path | str = DEFAULT_ENDPOINTS_PATH, **kwargs: Any) -> Target:
        """The built-in `twin` target, from the endpoints file `g7chaos twin up` writes."""
        endpoints = TwinEndpoints.read(path)
        return cls(twin_spec(endpoints), **kwargs)


def twin_spec(endpoints: TwinEndpoints) -> TargetSpec:
    """The TargetSpec of a running twin: a dev target allowlisted to exactly its own contexts and account."""
    return TargetSpec(
        name="twin",
        description=f"embedded G7 EKS twin (profile {endpoints.profile})",
        environment="dev",
        kubeconfig=endpoints.kubeconfig,
        contexts=list(endpoints.contexts),
        aws=AwsSpec(region=endpoints.region, endpoint_url=endpoints.aws_endpoint,
                    endpoints=dict(endpoints.aws_endpoints), credentials=AwsCredentials(source="twin"),
                    account_id=endpoints.account_id),
        inference_url=endpoints.inference_url,
        time_scale=endpoints.time_scale,
        twin_flaky_api=endpoints.flaky_api,
        allowlist=Allowlist(contexts=list(endpoints.contexts), aws_accounts=[endpoints.account_id],
                            regions=[endpoints.region]),
    )


def resolve_target(name: str, *, targets_file: Path | str | None = None,
                   twin_endpoints: Path | str = DEFAULT_ENDPOINTS_PATH) -> Target:
    """`twin` -> the running twin's endpoints file; any other name -> targets.yaml."""
    if name == "twin":
        return Target.from_twin_endpoints(twin_endpoints)
    return Target(find_target_spec(name, targets_file))
