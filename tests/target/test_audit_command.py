"""`g7chaos audit` reads a deployment's anti-patterns without touching it: it passes `article` and flags each
broken prescription on a twin whose profile breaks it, and the twin's audit log shows reads only."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import pytest

from harness.commands.audit import run
from harness.twin.kube.audit import audit_of
from harness.twin.server import TwinServer

pytestmark = pytest.mark.slow
BROKEN = "no-dbe-alarm,no-placement-group,single-multi-az-cluster,no-efa-monitoring,no-dbe-remediation"
RULES = {"dbe-alarm", "gpu-temperature-alarm", "efa-alarm", "placement-group", "cluster-per-az", "dcgm-exporter-dbe",
         "node-auto-repair"}


def audit(profile: str, tmp_path: Path, before: Callable[[Any], None] | None = None) -> tuple[int, dict[str, str], list]:
    twin = TwinServer.start_in_thread(profile=profile, nodes_per_az=2, time_scale=30.0, out_dir=tmp_path / profile)
    try:
        if before is not None:
            before(twin)
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
    assert set(verdicts) == RULES
    assert calls and [c.action for c in calls if c.mutating] == []
    assert {"cloudwatch:DescribeAlarms", "ec2:DescribePlacementGroups", "list nodes",
            "eks:DescribeNodegroup"} <= {c.action for c in calls}


def test_each_broken_prescription_is_flagged_and_only_those(tmp_path: Path) -> None:
    code, verdicts, calls = audit(BROKEN, tmp_path)
    assert code == 1
    assert verdicts == {"dbe-alarm": "FAIL", "gpu-temperature-alarm": "PASS", "efa-alarm": "FAIL",
                        "placement-group": "FAIL", "cluster-per-az": "FAIL", "dcgm-exporter-dbe": "PASS",
                        "node-auto-repair": "FAIL"}, verdicts
    assert [c.action for c in calls if c.mutating] == []


def _default_counters(twin: Any) -> None:
    """An operator puts dcgm-exporter's default counters back: the DBE counter is commented out there."""
    from kubernetes import client

    from harness.target.target import Target
    target = Target.from_twin_endpoints(Path(twin.twin.out_dir) / "endpoints.json")
    for context in target.contexts:
        core = client.CoreV1Api(target.kube(context))
        cm = core.read_namespaced_config_map("dcgm-exporter-metrics", "kube-system")
        text = "\n".join(line if "ECC" not in line else f"# {line}" for line in cm.data["metrics.csv"].splitlines())
        core.patch_namespaced_config_map("dcgm-exporter-metrics", "kube-system", {"data": {"metrics.csv": text}})


def test_an_exporter_without_the_dbe_counter_is_flagged(tmp_path: Path) -> None:
    code, verdicts, _ = audit("article", tmp_path, before=_default_counters)
    assert code == 1
    assert {rule for rule, verdict in verdicts.items() if verdict == "FAIL"} == {"dcgm-exporter-dbe"}, verdicts
