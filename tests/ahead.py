"""Whole `g7chaos` commands that run ahead of their tests, in the background, while other tests go on.

A scenario run mostly waits on scenario time (a fault's minutes at the twin's time scale): about three quarters
of a core in all, most of it the twin serving the load's streams. A test module that asserts on such runs says
what it runs up front: `ahead_job(test_name, params)` returns a `Job` for each test that takes the `ahead_run`
fixture. The session then runs in three parts (tests/conftest.py orders them):

1. tests marked `quiet` (they measure time to the millisecond; the mark is a test's own or its module's), with
   nothing in the background. Only what needs it is marked: every test in this part is time the background
   cannot use. A whole run whose verdict a busy machine could degrade is no reason to wait: it runs in the
   background and asks for a second run when its measurement says the machine was too busy (below);
2. every other test, while the background works through the jobs two at a time, the longest first, so at
   most two background runs share the machine with the foreground;
3. the modules whose tests take `ahead_run`, reading their results (three runs at a time once nothing else is
   left, or when only these modules were selected).

A scenario run says when the machine was too busy for its own measurement (`measurement_degraded` in its
result.json: the load generator's event loop lagged beyond its limit). The twin shares that machine, and its
answers were as late as the load's reading of them, so such a run's verdict is not about the profile under test. A
job that asks for it (`rerun_when_degraded`) is run once more when a test fails on a run whose measurement was
degraded; the test is judged on the second run, and the session's summary names every such rerun and why.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Job:
    name: str
    argv: Callable[[Path], list[str]]     # the command, given the report folder it writes into
    timeout_s: float
    cwd: Path | None = None
    env: dict[str, str] | None = None      # added to the session's environment
    rerun_when_degraded: bool = False       # a test that fails on a degraded run gets one more run (above)


@dataclass(frozen=True)
class Ran:
    out: subprocess.CompletedProcess
    report_dir: Path


def run(job: Job, report_dir: Path, running: set[subprocess.Popen] | None = None) -> Ran:
    """The job's command to its end (or its timeout); `running` holds it meanwhile, for a session that ends early."""
    argv = job.argv(report_dir)
    env = {**os.environ, **job.env} if job.env else None
    with subprocess.Popen(argv, cwd=job.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        if running is not None:
            running.add(proc)
        try:
            stdout, stderr = proc.communicate(timeout=job.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        finally:
            if running is not None:
                running.discard(proc)
    return Ran(subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr), report_dir)


def degraded_reason(ran: Ran) -> str | None:
    """Why the measurement of the job's scenario runs was degraded, as their result.json files say (a game day
    writes one per scenario); None when none was (or there is no result to say so)."""
    reasons = []
    for path in sorted(ran.report_dir.rglob("result.json")):
        result = json.loads(path.read_text())
        if result.get("measurement_degraded"):
            reasons.append(f"{result.get('scenario', path.parent.name)}: "
                           f"{result.get('measurement_degraded_reason') or 'measurement degraded'}")
    return "; ".join(reasons) or None


def job_of(item: pytest.Item) -> Job | None:
    make = getattr(getattr(item, "module", None), "ahead_job", None)
    if make is None or "ahead_run" not in getattr(item, "fixturenames", ()):
        return None
    params = dict(getattr(getattr(item, "callspec", None), "params", {}))
    return make(getattr(item, "originalname", item.name), params)


def module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


FOREGROUND = 1      # the first part with background runs beside it


def phase_of(item: pytest.Item, ahead_modules: set[str]) -> int:
    """0 quiet, 1 foreground beside the background runs, 2 their readers."""
    if module_of(item) in ahead_modules:
        return 2
    return 0 if item.get_closest_marker("quiet") else FOREGROUND


class AheadRuns:
    """The session's background jobs, worked through by two threads beside the foreground, three after it."""

    def __init__(self, items: list[pytest.Item], tmp_path_factory: pytest.TempPathFactory):
        """One run per job name: tests whose module names the same job (a fixture shared by a module's tests)
        read the same run."""
        self._tmp = tmp_path_factory
        self._job_of: dict[str, str] = {}                    # test nodeid -> job name
        self._jobs: dict[str, Job] = {}
        for item in items:
            if (job := job_of(item)) is not None:
                self._job_of[item.nodeid] = job.name
                self._jobs.setdefault(job.name, job)
        self._queue = sorted(self._jobs, key=lambda name: -self._jobs[name].timeout_s)   # the longest first
        self._futures: dict[str, Future] = {name: Future() for name in self._jobs}
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._running: set[subprocess.Popen] = set()
        self.took: list[tuple[str, float, float]] = []      # (job, started, ended), seconds from the first job
        self.reruns: list[tuple[str, str]] = []             # (job, why its first run was not judged)
        self._t0: float | None = None
        self.ahead_modules = {module_of(item) for item in items if item.nodeid in self._job_of}

    def add_worker(self, most: int) -> None:
        """One more thread taking queued jobs, up to `most` in all."""
        with self._lock:
            if len(self._workers) >= most or not self._queue:
                return
            worker = threading.Thread(target=self._work, name=f"ahead-run-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
        worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                name = self._queue.pop(0)
            job, future = self._jobs[name], self._futures[name]
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._t0 = self._t0 if self._t0 is not None else time.monotonic()
            started = time.monotonic() - self._t0
            try:
                with self._lock:          # pytest's temporary folders are not made safely from two threads at once
                    folder = self._tmp.mktemp(job.name[:40])
                future.set_result(run(job, folder, self._running))
            except BaseException as exc:        # noqa: BLE001 - the reading test reports it
                future.set_exception(exc)
            finally:
                self.took.append((job.name, started, time.monotonic() - self._t0))

    def result(self, nodeid: str) -> Ran:
        self.add_worker(most=3)                 # nothing else runs now: three at a time (each mostly waits)
        return self._futures[self._job_of[nodeid]].result()

    def rerun_reason(self, nodeid: str, ran: Ran) -> str | None:
        """Why this test's failed run gets one more (its job asks for it and its measurement was degraded);
        None when it does not: the job does not ask, or it was already run again."""
        name = self._job_of[nodeid]
        if not self._jobs[name].rerun_when_degraded or any(job == name for job, _ in self.reruns):
            return None
        return degraded_reason(ran)

    def rerun(self, nodeid: str, why: str) -> Ran:
        """This test's job run once more, now, into a new folder; later readers of the job get this run."""
        name = self._job_of[nodeid]
        self.reruns.append((name, why))
        with self._lock:
            folder = self._tmp.mktemp(f"{name[:34]}-rerun")
            self._t0 = self._t0 if self._t0 is not None else time.monotonic()
        started = time.monotonic() - self._t0
        try:
            ran = run(self._jobs[name], folder, self._running)
        finally:
            self.took.append((f"{name} (rerun)", started, time.monotonic() - self._t0))
        again: Future = Future()
        again.set_result(ran)
        self._futures[name] = again
        return ran

    def close(self) -> None:
        with self._lock:
            self._queue.clear()
        for future in self._futures.values():
            future.cancel()
        for proc in list(self._running):       # a session ended early (-x, Ctrl-C): its runs go too
            proc.terminate()
        for worker in self._workers:
            worker.join()
