"""Prometheus text exposition: parsed with the library the format's owners maintain."""
from __future__ import annotations

from typing import Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def parse_samples(text: str) -> Iterator[Sample]:
    for family in text_string_to_metric_families(text):
        yield from family.samples
