"""What load to drive: the one model a scenario's `load:` block becomes.

The scenario schema builds a `LoadSpec` from YAML; the load process serialises it to JSON for its
child processes, so every field is plain data. Durations here are wall-clock seconds: inference latency
is real even when the target compresses control-plane time.
"""
from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

_RetryKindName = Literal["timeout", "5xx", "stall", "truncated"]
#: The failure kinds the load generator can retry, as `locustfile` names an attempt's failure: `timeout` (no byte
#: in time, before or inside the stream), `5xx` (an HTTP 5xx answer), `stall` (a stream that went silent) and
#: `truncated` (a stream cut before its body ended). Any other failure (`4xx`, which includes 429, `connect`,
#: `no_done`, `error_event`) is final.
RETRY_KINDS: tuple[str, ...] = get_args(_RetryKindName)


def _known_retry_kind(value: object) -> object:
    """Refuse a kind the load generator does not retry, naming the ones it does: the scenario schema uses this
    type too, so `retries: {on: [429]}` is an error at its line in `g7chaos validate`, not when the load starts."""
    if not isinstance(value, str) or value not in RETRY_KINDS:
        raise PydanticCustomError("retry_kind", "the load generator does not retry on this; it retries on {kinds}",
                                  {"kinds": ", ".join(RETRY_KINDS)})
    return value


#: One failure kind a retry policy may name. The scenario schema's `retries.on` and `RetrySpec.on` are both
#: lists of it, so a scenario that validates is one the load process accepts.
RetryKind = Annotated[_RetryKindName, BeforeValidator(_known_retry_kind)]


class RetrySpec(BaseModel):
    """Retries of one logical request, always with the same Idempotency-Key.

    Why the same key: a gateway with an idempotency ledger must replay (not re-execute) a request it has
    already seen, and the `idempotent-retries` check can only judge that if the client behaves like a
    well-built one.
    """

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(3, ge=1, le=10, description="total attempts including the first")
    on: list[RetryKind] = Field(default_factory=lambda: ["timeout", "5xx"],
                                description="failure kinds that are retried")
    backoff_s: float = Field(0.05, ge=0, le=10, description="first back-off; doubles per attempt, with jitter")
    backoff_max_s: float = Field(1.0, ge=0, le=60, description="cap of one back-off")


class CanarySpec(BaseModel):
    """Fixed prompts at temperature 0 whose answers must not change.

    Their golden answer is learned from what the deployment answered during `learn_window` (the most
    common answer per prompt); any later answer that differs is a mismatch — the client-side evidence of
    silently corrupted output (e.g. a GPU with an uncorrectable ECC error).
    """

    model_config = ConfigDict(extra="forbid")

    every_s: float | None = Field(2.0, gt=0, description="one canary request per process this often; None = off")
    prompts: list[str] = Field(default_factory=lambda: [
        "Repeat after me: the quick brown fox jumps over the lazy dog.",
        "List the first ten prime numbers.",
        "Name the planets of the solar system in order.",
    ], min_length=1)
    max_tokens: int = Field(16, ge=1, le=4096)
    learn_window: str = Field("steady", description="window whose answers become the golden answers")


class LoadSpec(BaseModel):
    """Streaming inference load: who sends what, how often, and what counts as a failure."""

    model_config = ConfigDict(extra="forbid")

    users: int = Field(32, ge=1, le=20000, description="closed loop: concurrent users; poisson: max in flight, "
                       "and as many more arrivals may wait for a free user")
    spawn_rate: float = Field(8.0, gt=0, description="users started per second")
    arrival: Literal["closed", "poisson"] = Field(
        "closed", description="closed: each user sends again when its answer ends; poisson: open-loop arrivals")
    rate: float | None = Field(None, gt=0, description="poisson: mean requests per second over all workers")
    wait_s: float = Field(0.0, ge=0, description="closed loop: think time between a user's requests")

    model: str = Field("llama-13b-fp8", description="`model` field of each request")
    prompt_tokens: int = Field(256, ge=1, le=200000, description="approximate prompt length (one word ~ one token)")
    max_tokens: int = Field(128, ge=1, le=100000)
    temperature: float = Field(0.7, ge=0, le=2)
    chat: bool = Field(False, description="use /v1/chat/completions instead of /v1/completions")
    conversations: int = Field(0, ge=0, description="chat: users that hold multi-turn conversations (0 = none)")
    turns: int = Field(1, ge=1, le=100, description="chat: turns per conversation before a new one starts")
    session_header: str = Field("X-Session-Id", description="header naming the conversation (also sent as the "
                                "body's OpenAI `user` field), for sticky routing")

    idempotency_keys: bool = Field(True, description="send a fresh uuid4 Idempotency-Key per logical request")
    retries: RetrySpec = Field(default_factory=RetrySpec)
    timeout_s: float = Field(30.0, gt=0, description="whole-request deadline, first byte to [DONE]")
    connect_timeout_s: float = Field(5.0, gt=0)
    stall_timeout_s: float = Field(5.0, gt=0, description="no bytes for this long inside a stream = stall failure")
    canary: CanarySpec = Field(default_factory=CanarySpec)

    workers: int = Field(1, ge=1, le=64, description=">1: Locust master + this many worker processes")
    remote_workers: int = Field(0, ge=0, le=64, description="workers started elsewhere (`g7chaos load-worker "
                                "--master HOST:PORT`) that the master waits for, beside the local `workers`")
    join_timeout_s: float = Field(30.0, gt=0, description="how long the master waits for every worker to join")
    duration_s: float = Field(3600.0, gt=0, description="hard bound on the load loop, whatever the caller does")
    max_requests: int | None = Field(None, ge=1, description="hard bound on logical requests per process")
    seed: int = Field(0, description="prompt and arrival randomness")

    stamp_field: str | None = Field(
        "server_send_ts",
        description="if events carry this field (server send time, epoch seconds), record receive lag")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers (auth, routing)")

    lag_p99_limit_ms: float = Field(5.0, gt=0, description="own event-loop lag p99 above this = degraded")
    cpu_limit: float = Field(0.70, gt=0, le=1.0, description="own CPU share of one core above this = degraded")

    @model_validator(mode="after")
    def _poisson_needs_rate(self) -> "LoadSpec":
        if self.arrival == "poisson" and self.rate is None:
            raise ValueError("arrival: poisson needs rate (requests per second)")
        if self.conversations > self.users:
            raise ValueError("conversations cannot exceed users")
        return self

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.chat else "/v1/completions"
