"""Prometheus text exposition: parsed with the library the format's owners maintain."""
from __future__ import annotations

from typing import Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def parse_samples(text: str) -> Iterator[Sample]:
    """Samples under the names the exporter wrote: the library appends `_total` to every counter sample, which
    DCGM's own counter names (`DCGM_FI_DEV_ECC_DBE_VOL_TOTAL`) do not carry."""
    exposed = set(_exposed_names(text))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in exposed and sample.name.endswith("_total") and sample.name[:-6] in exposed:
                sample = sample._replace(name=sample.name[:-6])
            yield sample


def _exposed_names(text: str) -> Iterator[str]:
    for line in text.splitlines():
        if line and not line.startswith("#"):
            yield line.split("{", 1)[0].split(" ", 1)[0]
