"""The small parsers and selectors the AWS behaviour rests on."""
from __future__ import annotations

import random

import pytest

from harness.twin.aws.fis import parse_duration, select, walk
from harness.twin.aws.hooks import node_name_for_ip
from harness.twin.aws.twin import az_short
from harness.twin.aws.zonal_shift import az_id, parse_expires_in


@pytest.mark.parametrize("text, seconds", [("PT2M", 120), ("PT15M", 900), ("PT1H30M", 5400), ("PT90S", 90),
                                           ("P1D", 86400), ("pt0.5s", 0.5)])
def test_iso_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2m", "PT", "P", "PT2X", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_selection_modes() -> None:
    items = [f"i-{n}" for n in range(10)]
    assert select(items, "ALL", random.Random(1)) == items
    assert len(select(items, "COUNT(3)", random.Random(1))) == 3
    assert len(select(items, "PERCENT(25)", random.Random(1))) == 3      # rounded up
    assert select(items, "COUNT(2)", random.Random(5)) == select(items, "COUNT(2)", random.Random(5))
    with pytest.raises(ValueError):
        select(items, "COUNT(11)", random.Random(1))
    with pytest.raises(ValueError):
        select(items, "SOME", random.Random(1))


def test_filter_paths_flatten_lists() -> None:
    record = {"Placement": {"AvailabilityZone": "us-east-2a"}, "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b"}]}
    assert walk(record, ["Placement", "AvailabilityZone"]) == ["us-east-2a"]
    assert walk(record, ["Tags", "Key"]) == ["a", "b"]
    assert walk(record, ["Nope"]) == []


def test_names() -> None:
    assert az_id("us-east-2a") == "use2-az1" and az_id("us-east-2b") == "use2-az2"
    assert az_short("us-east-2b") == "use2b"
    assert node_name_for_ip("10.0.16.4", "us-east-2") == "ip-10-0-16-4.us-east-2.compute.internal"
    assert parse_expires_in("30m") == 1800 and parse_expires_in("2h") == 7200
    for bad in ("30", "0m", "73h", "1d"):
        with pytest.raises(ValueError):
            parse_expires_in(bad)
