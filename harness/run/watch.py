"""Waiting for a point on the scenario clock with the run's eyes open.

Between two steps a run never sleeps blind: every tenth of a second it honours an interrupt, lets the fault
schedule revert what is due, shows the load's figures (ending the run if a load process died) and judges the
stop conditions. One loop serves every wait of the run, so none of them can forget one of these.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from harness.run.load import RunLoad
from harness.run.stops import StopConditions


class Watch:
    def __init__(self, load: RunLoad, stops: StopConditions, interrupted: threading.Event):
        self.load = load
        self.stops = stops
        self.interrupted = interrupted    # set by the run's signal handler (harness/run/signals.py)

    def raise_if_interrupted(self) -> None:
        """A Ctrl-C or SIGTERM that landed in another thread's wait ends the run here, through the reverts."""
        if self.interrupted.is_set():
            raise KeyboardInterrupt

    def check_stops(self, now: float) -> None:
        """The stop conditions on the load's latest figures, for waits that tick on their own (a fault's landing)."""
        self.stops.check(self.load.figures() if self.load.process is not None else None, now)

    def wait_until(self, deadline: float, *, due: Callable[[float], None] | None = None,
                   allow_stop: bool = True) -> None:
        """Wait for the wall time `deadline`; `due(now)` runs each tick (the schedule's reverts). `allow_stop`
        False: before the faults a breach is the deployment's starting point, judged by the steady-state phase."""
        tick = threading.Event()
        while True:
            now = time.time()
            self.raise_if_interrupted()
            if due is not None:
                due(now)
            if self.load.process is not None:
                live = self.load.checked_figures()
                if allow_stop:
                    self.stops.check_metrics(live, now)
            if allow_stop:
                self.stops.check_alarms(now)
            if now >= deadline:
                return
            tick.wait(min(0.1, deadline - now))
