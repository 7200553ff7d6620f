"""Targets: where a scenario runs, as endpoints, credential *sources* and guardrails (never secrets).

Named targets live in `targets.yaml`, loaded with the same safe, strict loader as scenarios, so a typo
is a file:line:column error with the allowed keys:

    targets:
      staging-use2:
        environment: staging
        kubeconfig: ~/.kube/config
        contexts: [stg-use2a, stg-use2b]          # one per cluster
        aws: {region: us-east-2, credentials: {source: profile, profile: chaos-staging}}
        inference_url: https://inference.staging.example.com
        allowlist: {contexts: [stg-use2a, stg-use2b], aws_accounts: ["111122223333"], regions: [us-east-2]}
        caps: {max_nodes: 1, max_gpus: 8, max_fleet_percent: 25%}

Nothing about a deployment is hard-coded: namespaces and label selectors default to the EKS add-ons
(`kube-system`, `k8s-app=dcgm-server`, `name=nvidia-device-plugin-ds`); `selectors: {preset: gpu-operator}`
switches to the NVIDIA GPU Operator's (`gpu-operator` namespace, `app=nvidia-dcgm`, ...), and each selector
can be overridden on its own. A production target must carry an allowlist and caps, and runs in real time.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.strict.jsonschema import json_schema_for
from harness.strict.model import NAME_PATTERN, StrictModel, raise_at
from harness.strict.params import BlastRadius
from harness.strict.problems import ScenarioError
from harness.strict.yamlsafe import DEFAULT_LIMITS, Limits, parse_yaml, read_bounded, validate_document

TARGETS_ENV = "G7CHAOS_TARGETS"
DEFAULT_TARGETS_PATH = Path("targets.yaml")
BUILTIN_TARGETS = ("twin",)
URL_PATTERN = r"^https?://[^\s/$.?#][^\s]*$"
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$"
ACCOUNT_PATTERN = r"^\d{12}$"
CONTEXT_PATTERN = r"^[A-Za-z0-9_.:@/\-]{1,253}$"
LABEL_SELECTOR_PATTERN = r"^[A-Za-z0-9_./\-]+(\s*(=|==|!=)\s*[A-Za-z0-9_.\-]*)?(\s*,\s*[A-Za-z0-9_./\-]+(\s*(=|==|!=)\s*[A-Za-z0-9_.\-]*)?)*$"
NAMESPACE_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Environment = Literal["dev", "staging", "production"]


class AwsCredentials(StrictModel):
    """Where AWS credentials come from. The file names a source, never a key: keys would end up in git."""

    source: Literal["default", "profile", "env", "twin"] = Field(
        "default", description="default chain, a named profile, AWS_* env vars only, or the twin's dummy keys")
    profile: str | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _profile_iff_source(self) -> AwsCredentials:
        if self.source == "profile" and not self.profile:
            raise PydanticCustomError("profile_required", "credentials source 'profile' needs 'profile: <name>'")
        if self.source != "profile" and self.profile:
            raise PydanticCustomError("profile_unused", "'profile' only applies to 'source: profile'")
        return self


class AwsSpec(StrictModel):
    region: str = Field(..., pattern=REGION_PATTERN)
    endpoint_url: str | None = Field(None, pattern=URL_PATTERN, max_length=2048,
                                     description="one endpoint for every service (e.g. a local emulator)")
    endpoints: dict[str, str] = Field(default_factory=dict, max_length=32,
                                      description="per-service endpoints by boto3 service name")
    credentials: AwsCredentials = Field(default_factory=AwsCredentials)
    account_id: str | None = Field(None, pattern=ACCOUNT_PATTERN, description="the account this target must be")

    @field_validator("account_id", mode="before")
    @classmethod
    def _quoted_account(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError("an AWS account id must be quoted in YAML (\"012345678901\"): as a number it loses "
                             "leading zeros")
        return value
    fis_role_arn: str | None = Field(None, max_length=2048, pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@/_-]+$")

    @field_validator("endpoints")
    @classmethod
    def _endpoint_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for service, url in value.items():
            if not re.match(r"^[a-z0-9-]{2,64}$", service):
                raise ValueError(f"{service!r} is not a boto3 service name")
            if not re.match(URL_PATTERN, url) or len(url) > 2048:
                raise ValueError(f"endpoint for {service!r} must be an http(s) URL")
        return value


class Allowlist(StrictModel):
    """What a run against this target may touch. Empty lists mean: the target's own contexts and region."""

    contexts: list[str] = Field(default_factory=list, max_length=64)
    aws_accounts: list[str] = Field(default_factory=list, max_length=64)
    regions: list[str] = Field(default_factory=list, max_length=32)

    @field_validator("aws_accounts", mode="before")
    @classmethod
    def _accounts(cls, value: Any) -> Any:
        for account in value if isinstance(value, list) else []:
            if not isinstance(account, str) or not re.match(ACCOUNT_PATTERN, account):
                raise ValueError(f"{account!r} is not a 12-digit AWS account id (quote it in YAML)")
        return value

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        for region in value:
            if not re.match(REGION_PATTERN, region):
                raise ValueError(f"{region!r} is not an AWS region")
        return value


class WorkloadSelector(StrictModel):
    namespace: str = Field(..., pattern=NAMESPACE_PATTERN)
    label_selector: str = Field(..., max_length=512, pattern=LABEL_SELECTOR_PATTERN)


PRESETS: dict[str, dict[str, WorkloadSelector]] = {
    "eks-addons": {
        "dcgm": WorkloadSelector(namespace="kube-system", label_selector="k8s-app=dcgm-server"),
        "device_plugin": WorkloadSelector(namespace="kube-system", label_selector="name=nvidia-device-plugin-ds"),
        "dcgm_exporter": WorkloadSelector(namespace="kube-system",
                                          label_selector="app.kubernetes.io/name=dcgm-exporter"),
    },
    "gpu-operator": {
        "dcgm": WorkloadSelector(namespace="gpu-operator", label_selector="app=nvidia-dcgm"),
        "device_plugin": WorkloadSelector(namespace="gpu-operator", label_selector="app=nvidia-device-plugin-daemonset"),
        "dcgm_exporter": WorkloadSelector(namespace="gpu-operator", label_selector="app=nvidia-dcgm-exporter"),
    },
}
"""Where the NVIDIA components live: EKS add-ons (default) or the NVIDIA GPU Operator."""


class Selectors(StrictModel):
    """Namespaces and label selectors of the pods the harness talks to. Unset ones come from `preset`."""

    preset: Literal["eks-addons", "gpu-operator"] = "eks-addons"
    dcgm: WorkloadSelector | None = Field(None, description="DCGM pods (dcgmi inject runs here)")
    device_plugin: WorkloadSelector | None = None
    dcgm_exporter: WorkloadSelector | None = None
    dcgm_exporter_port: int = Field(9400, ge=1, le=65535)
    inference: WorkloadSelector = WorkloadSelector(namespace="inference", label_selector="app=triton")
    node_monitoring_agent: WorkloadSelector = WorkloadSelector(
        namespace="kube-system", label_selector="app.kubernetes.io/name=eks-node-monitoring-agent")

    @model_validator(mode="after")
    def _fill_from_preset(self) -> Selectors:
        for name, default in PRESETS[self.preset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)   # frozen model: filled once, at validation
        return self


_ALARM_METRICS = {
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "ecc_dbe",
    "DCGM_FI_DEV_GPU_TEMP": "gpu_temperature",
}
# The CloudWatch agent's EFA metrics (its `efa` section, namespace CWAgent, delta values): FIDELITY EFA-4.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-EFA.html
CWAGENT_EFA_METRICS = frozenset({
    "efa_tx_bytes", "efa_rx_bytes", "efa_tx_pkts", "efa_rx_pkts", "efa_rx_dropped", "efa_send_bytes",
    "efa_send_wrs", "efa_recv_bytes", "efa_recv_wrs", "efa_rdma_read_bytes", "efa_rdma_read_resp_bytes",
    "efa_rdma_read_wrs", "efa_rdma_read_wr_err", "efa_rdma_write_bytes", "efa_rdma_write_recv_bytes",
    "efa_rdma_write_wrs", "efa_rdma_write_wr_err", "efa_retrans_bytes", "efa_retrans_pkts",
    "efa_retrans_timeout_events", "efa_impaired_remote_conn_events", "efa_unresponsive_remote_events"})
_TEMPLATE_RE = re.compile(r"^([^{}]|\{cluster\})*$")


class AlarmNames(StrictModel):
    """CloudWatch alarm names per cluster; `{cluster}` is the only placeholder (no format expressions)."""

    ecc_dbe: str = Field("{cluster}-gpu-ecc-dbe", max_length=255)
    gpu_temperature: str = Field("{cluster}-gpu-temperature", max_length=255)
    efa_errors: str = Field("{cluster}-efa-errors", max_length=255)
    efa_metric: str = Field("efa_retrans_pkts", description="the CloudWatch agent EFA metric (namespace `efa_namespace`) "
                            "the EFA alarm watches, e.g. efa_retrans_pkts or efa_rdma_read_wr_err")
    efa_namespace: str = Field("CWAgent", max_length=255, description="the CloudWatch agent's namespace")

    @field_validator("efa_metric")
    @classmethod
    def _agent_efa_metric(cls, value: str) -> str:
        if value not in CWAGENT_EFA_METRICS:
            raise ValueError(f"{value!r} is not an EFA metric the CloudWatch agent exports "
                             f"(one of {', '.join(sorted(CWAGENT_EFA_METRICS))})")
        return value

    @field_validator("ecc_dbe", "gpu_temperature", "efa_errors")
    @classmethod
    def _only_cluster_placeholder(cls, value: str) -> str:
        if not _TEMPLATE_RE.match(value):
            raise ValueError("the only placeholder allowed is {cluster}")
        return value

    def for_metric(self, metric: str, cluster: str) -> str | None:
        """The alarm watching `metric` in `cluster`, or None for a metric with no configured alarm."""
        attribute = _ALARM_METRICS.get(metric)
        if attribute is None and metric in CWAGENT_EFA_METRICS:
            attribute = "efa_errors"     # any agent EFA metric names the target's one EFA alarm (on `efa_metric`)
        return getattr(self, attribute).replace("{cluster}", cluster) if attribute else None


class LoadBalancerSpec(StrictModel):
    name: str = Field("g7-inference", max_length=32)
    target_groups: dict[str, str] = Field(default_factory=dict, max_length=16,
                                          description="zone -> target group name; empty = discover from the NLB")


class TargetSpec(StrictModel):
    """One deployment the harness may run against."""

    name: str = Field(..., pattern=NAME_PATTERN)
    description: str | None = Field(None, max_length=2000)
    environment: Environment
    kubeconfig: str = Field(..., min_length=1, max_length=4096)
    contexts: list[str] = Field(..., min_length=1, max_length=16, description="kube contexts, one per cluster")
    aws: AwsSpec
    inference_url: str = Field(..., pattern=URL_PATTERN, max_length=2048)
    served_by_headers: list[str] = Field(
        default_factory=lambda: ["x-served-by-pod", "x-served-by-node", "x-served-by-az"], max_length=8)
    load_master: str | None = Field(
        None, pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$",
        description="HOST:PORT the load master binds when a scenario expects remote workers (`g7chaos load-worker "
                    "--master` joins there); default: a free loopback port, for local workers only")
    time_scale: float = Field(1.0, gt=0, le=1000, description="deployment seconds per wall second (1 = real)")
    allowlist: Allowlist = Field(default_factory=Allowlist)
    caps: BlastRadius = Field(default_factory=BlastRadius)
    selectors: Selectors = Field(default_factory=Selectors)
    alarms: AlarmNames = Field(default_factory=AlarmNames)
    load_balancer: LoadBalancerSpec = Field(default_factory=LoadBalancerSpec)
    harness_namespace: str = Field("g7chaos", pattern=NAMESPACE_PATTERN,
                                   description="the namespace the harness creates its own pods in (the freeze helper, "
                                   "nccl-tests launcher and workers); deploy/rbac.yaml grants pod creation there and nowhere "
                                   "else")
    twin_flaky_api: float = Field(0.0, ge=0, lt=1, description="built-in twin only: the fraction of Kubernetes and "
                                  "AWS API calls its control plane fails (`g7chaos twin up --flaky-api`)")

    @field_validator("contexts")
    @classmethod
    def _contexts(cls, value: list[str]) -> list[str]:
        for context in value:
            if not re.match(CONTEXT_PATTERN, context):
                raise ValueError(f"{context!r} is not a kube context name")
        if len(set(value)) != len(value):
            raise ValueError("contexts are listed twice")
        return value

    @model_validator(mode="after")
    def _guardrails_are_consistent(self) -> TargetSpec:
        allowed = self.allowlist
        if allowed.contexts:
            outside = [c for c in self.contexts if c not in allowed.contexts]
            if outside:
                raise PydanticCustomError("context_not_allowlisted", "contexts {outside} are not in allowlist.contexts",
                                          {"outside": ", ".join(outside)})
        if allowed.regions and self.aws.region not in allowed.regions:
            raise PydanticCustomError("region_not_allowlisted", "aws.region {region} is not in allowlist.regions",
                                      {"region": self.aws.region})
        if self.aws.account_id and allowed.aws_accounts and self.aws.account_id not in allowed.aws_accounts:
            raise PydanticCustomError("account_not_allowlisted", "aws.account_id is not in allowlist.aws_accounts")
        if self.twin_flaky_api and self.aws.credentials.source != "twin":
            raise PydanticCustomError("flaky_api_twin_only", "twin_flaky_api is a mode of the built-in twin target")
        if self.environment == "production":
            missing = [name for name, value in (("allowlist.contexts", allowed.contexts),
                                                ("allowlist.aws_accounts", allowed.aws_accounts),
                                                ("allowlist.regions", allowed.regions)) if not value]
            if self.caps.max_nodes is None and self.caps.max_fleet_percent is None:
                missing.append("caps.max_nodes or caps.max_fleet_percent")
            if missing:
                raise PydanticCustomError("production_guardrails", "a production target must set {missing}",
                                          {"missing": ", ".join(missing)})
            if self.time_scale != 1.0:
                raise PydanticCustomError("production_time_scale", "a production target runs in real time: "
                                          "time_scale must be 1")
            if self.aws.credentials.source == "twin":
                raise PydanticCustomError("production_twin_credentials",
                                          "a production target cannot use the twin's dummy credentials")
        return self

    def kubeconfig_path(self) -> Path:
        return Path(os.path.expanduser(self.kubeconfig))


class TargetsFile(StrictModel):
    """`targets.yaml`: a mapping from target name to its spec (the key is the name)."""

    targets: dict[str, TargetSpec] = Field(..., max_length=256)

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
            return data
        targets = {}
        for key, spec in data["targets"].items():
            if isinstance(spec, dict):
                if key in BUILTIN_TARGETS:
                    raise_at(("targets", key), "builtin_target", f"{key!r} is the built-in target; choose another name",
                             key)
                if "name" not in spec:
                    spec = {**spec, "name": key}
                elif spec["name"] != key:
                    raise_at(("targets", key, "name"), "name_mismatch",
                             f"name {spec['name']!r} differs from its key {key!r}; omit it", spec["name"])
            targets[key] = spec
        return {**data, "targets": targets}


def targets_path(explicit: Path | str | None = None) -> Path:
    """The targets file to read: explicit, else $G7CHAOS_TARGETS, else ./targets.yaml."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(TARGETS_ENV) or DEFAULT_TARGETS_PATH)


def load_targets_text(text: str, source: str = "<targets>", limits: Limits = DEFAULT_LIMITS,
                      base_dir: Path | None = None) -> dict[str, TargetSpec]:
    """Validate targets YAML; relative kubeconfig paths are resolved against `base_dir`."""
    document = parse_yaml(text, source, limits)
    parsed: TargetsFile = validate_document(TargetsFile, document, "targets")
    specs = {}
    for name, spec in parsed.targets.items():
        kubeconfig = os.path.expanduser(spec.kubeconfig)
        if base_dir is not None and not os.path.isabs(kubeconfig):
            kubeconfig = str((base_dir / kubeconfig).resolve())
        specs[name] = spec.model_copy(update={"kubeconfig": kubeconfig})
    return specs


def load_targets(path: Path | str | None = None, limits: Limits = DEFAULT_LIMITS) -> dict[str, TargetSpec]:
    file = targets_path(path)
    return load_targets_text(read_bounded(file, limits), str(file), limits, base_dir=file.parent)


def find_target_spec(name: str, path: Path | str | None = None) -> TargetSpec:
    """One named target from targets.yaml, or a clear exit-2 error listing the known names."""
    file = targets_path(path)
    if not file.exists():
        raise ScenarioError.at(str(file), 1, 1, f"target {name!r} requested but {file} does not exist "
                                                f"(set {TARGETS_ENV} or pass the targets file)")
    specs = load_targets(file)
    if name not in specs:
        known = ", ".join([*BUILTIN_TARGETS, *specs]) or "none"
        raise ScenarioError.at(str(file), 1, 1, f"unknown target {name!r}; known: {known}")
    return specs[name]


def targets_json_schema() -> dict[str, Any]:
    return json_schema_for(TargetsFile, [], "g7chaos targets")
