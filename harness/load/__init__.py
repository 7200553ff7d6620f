"""Streaming inference load: Locust in its own processes, HDR histograms per window, canaries, self-monitoring.

Public API (importing it never imports Locust or gevent):
    from harness.load import LoadSpec, LoadProcess, LoadResult, LiveFigures, WindowFigures

`harness.load.locustfile` and `harness.load.child` run only inside the load child processes, because Locust
monkey-patches the standard library on import. Exports here are resolved lazily so that a child process
imports nothing before Locust has patched.
"""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "LoadSpec": "harness.load.spec", "RetrySpec": "harness.load.spec", "CanarySpec": "harness.load.spec",
    "LoadProcess": "harness.load.process", "LoadResult": "harness.load.process", "LoadError": "harness.load.process",
    "LiveFigures": "harness.load.process", "CanaryOutcome": "harness.load.process",
    "CanaryAnswer": "harness.load.process", "read_records": "harness.jsonl",
    "WindowFigures": "harness.load.recorder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.load' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(module), name)
