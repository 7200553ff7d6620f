"""The controller loop: every controller reconciles the whole fleet each tick.

Level-triggered reconciliation (look at the state, act on the difference) is how Kubernetes
controllers stay correct after a missed event; the fleet is a few dozen objects, so a full pass
every ~50 ms costs little and keeps each controller a plain synchronous function that a unit test can
drive step by step.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Iterable

from harness.twin.fleet.runtime import Fleet

log = logging.getLogger(__name__)

TICK_S = 0.05


class Controller:
    """One reconciler; `reconcile(now)` is called every tick with the wall time."""

    name = "controller"
    store_driven = False      # reacts only to object changes: skipped while no store changed


    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self.world = fleet.world

    def reconcile(self, now: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ControllerManager:
    """Runs controllers in a fixed order; one failing controller is logged and never stops the others."""

    def __init__(self, fleet: Fleet, controllers: Iterable[Controller], tick_s: float = TICK_S):
        self.fleet = fleet
        self.controllers = list(controllers)
        self.tick_s = tick_s
        self._errors: dict[str, int] = {}
        self._seen: dict[str, tuple[int, ...]] = {}

    def step(self, now: float | None = None) -> None:
        now = self.fleet.now() if now is None else now
        for controller in self.controllers:
            if controller.store_driven:
                versions = tuple(c.store.resource_version for c in self.fleet.world.clusters.values())
                if self._seen.get(controller.name) == versions:
                    continue
                self._seen[controller.name] = versions
            try:
                controller.reconcile(now)
            except Exception:
                count = self._errors[controller.name] = self._errors.get(controller.name, 0) + 1
                if count <= 3:
                    log.exception("controller %s failed", controller.name)

    def settle(self, rounds: int = 4) -> None:
        """Reconcile a few times at once, so a freshly seeded fleet starts in its steady state."""
        for _ in range(rounds):
            self.step()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.step()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.tick_s)
            except asyncio.TimeoutError:
                pass

    def get(self, name: str) -> Controller:
        return next(c for c in self.controllers if c.name == name)
