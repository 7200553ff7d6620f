"""Checks by name (contract). Importing this package imports every module in it, so each `@register`ed check
is in `CHECKS` and its parameter model in `CHECK_PARAMS`.

Adding a check is adding one module here: a `CheckParams` subclass (harness.strict.params) and a `@register`ed
`Check` with `name`, `params_model` and `evaluate` (or `applies_to` and `judge` for a per-fault rule). Scenario
validation, `g7chaos schema`, `g7chaos list` and the runner find it through the registry.
"""
import importlib
import pkgutil

from harness.checks.base import CHECK_PARAMS, CHECKS, Check, Evidence

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["CHECKS", "CHECK_PARAMS", "Check", "Evidence"]
