"""Durations and percentages as people write them in scenario files.

Scenario files are written by SREs, so `90s`, `2m` and `0.5%` must mean what they say, and anything
ambiguous is refused rather than guessed: a bare number is seconds (a duration) or a fraction (a
percentage), a number above 1 where a fraction is expected is an error that says how to write it, and
booleans never sneak in as numbers (YAML turns `yes` into True, and True is an int in Python).

Durations are kept in seconds as floats. Whether they are deployment time (scaled by the target's
time scale) or wall-clock time (load-side timeouts, never scaled) is decided by the field, not the type.
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

MAX_DURATION_S = 7 * 24 * 3600.0   # a week: nothing a game day waits for is longer
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_PERCENT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_NUMBER_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")


def _finite_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def parse_duration(value: Any) -> float:
    """`500ms`, `90s`, `2m`, `1h` or a plain number of seconds -> seconds (float, >= 0)."""
    seconds: float | None
    if isinstance(value, str):
        if len(value) > 32:
            raise ValueError("duration too long to be a duration; write e.g. 90s, 2m, 500ms")
        match = _DURATION_RE.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
        elif _NUMBER_RE.match(value):
            seconds = float(value)
        else:
            raise ValueError(f"invalid duration {value!r}; write a number with a unit: 500ms, 90s, 2m, 1h")
    else:
        seconds = _finite_number(value)
        if seconds is None:
            raise ValueError(f"invalid duration {value!r}; write a number with a unit: 500ms, 90s, 2m, 1h")
    if seconds < 0:
        raise ValueError("duration must not be negative")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"duration {value!r} is longer than a week")
    return seconds


def parse_percentage(value: Any) -> float:
    """`0.5%` or a fraction `0.005` -> fraction in [0, 1]."""
    fraction: float | None
    if isinstance(value, str):
        if len(value) > 32:
            raise ValueError("percentage too long; write e.g. 0.5% or 0.005")
        match = _PERCENT_RE.match(value)
        if match:
            fraction = float(match.group(1)) / 100.0
        elif _NUMBER_RE.match(value):
            fraction = float(value)
        else:
            raise ValueError(f"invalid percentage {value!r}; write 0.5% or the fraction 0.005")
    else:
        fraction = _finite_number(value)
        if fraction is None:
            raise ValueError(f"invalid percentage {value!r}; write 0.5% or the fraction 0.005")
    if fraction < 0:
        raise ValueError("percentage must not be negative")
    if fraction > 1:
        raise ValueError(f"{value!r} is more than 100%; a bare number is a fraction: write {value}% or {fraction / 100:g}")
    return fraction


def format_duration(seconds: float) -> str:
    """Shortest exact spelling, for messages and round trips (`120.0` -> `2m`)."""
    for unit, factor in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= factor and (seconds / factor).is_integer():
            return f"{int(seconds / factor)}{unit}"
    millis = seconds * 1000.0
    return f"{millis:g}ms"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
            {"type": "number", "minimum": 0},
        ],
        "description": "duration: 500ms, 90s, 2m, 1h, or a number of seconds",
    }),
]
"""Seconds, written as `90s`/`2m`/`500ms`/`1h` or a number of seconds."""

Percentage = Annotated[
    float,
    BeforeValidator(parse_percentage),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"},
            {"type": "number", "minimum": 0, "maximum": 1},
        ],
        "description": "percentage: 0.5% or the fraction 0.005",
    }),
]
"""A fraction in [0, 1], written as `0.5%` or `0.005`."""
