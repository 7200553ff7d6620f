"""Durations and percentages: what SREs write must mean what they say; anything ambiguous is refused."""
from __future__ import annotations

import math

import pytest

from harness.strict.units import format_duration, parse_duration, parse_percentage


@pytest.mark.parametrize("text,seconds", [
    ("90s", 90.0), ("2m", 120.0), ("1h", 3600.0), ("500ms", 0.5), ("1.5m", 90.0), (" 30s ", 30.0),
    (45, 45.0), (0.25, 0.25), ("12", 12.0), ("0s", 0.0),
])
def test_duration_accepts(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    "2 minutes", "-5s", -1, "1d", "ms", "", "1e3s", True, None, [1], math.inf, math.nan, "2m30s", "8d", 10**9,
    "9" * 40,
])
def test_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text,fraction", [("0.5%", 0.005), ("20%", 0.2), ("100%", 1.0), (0.005, 0.005), (0, 0.0),
                                           ("0.2", 0.2), (1, 1.0)])
def test_percentage_accepts(text, fraction):
    assert parse_percentage(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["150%", 5, "-1%", "abc", True, "0.5 percent", math.nan, None])
def test_percentage_rejects(text):
    with pytest.raises(ValueError):
        parse_percentage(text)


def test_a_bare_number_above_one_says_how_to_write_it():
    with pytest.raises(ValueError, match=r"write 5% or 0.05"):
        parse_percentage(5)


@pytest.mark.parametrize("seconds,text", [(120.0, "2m"), (90.0, "90s"), (0.5, "500ms"), (3600.0, "1h")])
def test_format_duration_round_trips(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == seconds
