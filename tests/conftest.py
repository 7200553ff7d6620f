"""Fixtures every test folder may use.

`twin_pool` hands out in-process twins. moto's backends are per process, so only one in-process twin may run
at a time; starting one costs seconds, so the pool keeps it for the next module that asks for the same
profile and shape, provided every module that had it left it as it found it (every fault it injected
reverted and waited out). A module that leaves lasting marks (a node reclaimed and replaced) asks with
`leaves_marks=True`: it may get a clean twin the pool already runs, and no module after it sees that twin.

Before a module that does not use the pool, the pool's twin is stopped: that module may start its own.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from ahead import FOREGROUND, AheadRuns, Ran, module_of, phase_of

AHEAD_READER_TIMEOUT_S = 900     # a reader waits for its run, which may still be queued behind the longest ones


class TwinPool:
    """At most one in-process twin, kept between modules that ask for the same one."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self._tmp = tmp_path_factory
        self._handle = None
        self._key: tuple | None = None
        self._marked = False

    def get(self, profile: str = "article", *, nodes_per_az: int = 1, time_scale: float = 30.0,
            leaves_marks: bool = False):
        """The running twin for this profile and shape, started if the pool holds another or a marked one."""
        from harness.twin.server import TwinServer

        key = (profile, nodes_per_az, time_scale)
        if self._handle is None or key != self._key or self._marked:
            self.release()
            out = self._tmp.mktemp(f"twin-{profile}")
            self._handle = TwinServer.start_in_thread(profile=profile, nodes_per_az=nodes_per_az,
                                                      time_scale=time_scale, out_dir=out / "twin")
            self._key, self._marked = key, False
        self._marked = self._marked or leaves_marks
        return self._handle

    def release(self) -> None:
        handle, self._handle, self._key = self._handle, None, None
        if handle is not None:
            handle.stop()


_STARTED: list[TwinPool] = []     # the session's pool, once a module asked for it


@pytest.fixture(scope="session")
def twin_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinPool]:
    pool = TwinPool(tmp_path_factory)
    _STARTED.append(pool)
    try:
        yield pool
    finally:
        pool.release()
        _STARTED.remove(pool)


@pytest.fixture(scope="module", autouse=True)
def _one_in_process_twin_at_a_time(request: pytest.FixtureRequest) -> None:
    """Stop the pool's twin before a module that does not use the pool: it may start a twin of its own."""
    prefix = f"{request.node.nodeid}::"
    uses_pool = any("twin_pool" in getattr(item, "fixturenames", ())
                    for item in request.session.items if item.nodeid.startswith(prefix))
    if not uses_pool:
        for pool in _STARTED:
            pool.release()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Quiet tests first, modules that read background runs last (tests/ahead.py); the
    order inside each part stays."""
    from ahead import job_of

    ahead = {module_of(item) for item in items if job_of(item) is not None}
    items.sort(key=lambda item: phase_of(item, ahead))      # stable: the order inside each part stays
    for item in items:
        if "ahead_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(AHEAD_READER_TIMEOUT_S))


_SESSION_RUNS: list[AheadRuns] = []


@pytest.fixture(scope="session")
def _ahead_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AheadRuns]:
    runs = AheadRuns(request.session.items, tmp_path_factory)
    _SESSION_RUNS.append(runs)
    try:
        yield runs
    finally:
        runs.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How long each background run took, and when: beside --durations, what the session's length is made of."""
    took = [t for runs in _SESSION_RUNS for t in runs.took]
    if not took:
        return
    terminalreporter.section("background runs")
    for name, started, ended in sorted(took, key=lambda t: t[1]):
        terminalreporter.write_line(f"{ended - started:7.1f}s  from {started:6.1f}s  {name}")
    terminalreporter.write_line(f"{sum(e - s for _, s, e in took):7.1f}s  in all, last ended "
                                f"{max(e for _, _, e in took):.1f}s after the first began")
    for name, why in (r for runs in _SESSION_RUNS for r in runs.reruns):
        terminalreporter.write_line(f"run again: {name}: its first run's measurement was degraded ({why})")


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """A test that fails on a background run whose measurement was degraded is judged once more, on a second run
    of its job, when the job asks for it (tests/ahead.py says why); a second failure says both."""
    try:
        return (yield)
    except AssertionError as first:
        ran = pyfuncitem.funcargs.get("ahead_run")
        runs = _SESSION_RUNS[-1] if _SESSION_RUNS else None
        why = runs.rerun_reason(pyfuncitem.nodeid, ran) if isinstance(ran, Ran) and runs is not None else None
        if why is None:
            raise
        pyfuncitem.funcargs["ahead_run"] = runs.rerun(pyfuncitem.nodeid, why)
        try:
            pyfuncitem.obj(**{arg: pyfuncitem.funcargs[arg] for arg in pyfuncitem._fixtureinfo.argnames})
        except AssertionError as second:
            raise AssertionError(f"{second}\n(on a second run: the first run's measurement was degraded, {why}, "
                                 f"and it failed with: {str(first)[:1500]})") from second
        return True


@pytest.fixture(autouse=True)
def _background_after_the_quiet_part(request: pytest.FixtureRequest, _ahead_runs: AheadRuns) -> None:
    """The first test past the quiet part starts the background runs, two at a time: a scenario run uses about
    two thirds of a core, mostly waiting on scenario time, and the foreground about one."""
    if phase_of(request.node, _ahead_runs.ahead_modules) >= FOREGROUND:
        _ahead_runs.add_worker(most=2)
        _ahead_runs.add_worker(most=2)


@pytest.fixture()
def ahead_run(request: pytest.FixtureRequest, _ahead_runs: AheadRuns) -> Ran:
    """This test's command (its module's `ahead_job`), run, or still running, in the background."""
    return _ahead_runs.result(request.node.nodeid)
