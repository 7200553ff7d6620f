"""Checks by name (contract). Every module in this package that defines a `@register`ed Check is loaded here,
so adding a check is adding one module."""
import importlib
import pkgutil

from harness.checks.base import CHECKS, Check, Evidence

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["CHECKS", "Check", "Evidence"]
