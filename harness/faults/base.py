"""What every fault is: inject through the real mechanism, prove it landed, revert.

A fault writes its revert into the run journal before it changes anything, so that a crash at any
moment leaves a record `g7chaos recover` can finish from (`revert_owed` must work in a fresh process
from the journal's arguments alone).

A fault is one module: its parameter model (`params_model`, a `FaultParams`) next to its code, registered by
`@register` under its contract name. What checks may read of a fault is declared here, typed: the nodes it
touched, when it was injected, landed and reverted, `times` (moments some checks judge by) and
`unobservable` (what no detector could show); anything else a fault keeps is its own business.
"""
from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Protocol

from harness.errors import TargetError
from harness.journal import Journal
from harness.observe import Timeline
from harness.strict.params import FaultParams, ParamsOf, register_into


class FaultError(TargetError):
    """The fault could not be injected, or its revert failed (exit 4)."""


class FaultNotLanded(FaultError):
    """The fault was injected, but no detector it trusts showed it within the limit (exit 4): a deployment
    cannot be credited for surviving a fault it never saw."""


@dataclass
class RunContext:
    target: Any                     # harness.target.Target
    journal: Journal
    timeline: Timeline
    rng: random.Random
    dry_run: bool = False
    # the scenario's stop conditions: FIS templates carry its `alarm:` entries as their own stop conditions,
    # so an experiment stops on the alarm even when the harness that started it is gone
    stop_when: list[Any] = field(default_factory=list)
    alarm_arns: dict[str, str] | None = None     # alarm name -> ARN, resolved once per run (read-only)

    def wall(self, deployment_seconds: float) -> float:
        return self.target.wall_seconds(deployment_seconds)


@dataclass
class NodeRef:
    context: str
    name: str
    zone: str | None = None
    nodegroup: str | None = None
    instance_id: str | None = None
    gpus: list[int] = field(default_factory=list)

    def describe(self) -> str:
        gpus = f" gpu {','.join(map(str, self.gpus))}" if self.gpus else ""
        return f"{self.context}/{self.name}{gpus} ({self.zone or '?'})"


class Scheduled(Protocol):
    """Where a fault sits on the scenario's timeline (a scenario's `FaultStep`): deployment seconds."""

    @property
    def at(self) -> float: ...

    @property
    def duration(self) -> float | None: ...


@dataclass
class FaultTimes:
    """Wall-clock moments of a fault, beyond its injection and landing, that checks judge by (None: the fault
    has no such moment)."""

    lost_at: float | None = None            # service may be gone from here on (az-loss: the experiment's start)
    notice_at: float | None = None          # the warning the deployment gets (spot: the interruption notice)
    notice_end_at: float | None = None      # the notice runs out and the fault has done its damage by itself
    #                                         (spot: EC2 reclaims the instance); a drain must be done by then
    revert_started_at: float | None = None  # the revert began: the target may come back from here on


class Fault(ABC):
    name: ClassVar[str]
    params_model: ClassVar[type[FaultParams]]
    # set by owe_revert(): the journal entry this fault still owes, and exactly the arguments written there
    revert_id: str | None = None
    revert_args: dict[str, Any] | None = None

    def __init__(self, params: FaultParams, ctx: RunContext):
        self.params = params
        self.ctx = ctx
        self.nodes: list[NodeRef] = []      # what the fault touches, for checks
        # metric -> node -> why no detector on that metric could show this fault there (a DCGM injection the
        # node's exporter cannot see): checks on the metric report it unobservable instead of failing it
        self.unobservable: dict[str, dict[str, str]] = {}
        self.times = FaultTimes()
        self.injection_started_at: float | None = None   # the injection call began (a detector may fire before
        #                                                    it returns: the report's milestones count from here)
        self.injected_at: float | None = None
        self.landed_at: float | None = None
        # set by the runner
        self.step: Scheduled | None = None      # where the fault sits on the scenario's timeline
        self.index = 0                          # position in the scenario's `faults:`, which checks name it by
        self.landed_evidence: dict[str, Any] = {}
        self.reverted_at: float | None = None
        self.revert_error: str | None = None    # the last revert attempt's failure, None once one went through

    @abstractmethod
    def plan(self) -> str:
        """Resolve what the fault will touch through read-only calls; a one-line description."""

    @abstractmethod
    def inject(self) -> None:
        """Register the revert in the journal, then change the target."""

    @abstractmethod
    def check_landed(self) -> dict[str, Any] | None:
        """Evidence that the fault is in place now, or None."""

    def owe_revert(self, args: dict[str, Any]) -> None:
        """Put the revert on record before the change it undoes: the one way a fault registers its revert.

        The in-process revert then runs from these very arguments, as `g7chaos recover` would from the
        journal, so the two paths cannot drift apart."""
        self.revert_args = dict(args)
        self.revert_id = self.ctx.journal.register_revert(self.name, self.revert_args)

    def revert(self) -> None:
        """Undo what inject did from the journal's arguments (idempotent: a second call does nothing).

        Only a revert that went through is struck from the journal: one that raised stays owed, so
        `g7chaos recover` can still finish it."""
        if self.revert_id is None:
            return
        if self.times.revert_started_at is None:
            self.times.revert_started_at = time.time()
        self.before_revert()
        self.revert_owed(self.ctx.target, self.revert_args or {})
        self.ctx.journal.reverted(self.revert_id)
        self.revert_id = None
        self.after_revert()

    # what each of `times` is called on the report's cluster lane
    MOMENT_LABELS: ClassVar[dict[str, str]] = {"lost_at": "service may be lost", "notice_at": "notice sent",
                                               "notice_end_at": "notice ran out", "revert_started_at": "revert began"}

    def moments(self) -> list[tuple[float, str]]:
        """The fault's own moments beyond injected/landed/reverted, labelled for the report's cluster lane (a
        fault with moments of its own, such as a zonal shift it started, adds them)."""
        return [(at, f"{self.name}: {self.MOMENT_LABELS[key]}") for key, at in vars(self.times).items()
                if at is not None and key in self.MOMENT_LABELS]

    def before_revert(self) -> None:
        """Hook: what the fault's own process must do before the target is put back (stop its threads)."""

    def after_revert(self) -> None:
        """Hook: in-process tidying once the target is put back."""

    @classmethod
    @abstractmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        """Undo from a journal entry alone (used by `g7chaos recover` after a crash)."""

    def landed_on_every_node(self, landed_on: Callable[[Any], dict[str, Any] | None]) -> dict[str, Any] | None:
        """Evidence once every chosen node shows the fault, else None; a single node's evidence as it is."""
        seen = {}
        for node in self.nodes:
            evidence = landed_on(node)
            if evidence is None:
                return None
            seen[node.name] = evidence
        return next(iter(seen.values())) if len(seen) == 1 else {"source": "per-node", "nodes": seen}

    def await_landed(self, deadline: float, poll_s: float = 0.1) -> dict[str, Any] | None:
        """Poll the real evidence until it shows or the deadline passes (nothing here has a watch to wait on)."""
        stop = _stopper()
        while True:
            evidence = self.check_landed()
            if evidence:
                self.landed_at = time.time()
                return evidence
            if time.time() >= deadline:
                return None
            stop.wait(min(poll_s, max(0.0, deadline - time.time())))


def revert_each(entries: Iterable[dict[str, Any]], revert_one: Callable[[dict[str, Any]], None], what: str) -> None:
    """Revert every node's entry even when one of them fails, then FaultError naming each that failed: one
    unreachable node must not leave the others injected, and the revert stays owed for `g7chaos recover`."""
    errors = []
    for entry in entries:
        try:
            revert_one(entry)
        except Exception as exc:
            errors.append(f"{entry.get('node', '?')}: {exc}")
    if errors:
        raise FaultError(f"{what} on " + "; ".join(errors))


def _stopper():
    import threading
    return threading.Event()


FAULTS: dict[str, type[Fault]] = {}
"""Fault name (contract) -> class, filled by `@register` as each fault module is imported."""

FAULT_PARAMS: Mapping[str, type[FaultParams]] = ParamsOf(FAULTS)
"""Fault name -> its parameter model, read through FAULTS (what scenario validation and the schema use)."""


def register(cls: type[Fault]) -> type[Fault]:
    """Class decorator: the fault under its contract name, with the parameter model it declares."""
    return register_into(FAULTS, cls, FaultParams, "fault")
