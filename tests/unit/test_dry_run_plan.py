"""`run --dry-run` is the runner's preflight in its dry-run mode: faults planned in the scenario's order (the
order a run draws its random picks in), printed in scenario time, one that cannot be resolved reported while
the others are still planned, and nothing written where reports go."""
from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.commands.dryrun import plan_scenario
from harness.faults import FAULTS, Fault, FaultError
from harness.run import preflight
from harness.scenario.loader import load_scenario_text

ROOT = Path(__file__).resolve().parents[2]
SPOT_FIRST = """\
  - at: 3m
    spot-interruption:
      node: {zone: us-east-2b, model: llama-13b-fp8, pick: random}
      notice: 2m
  - at: 1m
    ecc-double-bit-error:
      node: {zone: us-east-2a, model: llama-13b-fp8, pick: random}
      gpu: 0
"""


def _scenario() -> Any:
    text = (ROOT / "tests" / "matrix" / "scenarios" / "ecc-then-spot.yaml").read_text()
    head, rest = text.split("faults:\n", 1)
    return load_scenario_text(head + "faults:\n" + SPOT_FIRST + "\nchecks:" + rest.split("\nchecks:", 1)[1], "s.yaml")


class _Fake(Fault):
    name = "fake"
    planned: list[tuple[str, int]] = []

    def plan(self) -> str:
        _Fake.planned.append((self.step.fault, self.index))
        if self.step.fault == "spot-interruption":
            raise FaultError("no spot node in us-east-2b")
        return f"planned #{self.index}"

    def inject(self) -> None:
        raise AssertionError("a dry run never injects")

    def check_landed(self) -> dict[str, Any] | None:
        return None

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        raise AssertionError("a dry run never reverts")


def test_the_plan_comes_from_the_preflight_in_its_dry_run_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _Fake.planned = []
    for name in ("ecc-double-bit-error", "spot-interruption"):
        # the stand-in keeps the real fault's parameter model: scenarios are validated through the registry
        monkeypatch.setitem(FAULTS, name, type(f"Fake{name}", (_Fake,), {"params_model": FAULTS[name].params_model}))
    reached: list[list[Any]] = []

    def planned_reach(target: Any, faults: list[Any]) -> tuple[int, int, int, list[str]]:
        reached.append(list(faults))
        return 1, 8, 6, []

    monkeypatch.setattr(preflight, "planned_reach", planned_reach)
    monkeypatch.setattr(preflight, "check_planned_blast_radius", lambda target, caps, faults, reach=None: None)
    monkeypatch.chdir(tmp_path)
    target = SimpleNamespace(name="fake", time_scale=30.0, wall_seconds=lambda s: s / 30.0)
    out = io.StringIO()

    assert plan_scenario(_scenario(), target, 1, out) is False      # one fault could not be resolved: exit 4

    assert _Fake.planned == [("spot-interruption", 0), ("ecc-double-bit-error", 1)]   # the scenario's order
    lines = out.getvalue().splitlines()
    assert lines[0] == "scenario ecc-then-spot on target fake (time scale 30): 8m = 16.0 s wall"
    assert lines[2:5] == ["  at 1m (2.0 s wall): ecc-double-bit-error: planned #1",
                          "  at 3m (6.0 s wall): spot-interruption: CANNOT RESOLVE: no spot node in us-east-2b",
                          "  blast radius: 1 node(s), 8 GPU(s) of a 6-node fleet"]
    assert [f.step.fault for f in reached[0]] == ["ecc-double-bit-error"]   # only what was planned counts
    assert "  stop when error_rate > 20% for 30s" in lines
    assert list(tmp_path.iterdir()) == []        # no reports folder, no journal
