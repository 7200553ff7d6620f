"""The scenario file schema: strict, declarative, and the single source of the JSON Schema.

Every model forbids unknown keys (`harness.strict.model.StrictModel`), because a misspelt key that is silently
ignored (`ttft_p9: 100ms`) turns a gate into a rubber stamp. Names of faults and checks are contract
(docs/CONTRACTS.md section 1).

Time. Scenario durations (`duration`, `at`, a fault's `duration`, checks' `within`, `stop_when ... for`,
fault parameters such as a spot notice) are *deployment time*, stated as they would last on AWS; the
runner divides them by the target's time scale. Load-side durations (`load.timeout`,
`load.stall_timeout`, `load.canary.every`) are *wall-clock* and never scaled, because inference latency
is real on every target.

Faults and checks. A fault step names one fault and a check entry one check; their parameters are validated
by the model the fault's or check's own module declares (`params_model`), found through the registries
(`FAULT_PARAMS` and `CHECK_PARAMS` are live name -> model views of `harness.faults.FAULTS` and
`harness.checks.CHECKS`). This module imports both packages, which load every fault and check module, so a
scenario that loads at all was validated against every registered fault and check. Adding a fault is one
module in harness/faults/ (see harness/faults/__init__.py), a check one module in harness/checks/; nothing
here changes. A fault or check registered from elsewhere (a plug-in, a test's toy) is seen by validation,
`g7chaos schema` and `g7chaos list` from the moment its module is imported.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, Field, PlainSerializer, SerializeAsAny, ValidationError,
                      WithJsonSchema, model_serializer, model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from harness.checks import CHECK_PARAMS
from harness.faults import FAULT_PARAMS
from harness.load.spec import RETRY_KINDS, RetryKind
from harness.scenario.stopwhen import StopCondition, coerce_stop_condition
from harness.strict.model import NAME_PATTERN, StrictModel, raise_at
from harness.strict.params import (ARTICLE_TBT_P99_S, ARTICLE_TTFT_P99_S, MAX_FAULTS, BlastRadius, CheckParams,
                                   FaultParams, NodeSelector)
from harness.strict.units import Duration, Percentage

MAX_CHECKS = 64
MAX_STOP_CONDITIONS = 16


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
    remote_workers: int = Field(0, ge=0, le=64, description="workers on other hosts (`g7chaos load-worker --master "
                                "HOST:PORT`, the target's load_master) the run waits for, beside the local ones")

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


# -------------------------------------------------------------------------------------------- steps


_FAULT_STEP_KEYS = ("at", "duration")


def _validate_named_params(registry: Mapping[str, type[StrictModel]], name: str, raw: Any) -> StrictModel:
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


def _split_single_key(kind: str, registry: Mapping[str, type[StrictModel]], data: Any,
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
