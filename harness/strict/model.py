"""Strict models: the base of every model a person writes in YAML, and located errors raised while validating.

Every model forbids unknown keys, because a misspelt key that is silently ignored (`ttft_p9: 100ms`) turns a
gate into a rubber stamp.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"
"""Names of scenarios, targets, faults and checks: lower-case, digits and dashes."""


class StrictModel(BaseModel):
    """Base of every model read from a user's file: unknown keys are errors, NaN/inf are errors, values are
    immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=4096)


def raise_at(loc: tuple[str | int, ...], error_type: str, message: str, value: Any) -> None:
    """Raise a one-error ValidationError at `loc` inside the value being validated, so the loader can point
    at the offending line rather than at the enclosing mapping."""
    raise ValidationError.from_exception_data(
        "Scenario", [InitErrorDetails(type=PydanticCustomError(error_type, message), loc=loc, input=value)])
