"""What every fault's and check's parameters are built from, and the name -> parameter model view of a registry.

A fault or check declares its own parameter model in its own module (`params_model`, a subclass of
`FaultParams` or `CheckParams`); the types several of them share live here, so a fault or check module
depends on this layer only, never on the scenario model that reads it.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field

from harness.strict.model import NAME_PATTERN, StrictModel
from harness.strict.units import Percentage

MAX_FAULTS = 32               # faults in one scenario; a check's `faults:` scope names at most as many
ARTICLE_TTFT_P99_S = 0.5      # the article's SLOs (docs/CONTRACTS.md section 1)
ARTICLE_TBT_P99_S = 0.05


class BlastRadius(StrictModel):
    """Caps on what one fault may touch; the tighter of scenario and target caps applies."""

    max_nodes: int | None = Field(None, ge=0, le=100_000)
    max_gpus: int | None = Field(None, ge=0, le=1_000_000)
    max_fleet_percent: Percentage | None = None

    def tighter(self, other: BlastRadius | None) -> BlastRadius:
        """The caps that satisfy both (None = no cap on that axis)."""
        if other is None:
            return self

        def low(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else min(a, b)

        return BlastRadius(max_nodes=low(self.max_nodes, other.max_nodes),
                           max_gpus=low(self.max_gpus, other.max_gpus),
                           max_fleet_percent=low(self.max_fleet_percent, other.max_fleet_percent))

    def violations(self, nodes: int, gpus: int, fleet_nodes: int) -> list[str]:
        """Why touching `nodes` nodes holding `gpus` GPUs of a `fleet_nodes`-node fleet is refused (empty = allowed)."""
        problems = []
        if self.max_nodes is not None and nodes > self.max_nodes:
            problems.append(f"{nodes} nodes exceed max_nodes {self.max_nodes}")
        if self.max_gpus is not None and gpus > self.max_gpus:
            problems.append(f"{gpus} GPUs exceed max_gpus {self.max_gpus}")
        if self.max_fleet_percent is not None and fleet_nodes > 0 and nodes / fleet_nodes > self.max_fleet_percent:
            problems.append(f"{nodes}/{fleet_nodes} nodes ({100 * nodes / fleet_nodes:.1f}%) exceed "
                            f"max_fleet_percent {100 * self.max_fleet_percent:g}%")
        return problems


# -------------------------------------------------------------------------------------------- faults


class FaultParams(StrictModel):
    """Base of every fault's parameters."""


class NodeSelector(StrictModel):
    """Which node(s) a fault hits. Resolution happens at run time through the Kubernetes API."""

    cluster: str | None = Field(None, max_length=128, description="kube context; default: any of the target's")
    zone: str | None = Field(None, max_length=64, description="topology.kubernetes.io/zone")
    nodegroup: str | None = Field(None, max_length=128, description="eks.amazonaws.com/nodegroup")
    model: str | None = Field(None, max_length=128,
                              description="only nodes running inference pods labelled model=<this>")
    pick: Literal["random", "first"] = "random"
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="seed for pick: random (default: the run's seed)")
    count: int = Field(1, ge=1, le=1000)


GpuIndex = Annotated[int, Field(ge=0, le=7, description="GPU index on the node (0-7 on g7.48xlarge)")]


# -------------------------------------------------------------------------------------------- checks


FaultRef = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)] | Annotated[int, Field(ge=0, lt=MAX_FAULTS)]


class CheckParams(StrictModel):
    """Base of every check's parameters.

    `faults` scopes a check to some of the scenario's faults, by kind (`[spot-interruption]`) or by position
    in `faults:` (`[1]`, counting from 0); unset, the check judges every fault it has a rule for."""

    faults: list[FaultRef] | None = Field(None, min_length=1, max_length=MAX_FAULTS,
                                          description="the faults this check judges: kinds or 0-based positions")


# ------------------------------------------------------------------------------------------ registries

P = TypeVar("P", bound=StrictModel)
C = TypeVar("C", bound=type)


def register_into(registry: dict[str, Any], cls: C, params_base: type[StrictModel], kind: str) -> C:
    """Record `cls` under its `name` with the parameter model it declares (`params_model`, a subclass of
    `params_base`). A second class under a taken name is refused, because a scenario naming it would silently get
    one of the two; the same class imported again (same module and name) replaces itself."""
    params = getattr(cls, "params_model", None)
    if not (isinstance(params, type) and issubclass(params, params_base)):
        raise TypeError(f"{kind} {cls.__name__} declares no params_model (a {params_base.__name__} subclass)")
    name = getattr(cls, "name")
    taken = registry.get(name)
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"{kind} {name!r} is already registered by {taken.__module__}.{taken.__qualname__}")
    registry[name] = cls
    return cls


class ParamsOf(Mapping[str, type[P]]):
    """Name -> parameter model, read live from a registry of classes that each declare `params_model`.

    A view, not a copy: a fault or check registered at any time (a module of the package, a plug-in, a test's
    toy) is seen at once by validation, the JSON Schema and `g7chaos list`, and a name has parameters only
    when there is code behind it. Names come in alphabetical order, whatever order their modules were imported
    in, so error messages and the schema read the same on every run."""

    def __init__(self, registry: Mapping[str, Any]) -> None:
        self._registry = registry

    def __getitem__(self, name: str) -> type[P]:
        return self._registry[name].params_model

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._registry))

    def __len__(self) -> int:
        return len(self._registry)

    def __repr__(self) -> str:
        return f"ParamsOf({ {name: model.__name__ for name, model in self.items()} })"

