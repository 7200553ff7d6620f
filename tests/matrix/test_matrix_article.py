"""The `article` column of the verdict matrix: every shipped scenario passes on the deployment that follows
every prescription, run as one game day on one twin (so each scenario also proves it left the fleet steady
for the next)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_scenario_passes_on_article(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness", "matrix", str(ROOT / "scenarios"), "--profiles", "article",
                          "--report-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    matrix = json.loads((tmp_path / "matrix.json").read_text())
    cells = {scenario: by_profile["article"] for scenario, by_profile in matrix["cells"].items()}
    shipped = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    assert set(cells) == shipped, out.stdout[-2000:]
    assert {s: c["verdict"] for s, c in cells.items() if c["verdict"] != "pass"} == {}, \
        {s: c.get("reason") for s, c in cells.items() if c["verdict"] != "pass"}
    assert out.returncode == 0, out.stderr[-2000:]
