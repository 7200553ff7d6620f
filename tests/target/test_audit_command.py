"""`g7chaos audit` reads a deployment's anti-patterns without touching it: it passes `article` and flags each
broken prescription on a twin whose profile breaks it, and the twin's audit log shows reads only."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.commands.audit import run
from harness.twin.kube.audit import audit_of
from harness.twin.server import TwinServer

pytestmark = pytest.mark.slow
BROKEN = "no-dbe-alarm,no-placement-group,single-multi-az-cluster,no-efa-monitoring"


def audit(profile: str, tmp_path: Path) -> tuple[int, dict[str, str], list]:
    twin = TwinServer.start_in_thread(profile=profile, nodes_per_az=2, time_scale=30.0, out_dir=tmp_path / profile)
    try:
        log = audit_of(twin)
        mark = log.mark()
        lines: list[str] = []
        code = run(argparse.Namespace(target="twin", targets_file=None, json=False,
                                      twin_endpoints=Path(twin.twin.out_dir) / "endpoints.json"), out=lines.append)
        calls = log.calls(since=mark)
    finally:
        twin.stop()
    verdicts = {line.split()[1]: line.split()[0] for line in lines[1:]}
    return code, verdicts, calls


def test_article_passes_every_rule_with_reads_only(tmp_path: Path) -> None:
    code, verdicts, calls = audit("article", tmp_path)
    assert code == 0 and set(verdicts.values()) == {"PASS"}, verdicts
    assert set(verdicts) == {"dbe-alarm", "gpu-temperature-alarm", "efa-alarm", "placement-group", "cluster-per-az"}
    assert calls and [c.action for c in calls if c.mutating] == []
    assert {"cloudwatch:DescribeAlarms", "ec2:DescribePlacementGroups", "list nodes"} <= {c.action for c in calls}


def test_each_broken_prescription_is_flagged_and_only_those(tmp_path: Path) -> None:
    code, verdicts, calls = audit(BROKEN, tmp_path)
    assert code == 1
    assert verdicts == {"dbe-alarm": "FAIL", "gpu-temperature-alarm": "PASS", "efa-alarm": "FAIL",
                        "placement-group": "FAIL", "cluster-per-az": "FAIL"}, verdicts
    assert [c.action for c in calls if c.mutating] == []
