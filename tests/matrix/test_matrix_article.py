"""The `article` column of the verdict matrix: every shipped scenario passes on the deployment that follows
every prescription, run as one game day on one twin (so each scenario also proves it left the fleet steady
for the next)."""
from __future__ import annotations

import json

import pytest

from cellkit import ROOT, Job, Ran
from jobs import article_column


def ahead_job(test: str, params: dict) -> Job:
    return article_column()


@pytest.mark.slow
def test_every_scenario_passes_on_article(ahead_run: Ran) -> None:
    out = ahead_run.out
    matrix = json.loads((ahead_run.report_dir / "matrix.json").read_text())
    cells = {scenario: by_profile["article"] for scenario, by_profile in matrix["cells"].items()}
    shipped = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    assert set(cells) == shipped, out.stdout[-2000:]
    assert {s: c["verdict"] for s, c in cells.items() if c["verdict"] != "pass"} == {}, \
        {s: c.get("reason") for s, c in cells.items() if c["verdict"] != "pass"}
    assert out.returncode == 0, out.stderr[-2000:]
    # a pass rests on evidence: what each cell judged, not only the word "pass"
    evidence = {scenario: cell["evidence"] for scenario, cell in cells.items()}
    assert all(counts["requests"] > 0 for counts in evidence.values()), evidence
    assert evidence["ecc-double-bit-error"]["canaries after fault"] > 0, evidence["ecc-double-bit-error"]
    assert evidence["ecc-double-bit-error"]["pods drained"] > 0, evidence["ecc-double-bit-error"]
    assert evidence["spot-interruption"]["pods drained"] > 0, evidence["spot-interruption"]
    assert evidence["spot-interruption"]["moved conversations"] > 0, evidence["spot-interruption"]
    assert evidence["retry-storm"]["retried keys"] > 0, evidence["retry-storm"]
    assert evidence["az-loss"]["failover requests"] > 0, evidence["az-loss"]
