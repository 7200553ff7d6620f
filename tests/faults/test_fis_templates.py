"""Every FIS template the harness builds, read back from FIS itself: explicit targets selected by COUNT/PERCENT
(never ALL), and the scenario's `alarm:` stop conditions carried as `aws:cloudwatch:alarm` with the alarm's ARN
(`source: none` when there is none).

The stop-condition alarm is put in ALARM before the experiments start, so FIS refuses to run any of them
(what FIS does when a stop condition is already in alarm): the templates are real, nothing is touched, and the
refusal naming the alarm shows FIS read the ARN the harness gave it. Then the twin's FIS is shown to honour
COUNT and PERCENT when it resolves explicit targets."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from faultkit import run_context
from support.polling import wait_for

from harness.faults import FAULTS, FaultError
from harness.faults.az_loss import AzLossParams
from harness.faults.device_plugin_race import DevicePluginRaceParams
from harness.faults.node_reboot import NodeRebootParams
from harness.faults.replica_stall import ReplicaStallParams
from harness.faults.spot_interruption import SpotInterruptionParams
from harness.journal import owed_reverts
from harness.scenario.stopwhen import coerce_stop_condition
from harness.strict.params import NodeSelector
from harness.target.target import Target

pytestmark = pytest.mark.slow
ALARM = "g7chaos-fis-stop-probe"
FIS_FAULTS = {
    "spot-interruption": SpotInterruptionParams(node=NodeSelector(zone="us-east-2a", model="llama-13b-fp8"), notice=120),
    "az-loss": AzLossParams(zone="us-east-2b", mode="power"),
    "node-reboot": NodeRebootParams(node=NodeSelector(zone="us-east-2b", model="llama-13b-fp8")),
    "device-plugin-race": DevicePluginRaceParams(node=NodeSelector(zone="us-east-2b", model="llama-13b-fp8"),
                                                 method="reboot"),
    "replica-stall": ReplicaStallParams(mode="io", zone="us-east-2b", model="llama-13b-fp8"),
}


@pytest.fixture(scope="module")
def probe_alarm(twin) -> Iterator[str]:
    """An alarm on a metric nothing publishes, ignored while missing, so only set_alarm_state moves it."""
    cloudwatch = Target.from_twin_endpoints(Path(twin.twin.out_dir) / "endpoints.json").aws("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName=ALARM, Namespace="G7chaos/Test", MetricName="StopProbe",
                                Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=0.0,
                                ComparisonOperator="GreaterThanThreshold", TreatMissingData="ignore")
    arn = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]["AlarmArn"]
    try:
        yield arn
    finally:
        cloudwatch.delete_alarms(AlarmNames=[ALARM])


def _template(target: Target, template_id: str) -> dict[str, Any]:
    return target.aws("fis").get_experiment_template(id=template_id)["experimentTemplate"]


def _assert_explicit(template: dict[str, Any]) -> None:
    assert template["targets"], template
    for name, spec in template["targets"].items():
        arns = spec.get("resourceArns") or []
        assert arns, f"target {name} is not explicit: {spec}"
        assert len(arns) <= 5, f"target {name} lists more ARNs than FIS takes: {spec}"
        assert spec["selectionMode"] == f"COUNT({len(arns)})", spec
        assert not spec.get("resourceTags") and not spec.get("filters"), spec


@pytest.mark.parametrize("name", list(FIS_FAULTS))
def test_template_carries_the_alarm_and_explicit_counted_targets(name: str, target: Target, tmp_path: Path,
                                                                 probe_alarm: str) -> None:
    cloudwatch = target.aws("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="test: stop everything")
    ctx = run_context(target, tmp_path, seed=5)
    ctx.stop_when = [coerce_stop_condition(f"alarm:{ALARM}"), coerce_stop_condition("error_rate > 20% for 30s")]
    fault = FAULTS[name](FIS_FAULTS[name], ctx)
    assert f"FIS stops it on alarm(s) {ALARM}" in fault.plan()        # what a dry run shows for review
    assert fault.stop_conditions == [{"source": "aws:cloudwatch:alarm", "value": probe_alarm}]
    try:
        try:
            fault.inject()
        except FaultError as exc:          # the experiment failed to start: the stop condition was in ALARM
            assert ALARM in str(exc)
        template_id = fault.template_id
        template = _template(target, template_id)
        assert template["stopConditions"] == [{"source": "aws:cloudwatch:alarm", "value": probe_alarm}]
        _assert_explicit(template)
        experiment_id = fault.experiment_id
        fis = target.aws("fis")
        experiments = [e["id"] for e in fis.list_experiments()["experiments"]
                       if e.get("experimentTemplateId") == template_id]
        assert experiment_id is None or experiment_id in experiments
        state = wait_for(lambda: next((s for s in (fis.get_experiment(id=e)["experiment"]["state"] for e in experiments)
                                    if s["status"] in ("failed", "stopped")), None), 10,
                         "FIS refusing the experiment on its stop condition")
        assert ALARM in state.get("reason", ""), state
    finally:
        fault.revert()
        cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="test: done")
    assert owed_reverts(ctx.journal.path) == []
    assert fis.list_experiment_templates()["experimentTemplates"] == []


class KilledAfterCreate(BaseException):
    """Stands for the harness dying between the template's creation and anything after it."""


@pytest.mark.parametrize("name", list(FIS_FAULTS))
def test_the_revert_is_owed_before_the_template_exists(name: str, target: Target, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed right after FIS created the template: the journal alone leads `recover` to it and removes it."""
    from harness.faults import node_reboot
    ctx = run_context(target, tmp_path, seed=5)
    fault = FAULTS[name](FIS_FAULTS[name], ctx)
    fault.plan()
    real_create = node_reboot.create_template
    created: list[str] = []

    def create_then_die(target_, token, *args, **kwargs):
        owed = [o.args.get("template_token") for o in owed_reverts(ctx.journal.path)]
        assert owed == [token], f"template {token} created before its revert was owed ({owed})"
        created.append(real_create(target_, token, *args, **kwargs))
        raise KilledAfterCreate()

    for module in ("node_reboot", "az_loss", "replica_stall", "spot_interruption"):
        monkeypatch.setattr(sys.modules[f"harness.faults.{module}"], "create_template", create_then_die)
    with pytest.raises(KilledAfterCreate):
        fault.inject()
    fis = target.aws("fis")
    assert [t["id"] for t in fis.list_experiment_templates()["experimentTemplates"]] == created
    for owed in owed_reverts(ctx.journal.path):            # what `g7chaos recover` does with the journal
        FAULTS[owed.fault].revert_owed(target, owed.args)
    assert fis.list_experiment_templates()["experimentTemplates"] == []


def test_without_alarm_conditions_the_template_says_source_none(target: Target, tmp_path: Path) -> None:
    ctx = run_context(target, tmp_path, seed=5)
    ctx.stop_when = [coerce_stop_condition("error_rate > 20% for 30s")]
    for name in FIS_FAULTS:
        fault = FAULTS[name](FIS_FAULTS[name], ctx)
        assert "FIS stops it" not in fault.plan()
        assert fault.stop_conditions == [{"source": "none"}], name


def test_an_alarm_that_does_not_exist_is_refused_at_plan(target: Target, tmp_path: Path) -> None:
    ctx = run_context(target, tmp_path, seed=5)
    ctx.stop_when = [coerce_stop_condition("alarm:no-such-alarm-anywhere")]
    fault = FAULTS["node-reboot"](FIS_FAULTS["node-reboot"], ctx)
    with pytest.raises(FaultError, match="no-such-alarm-anywhere"):
        fault.plan()


@pytest.mark.parametrize("mode, expected", [("COUNT(2)", 2), ("PERCENT(50)", 2), ("PERCENT(1)", 1),
                                            ("COUNT(4)", 4)])
def test_the_twins_fis_selects_count_and_percent_of_explicit_targets(target: Target, mode: str,
                                                                      expected: int) -> None:
    """Targets no action uses are still resolved by FIS: the experiment shows how many it selected."""
    ec2, fis = target.aws("ec2"), target.aws("fis")
    instances = sorted(i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                       if i["State"]["Name"] == "running")[:4]
    assert len(instances) == 4
    arns = [f"arn:aws:ec2:{target.region}:{target.spec.aws.account_id}:instance/{i}" for i in instances]
    from harness.faults.spot_interruption import fis_role_arn
    template = fis.create_experiment_template(
        clientToken=f"select-{time.time_ns()}", description="selection probe", roleArn=fis_role_arn(target),
        stopConditions=[{"source": "none"}],
        targets={"picked": {"resourceType": "aws:ec2:instance", "resourceArns": arns, "selectionMode": mode}},
        actions={"pause": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}}})["experimentTemplate"]
    try:
        experiment_id = fis.start_experiment(clientToken=f"select-{time.time_ns()}",
                                             experimentTemplateId=template["id"])["experiment"]["id"]

        def resolved() -> list[str] | None:
            experiment = fis.get_experiment(id=experiment_id)["experiment"]
            if experiment["state"]["status"] not in ("running", "completed"):
                assert experiment["state"]["status"] in ("pending", "initiating"), experiment["state"]
                return None
            return list(fis.list_experiment_resolved_targets(experimentId=experiment_id)["resolvedTargets"])

        picked = wait_for(resolved, 10, "the experiment resolving its targets")
        chosen = [t["targetInformation"]["arn"] for t in picked if t["targetName"] == "picked"]
        assert len(chosen) == expected and set(chosen) <= set(arns), picked
        wait_for(lambda: fis.get_experiment(id=experiment_id)["experiment"]["state"]["status"] == "completed", 10,
                 "the wait action completing")
    finally:
        fis.delete_experiment_template(id=template["id"])
