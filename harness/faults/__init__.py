"""Faults by name (contract). Importing this package imports every module in it, so each `@register`ed fault
is in `FAULTS` and its parameter model in `FAULT_PARAMS`.

Adding a fault is adding one module here, readable alone:

    class MyFaultParams(FaultParams):                     # harness.strict.params; Duration etc. from
        node: NodeSelector = Field(default_factory=NodeSelector)   # harness.strict.units
        hold: Duration = 30.0

    @register
    class MyFault(Fault):
        name = "my-fault"                                  # the YAML key in a scenario's `faults:`
        params_model = MyFaultParams
        params: MyFaultParams

        def plan(self) -> str: ...                         # read-only: choose self.nodes, say what will happen
        def inject(self) -> None: ...                      # self.owe_revert(args) first, then change the target
        def check_landed(self) -> dict | None: ...         # evidence a real detector shows, or None
        @classmethod
        def revert_owed(cls, target, args) -> None: ...    # undo from the journal's args alone

Nothing else changes: scenario validation, `g7chaos schema`, `g7chaos list`, the runner and `g7chaos recover`
find it through the registry. Facts checks read are the typed attributes of `Fault` (`nodes`, `times`,
`unobservable`, ...); the rest stays the fault's own. A fault defined outside this package (a plug-in, a test's
toy) is registered the same way, from the moment its module is imported.
"""
import importlib
import pkgutil

from harness.faults.base import FAULT_PARAMS, FAULTS, Fault, FaultError, FaultNotLanded, FaultTimes, NodeRef, RunContext

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "selection", "podexec"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FAULTS", "FAULT_PARAMS", "Fault", "FaultError", "FaultNotLanded", "FaultTimes", "NodeRef", "RunContext"]
