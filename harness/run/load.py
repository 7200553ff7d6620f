"""The run's inference load and its named windows.

The load runs as its own process(es) (harness/load/process.py) from the steady-state phase to the end of the
run. Every wait reads its live figures (the console shows them, stop conditions judge them), and a load
process that died ends the run: its figures from then on are lost, so the run could not be judged.

Windows (`steady`, `fault:<name>`, `recovery`) are cut at one instant for both sides: the load starts a new
window of figures, and the checks judge the same (start, end) wall-time span.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.load.process import LiveFigures, LoadProcess, LoadResult
from harness.load.spec import LoadSpec
from harness.run.events import RunEvents
from harness.run.outcomes import TargetUnreachable
from harness.scenario.loadspec import load_spec_fields

REPLAY_HEADERS = ["idempotent-replayed"]


class RunLoad:
    def __init__(self, events: RunEvents):
        self.events = events
        self.process: LoadProcess | None = None     # None until the steady-state phase starts it
        self.stop_error: str | None = None           # why stopping it left no result
        self._window_times: dict[str, list[float]] = {}

    def start(self, target: Any, load: Any, *, seed: int, duration_s: float, out_dir: Path) -> None:
        """The scenario's load at temperature 0 (canary answers must be comparable), running `duration_s`
        wall seconds unless stopped first, in a `warmup` window until the first `mark_window`."""
        spec = LoadSpec.model_validate({**load_spec_fields(load, seed=seed, duration_s=duration_s), "temperature": 0.0})
        self.process = LoadProcess()
        self.process.start(target.inference_url, spec, out_dir,
                           served_by_headers=list(target.served_by_headers) + REPLAY_HEADERS, first_window="warmup",
                           master=target.load_master)
        self.process.wait_started(timeout_s=60)

    def figures(self) -> LiveFigures:
        """The current window's figures as of the load's last report (the load must have started)."""
        assert self.process is not None
        return self.process.live()

    def checked_figures(self) -> LiveFigures:
        """The current figures, shown live; TargetUnreachable once a load process has died."""
        assert self.process is not None
        live = self.process.live()
        self.events.load_reported.fire(live)
        if not self.process.alive():
            raise TargetUnreachable(self._died())
        return live

    def _died(self) -> str:
        """Which load process died and how: its figures from then on are lost, so the run cannot be judged."""
        assert self.process is not None
        dead = [f"{name} (pid {proc.pid}) exited with {proc.returncode}"
                for name, proc in zip(self.process.names, self.process.procs) if proc.poll() is not None]
        return (f"a load process died mid-run: {'; '.join(dead) or 'unknown'}; the load it carried and its "
                f"figures are missing, so the run cannot be judged")

    def mark_window(self, name: str) -> None:
        """Start window `name` now, ending the one before it."""
        now = time.time()
        if self.process is not None:
            self.process.mark_window(name)
        for times in self._window_times.values():
            if len(times) == 1:
                times.append(now)
        self._window_times[name] = [now]
        self.events.window_opened.fire(name)

    def windows(self) -> dict[str, tuple[float, float]]:
        """Each window's (start, end) wall time; the open one ends now."""
        end = time.time()
        return {name: (times[0], times[1] if len(times) > 1 else end) for name, times in self._window_times.items()}

    def stop(self) -> LoadResult | None:
        """The load's final figures, or None when it never started or its stop failed (`stop_error` says why)."""
        if self.process is None:
            return None
        try:
            return self.process.stop(timeout_s=20)
        except Exception as exc:
            self.stop_error = f"{type(exc).__name__}: {exc}"
            self.events.load_stop_failed.fire(self.stop_error)
            return None
