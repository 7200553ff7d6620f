"""A scenario's `load:` section (`LoadSection`) -> the load process's own `LoadSpec` (harness.load.spec).

The scenario file speaks the user's language (`timeout: 30s`, `canary: {every: 2s, prompts: 4}`,
`conversations: {turns: 4, share: 50%}`); the load process wants plain wall-clock seconds and counts.
Keeping the translation here means neither schema bends to the other. Load-side durations are
wall-clock, so nothing is scaled by the target's time scale except the hard bound `duration_s`, which the
caller computes from the scenario's (deployment-time) duration.
"""
from __future__ import annotations

import math
from typing import Any

from harness.load.spec import CanarySpec, LoadSpec
from harness.scenario.model import LoadSection


def load_spec_fields(load: LoadSection, *, duration_s: float | None = None, seed: int | None = None,
                     model: str | None = None, default_prompts: list[str] | None = None) -> dict[str, Any]:
    """The keyword arguments of `harness.load.spec.LoadSpec` for a scenario's load block."""
    fields: dict[str, Any] = {
        "users": load.users,
        "spawn_rate": load.spawn_rate,
        "arrival": load.arrival,
        "rate": load.rate,
        "prompt_tokens": load.prompt_tokens,
        "max_tokens": load.max_tokens,
        "chat": load.chat or load.conversations is not None,
        "idempotency_keys": load.idempotency_keys,
        "retries": {"attempts": load.retries.attempts, "on": list(load.retries.on)},
        "timeout_s": load.timeout,
        "stall_timeout_s": load.stall_timeout,
        "workers": load.workers,
        "remote_workers": load.remote_workers,
    }
    if load.conversations is not None:
        fields["conversations"] = max(1, math.floor(load.users * load.conversations.share))
        fields["turns"] = load.conversations.turns
    if load.canary is None:
        fields["canary"] = {"every_s": None}
    else:
        canary: dict[str, Any] = {"every_s": load.canary.every}
        if default_prompts:
            canary["prompts"] = [default_prompts[i % len(default_prompts)] + ("" if i < len(default_prompts)
                                                                              else f" ({i})")
                                 for i in range(load.canary.prompts)]
        fields["canary"] = canary
    if duration_s is not None:
        fields["duration_s"] = duration_s
    if seed is not None:
        fields["seed"] = seed
    model = model if model is not None else load.model
    if model is not None:
        fields["model"] = model
    return fields


def to_load_spec(load: LoadSection, **kwargs: Any) -> LoadSpec:
    """Build `harness.load.spec.LoadSpec` (plain data: importing it never imports Locust)."""
    defaults = CanarySpec().prompts
    return LoadSpec.model_validate(load_spec_fields(load, default_prompts=defaults, **kwargs))
