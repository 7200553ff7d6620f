"""The scenario file schema: strict, declarative, and the single source of the JSON Schema.

Every model forbids unknown keys, because a misspelt key that is silently ignored (`ttft_p9: 100ms`)
turns a gate into a rubber stamp. Names of faults and checks are contract (docs/CONTRACTS.md section 1).

Time. Scenario durations (`duration`, `at`, a fault's `duration`, checks' `within`, `stop_when ... for`,
fault parameters such as a spot notice) are *deployment time*, stated as they would last on AWS; the
runner divides them by the target's time scale. Load-side durations (`load.timeout`,
`load.stall_timeout`, `load.canary.every`) are *wall-clock* and never scaled, because inference latency
is real on every target.

Extending. Faults and checks are looked up by name in two plain dicts, `FAULT_PARAMS` and
`CHECK_PARAMS` (name -> pydantic params model). A fault or check module that needs parameters of its own
registers them before scenarios are loaded::

    from harness.scenario.model import CHECK_PARAMS, StrictModel
    class MyCheckParams(StrictModel):
        within: Duration = 60.0
    CHECK_PARAMS["my-check"] = MyCheckParams

Validation reads the dicts at validation time, and `harness.scenario.schema` reads them when it builds
the JSON Schema, so nothing else has to be rebuilt.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, SerializeAsAny,
                      ValidationError, WithJsonSchema, field_validator, model_serializer, model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from harness.load.spec import RETRY_KINDS, RetryKind
from harness.scenario.stopwhen import StopCondition, coerce_stop_condition
from harness.scenario.units import Duration, Percentage

MAX_FAULTS = 32
MAX_CHECKS = 64
MAX_STOP_CONDITIONS = 16
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"
ARTICLE_TTFT_P99_S = 0.5     # the article's SLOs (docs/CONTRACTS.md section 1)
ARTICLE_TBT_P99_S = 0.05


class StrictModel(BaseModel):
    """Base of every scenario model: unknown keys are errors, NaN/inf are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=4096)


# ---------------------------------------------------------------------------------------------- load


class Retries(StrictModel):
    """Client retries with the same Idempotency-Key (tenacity in the load process). The kinds are the load
    process's own (`harness.load.spec.RetryKind`): a kind it cannot retry is refused here, at validation."""

    attempts: int = Field(3, ge=1, le=10, description="total attempts including the first")
    on: list[RetryKind] = Field(
        default_factory=lambda: ["timeout", "5xx"], max_length=len(RETRY_KINDS),
        description="failure kinds retried; stall = a stream that stopped mid-way (no event for stall_timeout); "
                    "truncated = a stream closed before its terminator (its node died)")


class Canary(StrictModel):
    """Fixed prompts at temperature 0 whose answers are learned in steady state and compared afterwards."""

    every: Duration = Field(2.0, gt=0, description="wall-clock interval between canary requests")
    prompts: int = Field(4, ge=1, le=64, description="how many distinct canary prompts")


class Conversations(StrictModel):
    """Multi-turn conversations (session continuity: follow-ups should reuse the replica's KV cache)."""

    turns: int = Field(4, ge=2, le=64)
    share: Percentage = Field(1.0, description="share of users that hold conversations")


class LoadSection(StrictModel):
    """A scenario's `load:` section: streaming inference load in the scenario's units. `timeout`, `stall_timeout`
    and `canary.every` are wall-clock. The load process runs `harness.load.spec.LoadSpec`, built from this one by
    `harness.scenario.loadspec.to_load_spec`."""

    users: int = Field(32, ge=1, le=10_000, description="concurrent users (closed loop) or max in flight (poisson)")
    spawn_rate: float = Field(8.0, gt=0, le=10_000, description="users started per second")
    arrival: Literal["closed", "poisson"] = "closed"
    rate: float | None = Field(None, gt=0, le=100_000, description="requests/s, required for poisson arrivals")
    model: str | None = Field(None, min_length=1, max_length=256,
                              description="`model` of each request; default: the load generator's (the 13B model)")
    prompt_tokens: int = Field(256, ge=1, le=131_072)
    max_tokens: int = Field(128, ge=1, le=32_768)
    chat: bool = False
    idempotency_keys: bool = True
    retries: Retries = Field(default_factory=Retries)
    timeout: Duration = Field(30.0, gt=0, le=3600, description="wall-clock request timeout")
    stall_timeout: Duration = Field(5.0, gt=0, le=3600, description="wall-clock gap without an event = stall")
    canary: Canary | None = None
    conversations: Conversations | None = None
    workers: int = Field(1, ge=1, le=64, description="Locust worker processes (master/worker mode when > 1)")

    @model_validator(mode="after")
    def _rate_matches_arrival(self) -> LoadSection:
        if self.arrival == "poisson" and self.rate is None:
            raise PydanticCustomError("missing_rate", "poisson arrival needs 'rate' (requests per second)")
        if self.arrival == "closed" and self.rate is not None:
            raise PydanticCustomError("rate_without_poisson", "'rate' only applies to 'arrival: poisson'")
        return self


class SteadyState(StrictModel):
    """What must hold before any fault is injected and again after recovery."""

    ttft_p99: Duration = Field(ARTICLE_TTFT_P99_S, gt=0)
    tbt_p99: Duration = Field(ARTICLE_TBT_P99_S, gt=0)
    error_rate: Percentage = 0.005
    warmup: Duration = Field(0.0, description="deployment time of load before the steady state is judged")


class BlastRadius(StrictModel):
    """Caps on what one fault may touch; the tighter of scenario and target caps applies."""

    max_nodes: int | None = Field(None, ge=0, le=100_000)
    max_gpus: int | None = Field(None, ge=0, le=1_000_000)
    max_fleet_percent: Percentage | None = None

    def tighter(self, other: BlastRadius | None) -> BlastRadius:
        """The caps that satisfy both (None = no cap on that axis)."""
        if other is None:
            return self

        def low(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else min(a, b)

        return BlastRadius(max_nodes=low(self.max_nodes, other.max_nodes),
                           max_gpus=low(self.max_gpus, other.max_gpus),
                           max_fleet_percent=low(self.max_fleet_percent, other.max_fleet_percent))

    def violations(self, nodes: int, gpus: int, fleet_nodes: int) -> list[str]:
        """Why touching `nodes` nodes holding `gpus` GPUs of a `fleet_nodes`-node fleet is refused (empty = allowed)."""
        problems = []
        if self.max_nodes is not None and nodes > self.max_nodes:
            problems.append(f"{nodes} nodes exceed max_nodes {self.max_nodes}")
        if self.max_gpus is not None and gpus > self.max_gpus:
            problems.append(f"{gpus} GPUs exceed max_gpus {self.max_gpus}")
        if self.max_fleet_percent is not None and fleet_nodes > 0 and nodes / fleet_nodes > self.max_fleet_percent:
            problems.append(f"{nodes}/{fleet_nodes} nodes ({100 * nodes / fleet_nodes:.1f}%) exceed "
                            f"max_fleet_percent {100 * self.max_fleet_percent:g}%")
        return problems


# -------------------------------------------------------------------------------------------- faults


class NodeSelector(StrictModel):
    """Which node(s) a fault hits. Resolution happens at run time through the Kubernetes API."""

    cluster: str | None = Field(None, max_length=128, description="kube context; default: any of the target's")
    zone: str | None = Field(None, max_length=64, description="topology.kubernetes.io/zone")
    nodegroup: str | None = Field(None, max_length=128, description="eks.amazonaws.com/nodegroup")
    model: str | None = Field(None, max_length=128,
                              description="only nodes running inference pods labelled model=<this>")
    pick: Literal["random", "first"] = "random"
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="seed for pick: random (default: the run's seed)")
    count: int = Field(1, ge=1, le=1000)


class FaultParams(StrictModel):
    """Base of every fault's parameters."""


GpuIndex = Annotated[int, Field(ge=0, le=7, description="GPU index on the node (0-7 on g7.48xlarge)")]


class EccDoubleBitErrorParams(FaultParams):
    """Exec `dcgmi test --inject --gpuid G -f FIELD -v 1 --offset 60` in the node's DCGM pod for each field, held
    while the fault lasts; revert with -v 0."""

    node: NodeSelector = Field(default_factory=NodeSelector)
    gpu: GpuIndex = 0
    fields: list[Literal[319, 311]] = Field(
        default_factory=lambda: [319, 311], min_length=1,
        description="319 (DCGM_FI_DEV_ECC_DBE_VOL_DEV) trips DCGM's DBE policy and the node condition; 311 "
                    "(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL) is the MEM health watch's and the alarm's metric")


class SpotInterruptionParams(FaultParams):
    """FIS `aws:ec2:send-spot-instance-interruptions` on the chosen spot instances.

    `notice` is FIS's durationBeforeInterruption: the time from the rebalance recommendation (sent at once) to
    the interruption; the interruption notice comes 2 minutes before the interruption. A notice longer than
    2m therefore always puts the recommendation first, and a scenario says so with `rebalance_first: true`."""

    node: NodeSelector = Field(default_factory=NodeSelector)
    notice: Duration = Field(120.0, ge=120, le=900, description="durationBeforeInterruption (2m..15m): time from "
                             "the rebalance recommendation to the interruption; the interruption notice comes 2m "
                             "before the interruption")
    rebalance_first: bool = Field(False, description="the rebalance recommendation comes (notice - 2m) before the "
                                  "interruption notice; needs a notice longer than 2m")

    @field_validator("notice", mode="wrap")
    @classmethod
    def _notice_in_fis_range(cls, value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            if any(e["type"] in ("greater_than_equal", "less_than_equal") for e in exc.errors()):
                raise PydanticCustomError(
                    "spot_notice_range", "notice is FIS durationBeforeInterruption, which AWS accepts only from 2m "
                    "to 15m (PT2M..PT15M)") from None
            raise

    @model_validator(mode="after")
    def _rebalance_first_matches_notice(self) -> "SpotInterruptionParams":
        if self.rebalance_first and self.notice <= 120:
            raise ValueError("rebalance_first needs a notice longer than 2m: FIS sends the rebalance recommendation "
                             "at once and the interruption notice 2m before the interruption, so with notice: 2m "
                             "both come together")
        if not self.rebalance_first and self.notice > 120:
            raise ValueError(f"notice {self.notice:.0f}s is longer than 2m, so FIS sends the rebalance "
                             "recommendation (notice - 2m) before the interruption notice: set rebalance_first: "
                             "true to say so, or use notice: 2m")
        return self


class AzLossParams(FaultParams):
    """FIS `aws:network:disrupt-connectivity` (scope all) on one AZ's subnets, or the power-interruption variant."""

    zone: str = Field(..., max_length=64)
    mode: Literal["network", "power"] = "network"
    zonal_shift: bool = Field(False, description="also start an ARC zonal shift away from the zone")


class DevicePluginRaceParams(FaultParams):
    """Reboot the node (FIS aws:ec2:reboot-instances) so the device plugin and the driver race at start.

    `method: plugin-restart` is refused: a device plugin restarted on a running node finds the driver already
    loaded and registers every GPU, whether or not the deployment gates it on the driver, so that method would
    pass exactly the deployment this fault exists to catch (docs/FIDELITY.md PLUGIN-1)."""

    node: NodeSelector = Field(default_factory=NodeSelector)
    method: Literal["reboot"] = "reboot"

    @field_validator("method", mode="before")
    @classmethod
    def _no_plugin_restart(cls, value: Any) -> Any:
        if value == "plugin-restart":
            raise PydanticCustomError(
                "method_cannot_race",
                "method plugin-restart cannot reproduce the race: on a running node the driver is already loaded, "
                "so a restarted device plugin registers every GPU even where nothing gates it on the driver; use "
                "method: reboot (FIS aws:ec2:reboot-instances), which restarts both")
        return value


class EfaSaturationParams(FaultParams):
    """A competing nccl-tests MPI job (all_reduce_perf) across the TP group's nodes, one worker per node
    requesting vpc.amazonaws.com/efa."""

    tp_group: str | None = Field(None, max_length=128, description="tp-group label; default: the first found")
    load: Percentage = Field(0.9, description="share of the fabric the competing traffic takes")
    image: str = Field("public.ecr.aws/hpc-cloud/nccl-tests:latest", max_length=512)
    kubectl_image: str = Field("docker.io/dtzar/helm-kubectl:3.15.0", max_length=512,
                               description="init container of the launcher (without the MPI operator): an image "
                               "with sh and kubectl, copied in for the kubectl-exec agent mpirun uses")


class ReplicaStallParams(FaultParams):
    """Hang serving replicas (their serving container's cgroup frozen from the node by a privileged helper pod;
    thawed on revert), or, mode `io`, stall them on I/O (FIS EBS latency or pause on their nodes' volumes; the
    experiment stopped on revert)."""

    model: str | None = Field(None, max_length=128, description="pods labelled model=<this>; default: any")
    zone: str | None = Field(None, max_length=64)
    count: Annotated[int, Field(ge=1, le=1000)] | Literal["all"] = Field(1, description="how many pods, or all that match")
    pick: Literal["random", "first"] = "random"
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    mode: Literal["before-first-token", "mid-stream", "io"] = "before-first-token"
    io_action: Literal["latency", "pause"] = Field(
        "latency", description="mode io: aws:ebs:volume-io-latency (slow I/O) or aws:ebs:pause-volume-io (none)")
    io_latency: Duration = Field(0.3, gt=0, le=60, description="mode io, latency: added to every read and write")
    container: str | None = Field(None, max_length=63, description="hang modes: the serving container to freeze; "
                                  "default: the pod's first container")
    helper_image: str = Field("public.ecr.aws/docker/library/busybox:1.36", max_length=512,
                              description="hang modes: image of the node helper pod (needs sh, cat, sleep)")
    health_port: int = Field(8000, ge=1, le=65535, description="hang modes: the serving port whose readiness "
                             "endpoint must go silent (Triton HTTP)")
    health_path: str = Field("v2/health/ready", max_length=256, pattern=r"^[A-Za-z0-9._~/-]+$",
                             description="hang modes: readiness path probed through the API server's pod proxy")

    @model_validator(mode="after")
    def _mode_fields(self) -> "ReplicaStallParams":
        hang_only = [f for f in ("container",) if getattr(self, f) is not None]
        if self.mode == "io" and hang_only:
            raise ValueError(f"{', '.join(hang_only)} applies to the hang modes (a frozen container), not mode io")
        return self


class GpuThermalThrottleParams(FaultParams):
    """DCGM field injection of GPU temperature above the 83 °C alarm and the matching SM clock."""

    node: NodeSelector = Field(default_factory=NodeSelector)
    gpu: GpuIndex | Literal["all"] = 0
    temperature: float = Field(90.0, gt=0, le=150, description="°C injected into DCGM_FI_DEV_GPU_TEMP")
    sm_clock_mhz: int | None = Field(None, ge=100, le=5000, description="throttled SM clock; default derived")


class NodeRebootParams(FaultParams):
    """FIS `aws:ec2:reboot-instances` on the chosen node's instance."""

    node: NodeSelector = Field(default_factory=NodeSelector)


FAULT_PARAMS: dict[str, type[FaultParams]] = {
    "ecc-double-bit-error": EccDoubleBitErrorParams,
    "spot-interruption": SpotInterruptionParams,
    "az-loss": AzLossParams,
    "device-plugin-race": DevicePluginRaceParams,
    "efa-saturation": EfaSaturationParams,
    "replica-stall": ReplicaStallParams,
    "gpu-thermal-throttle": GpuThermalThrottleParams,
    "node-reboot": NodeRebootParams,
}
"""Fault name (contract) -> parameter model. Fault modules may add entries before loading scenarios."""

_FAULT_STEP_KEYS = ("at", "duration")


def raise_at(loc: tuple[str | int, ...], error_type: str, message: str, value: Any) -> None:
    """Raise a one-error ValidationError at `loc` inside the value being validated, so the loader can point
    at the offending line rather than at the enclosing mapping."""
    raise ValidationError.from_exception_data(
        "Scenario", [InitErrorDetails(type=PydanticCustomError(error_type, message), loc=loc, input=value)])


def _validate_named_params(registry: dict[str, type[StrictModel]], name: str, raw: Any) -> StrictModel:
    """Validate one `{name: params}` entry so nested errors keep the full path (name, field, ...)."""
    model = registry[name]
    if raw is None:
        raw = {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        details = [InitErrorDetails(type=PydanticCustomError("named_params", "{message}", {"message": e["msg"]})
                                    if e["type"] not in _PASS_THROUGH_TYPES else e["type"],
                                    loc=(name, *e["loc"]), input=e.get("input"), ctx=e.get("ctx", {}))
                   for e in exc.errors()]
        raise ValidationError.from_exception_data(model.__name__, details) from None


_PASS_THROUGH_TYPES = {"extra_forbidden", "missing"}


def _split_single_key(kind: str, registry: dict[str, type[StrictModel]], data: Any,
                      fixed: tuple[str, ...]) -> tuple[str, Any]:
    if not isinstance(data, dict):
        raise PydanticCustomError("mapping_expected", f"each {kind} is a mapping such as {{{next(iter(registry))}: {{}}}}")
    names = [key for key in data if key not in fixed]
    for key in names:
        if key not in registry:
            raise_at((key,), "extra_forbidden", f"unknown {kind} {key!r}", data[key])
    if len(names) != 1:
        listed = ", ".join(repr(n) for n in names) or "none"
        raise PydanticCustomError("one_name", f"each {kind} entry names exactly one {kind}; found {listed}")
    return names[0], data[names[0]]


class FaultStep(StrictModel):
    """`at` (deployment time after load start) + exactly one fault key + optional `duration` before revert.

    In YAML: `{at: 2m, duration: 3m, ecc-double-bit-error: {gpu: 0}}`. In Python: `.fault` is the name,
    `.params` its validated parameter model.
    """

    at: Duration
    duration: Duration | None = Field(None, gt=0, description="how long the fault stays before it is reverted")
    fault: str
    params: SerializeAsAny[FaultParams]

    @classmethod
    def yaml_keys(cls) -> list[str]:
        return [*_FAULT_STEP_KEYS, *FAULT_PARAMS]

    @classmethod
    def yaml_child(cls, key: str | int) -> Any:
        return FAULT_PARAMS.get(key) if isinstance(key, str) else None   # type: ignore[call-overload]

    @model_validator(mode="before")
    @classmethod
    def _from_yaml_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and "fault" in data and "params" in data and isinstance(data["params"], BaseModel):
            return data   # already in the Python shape (model_copy, round trips)
        name, raw = _split_single_key("fault", FAULT_PARAMS, data, _FAULT_STEP_KEYS)
        if "at" not in data:
            raise_at(("at",), "missing", "Field required", data)
        params = _validate_named_params(FAULT_PARAMS, name, raw)
        return {"at": data["at"], "duration": data.get("duration"), "fault": name, "params": params}

    @model_serializer(mode="wrap")
    def _to_yaml_shape(self, handler: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"at": self.at}
        if self.duration is not None:
            out["duration"] = self.duration
        out[self.fault] = self.params.model_dump(mode="json")
        return out


# -------------------------------------------------------------------------------------------- checks


FaultRef = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)] | Annotated[int, Field(ge=0, lt=MAX_FAULTS)]


class CheckParams(StrictModel):
    """Base of every check's parameters.

    `faults` scopes a check to some of the scenario's faults, by kind (`[spot-interruption]`) or by position
    in `faults:` (`[1]`, counting from 0); unset, the check judges every fault it has a rule for."""

    faults: list[FaultRef] | None = Field(None, min_length=1, max_length=MAX_FAULTS,
                                          description="the faults this check judges: kinds or 0-based positions")


class FaultLandedParams(CheckParams):
    """The fault really landed (DCGM field reads back, notice seen, targets unhealthy). Not landed = error."""

    within: Duration = Field(60.0, gt=0)


class NodeDrainedParams(CheckParams):
    """Faulty node cordoned and its GPU pods evicted within the limit (and before a spot notice ends)."""

    within: Duration = Field(120.0, gt=0)


class NodeReplacedParams(CheckParams):
    """A replacement node joined and is Ready within the limit."""

    within: Duration = Field(600.0, gt=0)


class CapacityRestoredParams(CheckParams):
    """Allocatable nvidia.com/gpu back to the expected count, nodes Ready, within the limit."""

    within: Duration = Field(600.0, gt=0)


class NoCorruptedResponsesParams(CheckParams):
    """No canary answer differs from its golden answer once the deployment had the means to know of the fault
    (its landing; for a double-bit error, its landing plus one health-check probe); nothing served by the bad GPU
    after `within` (default: node-drained's limit)."""

    within: Duration | None = Field(None, gt=0)
    probe_interval: Duration | None = Field(None, gt=0, description="how often the deployment's canary health check "
                                            "runs; default: the longest HealthCheckIntervalSeconds of the target's "
                                            "load balancer target groups")
    min_canaries_after: int = Field(1, ge=1, le=1_000_000, description="canary answers needed once the deployment "
                                    "could know of each fault; fewer and the fault cannot be judged (inconclusive)")


class AlarmFiredParams(CheckParams):
    """A CloudWatch alarm on `metric` (or the alarm named `alarm`) is in ALARM within the limit."""

    metric: str = Field(..., min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_./:\-]+$")
    alarm: str | None = Field(None, max_length=255, description="alarm name; default: the target's alarm for metric")
    within: Duration = Field(60.0, gt=0)


class TrafficFailoverParams(CheckParams):
    """Share of requests served by the lost AZ falls to 0 within the limit; error budget holds meanwhile."""

    within: Duration = Field(60.0, gt=0)
    error_budget: Percentage = 0.05


class IdempotentRetriesParams(CheckParams):
    """No Idempotency-Key executed twice; replays identical.

    `min_retried_keys`: fewer retried keys than this and the check is inconclusive, not a pass (a run in which
    nothing was retried proves nothing about retries); 0 lets a scenario where retries are incidental pass."""

    min_retried_keys: int = Field(1, ge=0, le=1_000_000)


class SessionContinuityParams(CheckParams):
    """Follow-up turns after the fault do not pay a full re-prefill: TTFT ratio vs before stays below the cap."""

    max_ttft_ratio: float = Field(2.0, gt=0, le=1000)


class NoSilentCapacityLossParams(CheckParams):
    """No node with fewer allocatable GPUs than its instance type has, no Pending for Insufficient GPUs."""

    within: Duration = Field(300.0, gt=0)


Window = Literal["whole", "steady", "fault", "recovery", "each"]


class SloParams(CheckParams):
    """TTFT/TBT p99 and error rate judged on a window: whole run, steady state, during faults, recovery, or each."""

    ttft_p99: Duration = Field(ARTICLE_TTFT_P99_S, gt=0)
    tbt_p99: Duration = Field(ARTICLE_TBT_P99_S, gt=0)
    error_rate: Percentage = 0.01
    window: Window = "whole"


class RecoveryTimeParams(CheckParams):
    """Time from revert to steady state again is within the limit."""

    within: Duration = Field(300.0, gt=0)


CHECK_PARAMS: dict[str, type[CheckParams]] = {
    "fault-landed": FaultLandedParams,
    "node-drained": NodeDrainedParams,
    "node-replaced": NodeReplacedParams,
    "capacity-restored": CapacityRestoredParams,
    "no-corrupted-responses": NoCorruptedResponsesParams,
    "alarm-fired": AlarmFiredParams,
    "traffic-failover": TrafficFailoverParams,
    "idempotent-retries": IdempotentRetriesParams,
    "session-continuity": SessionContinuityParams,
    "no-silent-capacity-loss": NoSilentCapacityLossParams,
    "slo": SloParams,
    "recovery-time": RecoveryTimeParams,
}
"""Check name (contract) -> parameter model. Check modules may add entries before loading scenarios."""


class CheckStep(StrictModel):
    """A single-key mapping `{check-name: params}`; `{}` or null means the defaults."""

    check: str
    params: SerializeAsAny[CheckParams]

    @classmethod
    def yaml_keys(cls) -> list[str]:
        return list(CHECK_PARAMS)

    @classmethod
    def yaml_child(cls, key: str | int) -> Any:
        return CHECK_PARAMS.get(key) if isinstance(key, str) else None   # type: ignore[call-overload]

    @model_validator(mode="before")
    @classmethod
    def _from_yaml_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and "check" in data and "params" in data and isinstance(data["params"], BaseModel):
            return data
        name, raw = _split_single_key("check", CHECK_PARAMS, data, ())
        return {"check": name, "params": _validate_named_params(CHECK_PARAMS, name, raw)}

    @model_serializer(mode="wrap")
    def _to_yaml_shape(self, handler: Any) -> dict[str, Any]:
        return {self.check: self.params.model_dump(mode="json")}


# ------------------------------------------------------------------------------------------ scenario

StopWhen = Annotated[
    StopCondition,
    BeforeValidator(coerce_stop_condition),
    PlainSerializer(lambda condition: condition.text, return_type=str),
    WithJsonSchema({"type": "string", "maxLength": 256,
                    "pattern": r"^\s*(alarm:\S+(\s*==\s*ALARM)?|(error_rate|ttft_p99|tbt_p99)\s*(>=|<=|>|<)\s*"
                               r"[0-9.]+\s*(%|ms|s)?)(\s+for\s+[0-9.]+(ms|s|m|h))?\s*$",
                    "description": "<metric> <op> <value>[%|ms|s] [for <duration>]; metrics: error_rate, "
                                   "ttft_p99, tbt_p99, alarm:<name>"}),
]


class Scenario(StrictModel):
    """One chaos experiment: load, faults on a timeline, the checks that judge it, and when to abort."""

    name: str = Field(..., pattern=NAME_PATTERN, description="lower-case, digits and dashes")
    description: str = Field(..., min_length=1, max_length=2000)
    target: str | None = Field(None, pattern=NAME_PATTERN, description="'twin' or a name from targets.yaml")
    duration: Duration = Field(..., gt=0, description="deployment time the whole scenario lasts")
    load: LoadSection = Field(default_factory=LoadSection)
    steady_state: SteadyState = Field(default_factory=SteadyState)
    faults: list[FaultStep] = Field(..., min_length=1, max_length=MAX_FAULTS)
    checks: list[CheckStep] = Field(..., min_length=1, max_length=MAX_CHECKS)
    stop_when: list[StopWhen] = Field(default_factory=list, max_length=MAX_STOP_CONDITIONS)
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)

    @model_validator(mode="after")
    def _timeline_fits(self) -> Scenario:
        for index, step in enumerate(self.faults):
            if step.at >= self.duration:
                raise_at(("faults", index, "at"), "fault_after_end",
                          f"{step.fault} starts at {step.at:g}s, not before the scenario ends at {self.duration:g}s",
                          step.at)
            if step.duration is not None and step.at + step.duration > self.duration:
                raise_at(("faults", index, "duration"), "fault_outlasts_scenario",
                          f"{step.fault} lasts until {step.at + step.duration:g}s, after the scenario ends at "
                          f"{self.duration:g}s", step.duration)
            node = getattr(step.params, "node", None)
            cap = self.blast_radius.max_nodes
            if isinstance(node, NodeSelector) and cap is not None and node.count > cap:
                raise_at(("faults", index, step.fault, "node", "count"), "blast_radius",
                          f"selects {node.count} nodes, more than blast_radius.max_nodes {cap}", node.count)
        for index, step in enumerate(self.checks):
            for position, ref in enumerate(step.params.faults or []):
                if isinstance(ref, int) and ref >= len(self.faults):
                    raise_at(("checks", index, step.check, "faults", position), "no_such_fault",
                             f"there is no fault {ref}: this scenario's faults are 0..{len(self.faults) - 1}", ref)
                if isinstance(ref, str) and ref not in self.fault_names():
                    raise_at(("checks", index, step.check, "faults", position), "no_such_fault",
                             f"this scenario has no {ref} fault; its faults are {', '.join(self.fault_names())}", ref)
        return self

    def fault_names(self) -> list[str]:
        return [step.fault for step in self.faults]

    def check_names(self) -> list[str]:
        return [step.check for step in self.checks]


def _first_line(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())


def fault_descriptions() -> dict[str, str]:
    """Fault name -> one line on how it is injected (for `g7chaos list`)."""
    return {name: _first_line(model) for name, model in FAULT_PARAMS.items()}


def check_descriptions() -> dict[str, str]:
    """Check name -> one line on what it verifies (for `g7chaos list`)."""
    return {name: _first_line(model) for name, model in CHECK_PARAMS.items()}
