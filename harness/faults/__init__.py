"""Faults by name (contract). Every module in this package that defines a `@register`ed Fault is loaded here,
so adding a fault is adding one module."""
import importlib
import pkgutil

from harness.faults.base import FAULTS, Fault, FaultError, FaultNotLanded, NodeRef, RunContext

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "selection", "podexec"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FAULTS", "Fault", "FaultError", "FaultNotLanded", "NodeRef", "RunContext"]
