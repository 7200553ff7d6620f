"""Matrix runs ahead of their tests, two at a time.

Each matrix test names its command through `matrix_job(params)` in its module and takes the `matrix_run`
fixture. A run is mostly waiting on scenario time, so the commands of consecutive matrix tests run two at
a time (as `g7chaos matrix` runs its columns), the longest first, while the tests read the results in their
own order. Only consecutive tests share the pool: before any test that does not take `matrix_run`, every
run started has been read, so nothing runs behind another test's back.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from cellkit import Job, Ran, run

WORKERS = 2


def _job_of(item: pytest.Item) -> Job | None:
    make = getattr(getattr(item, "module", None), "matrix_job", None)
    if make is None or "matrix_run" not in getattr(item, "fixturenames", ()):
        return None
    params = dict(getattr(getattr(item, "callspec", None), "params", {}))
    return make(params)


class MatrixRuns:
    def __init__(self, session: pytest.Session, tmp_path_factory: pytest.TempPathFactory):
        self._tmp = tmp_path_factory
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="matrix-run")
        self._futures: dict[str, Future] = {}
        self._submitted: set[str] = set()
        self._segment_of: dict[str, list[tuple[str, Job]]] = {}
        segment: list[tuple[str, Job]] = []
        for item in session.items:
            job = _job_of(item)
            if job is None:
                segment = []          # a test between them: runs after it wait for it
                continue
            segment.append((item.nodeid, job))
            self._segment_of[item.nodeid] = segment

    def result(self, nodeid: str, job: Job) -> Ran:
        if nodeid not in self._submitted:
            todo = [(n, j) for n, j in self._segment_of.get(nodeid, [(nodeid, job)]) if n not in self._submitted]
            for n, j in sorted(todo, key=lambda nj: -nj[1].timeout_s):     # the longest first
                self._submitted.add(n)
                self._futures[n] = self._pool.submit(run, j, self._tmp.mktemp(j.name[:40]))
        return self._futures.pop(nodeid).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def _matrix_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    runs = MatrixRuns(request.session, tmp_path_factory)
    try:
        yield runs
    finally:
        runs.close()


@pytest.fixture()
def matrix_run(request: pytest.FixtureRequest, _matrix_runs: MatrixRuns) -> Ran:
    """This test's command, run (or still running) in the pool; its output and report folder."""
    job = _job_of(request.node)
    assert job is not None, "a test taking matrix_run must have matrix_job(params) in its module"
    return _matrix_runs.result(request.node.nodeid, job)
