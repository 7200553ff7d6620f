"""The fault modules' twin: an article twin in this process from the shared pool (tests/conftest.py).

A module that leaves lasting marks on the fleet sets `TWIN_LEAVES_MARKS = True`: no module after it gets that twin.
A module that needs another deployment names its profile in `TWIN_PROFILE`."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.target.target import Target


@pytest.fixture(scope="module")
def twin(twin_pool, request: pytest.FixtureRequest):
    return twin_pool.get(getattr(request.module, "TWIN_PROFILE", "article"), nodes_per_az=1, time_scale=30.0,
                         leaves_marks=getattr(request.module, "TWIN_LEAVES_MARKS", False))


@pytest.fixture()
def target(twin) -> Target:
    return Target.from_twin_endpoints(Path(twin.twin.out_dir) / "endpoints.json")
