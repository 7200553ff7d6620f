"""`g7chaos audit` reads a deployment's anti-patterns without touching it: it passes `article` and flags each
broken prescription on a twin whose profile breaks it, and the twin's audit log shows reads only."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import pytest

from harness.commands.audit import run
from harness.twin.kube.auditlog import audit_of
from harness.twin.server import TwinServer

pytestmark = pytest.mark.slow
BROKEN = "no-dbe-alarm,no-placement-group,single-multi-az-cluster,no-efa-monitoring,no-dbe-remediation"

RULES = {"dbe-alarm", "gpu-temperature-alarm", "efa-alarm", "placement-group", "cluster-per-az", "dcgm-exporter-dbe",
         "node-auto-repair", "zonal-shift", "scenario-alarms"}


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
    assert {"cloudwatch:DescribeAlarms", "ec2:DescribePlacementGroups", "list nodes", "eks:DescribeNodegroup",
            "elasticloadbalancing:DescribeLoadBalancerAttributes"} <= {c.action for c in calls}


def test_each_broken_prescription_is_flagged_and_only_those(tmp_path: Path) -> None:
    code, verdicts, calls = audit(BROKEN, tmp_path)
    assert code == 1
    assert verdicts == {"dbe-alarm": "FAIL", "gpu-temperature-alarm": "PASS", "efa-alarm": "FAIL",
                        "placement-group": "FAIL", "cluster-per-az": "FAIL", "dcgm-exporter-dbe": "PASS",
                        "node-auto-repair": "FAIL", "zonal-shift": "PASS", "scenario-alarms": "FAIL"}, verdicts
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


SCENARIO_WITH_OWN_ALARMS = """
name: own-alarms
description: alarms of its own
target: twin
duration: 2m
load: {users: 1, spawn_rate: 1}
faults:
  - at: 1m
    gpu-thermal-throttle: {gpu: 0}
checks:
  - alarm-fired: {metric: DCGM_FI_DEV_GPU_TEMP}
  - alarm-fired: {metric: DCGM_FI_DEV_GPU_TEMP, alarm: team-gpu-hot}
stop_when: ["alarm:team-stop"]
"""


def test_zonal_shift_and_scenario_alarm_rules_pass_and_fail(tmp_path: Path) -> None:
    """On article both pass for the shipped scenarios; a load balancer without zonal shift and a scenario naming
    alarms CloudWatch lacks each fail their own rule, naming what is missing."""
    scenario = tmp_path / "own-alarms.yaml"
    scenario.write_text(SCENARIO_WITH_OWN_ALARMS)
    twin = TwinServer.start_in_thread(profile="article", nodes_per_az=1, time_scale=30.0, out_dir=tmp_path / "t")
    try:
        def findings(paths: list[str]) -> dict[str, str]:
            lines: list[str] = []
            run(argparse.Namespace(target="twin", targets_file=None, json=False, scenarios=paths,
                                   twin_endpoints=Path(twin.twin.out_dir) / "endpoints.json"), out=lines.append)
            return {line.split()[1]: line for line in lines[1:]}

        good = findings(["scenarios"])
        assert good["zonal-shift"].split()[0] == "PASS" and good["scenario-alarms"].split()[0] == "PASS", good
        aws = twin.twin.aws
        elbv2 = aws.client("elbv2")
        elbv2.modify_load_balancer_attributes(LoadBalancerArn=aws.seeded.nlb_arn, Attributes=[
            {"Key": "zonal_shift.config.enabled", "Value": "false"}])
        bad = findings([str(scenario)])
        assert bad["zonal-shift"].split()[0] == "FAIL" and "zonal_shift.config.enabled=true" in bad["zonal-shift"]
        assert bad["scenario-alarms"].split()[0] == "FAIL"
        assert "team-gpu-hot (own-alarms)" in bad["scenario-alarms"] and "team-stop" in bad["scenario-alarms"]
        assert "g7-use2a-gpu-temperature" not in bad["scenario-alarms"]      # the target's alarm exists
    finally:
        twin.stop()
