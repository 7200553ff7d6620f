"""alarm-fired resolves its alarms once and then asks CloudWatch for them by name.

Unit level: with the target's alarm names configured for the metric, every call is DescribeAlarms with those
AlarmNames and the account's alarms are never paged through; only a metric the target configures no alarm
for is looked up by metric name, once, at the start. A configured alarm CloudWatch lacks fails the check
with its name. Twin level: the twin's AWS audit log shows the check's DescribeAlarms calls at the check's
pace, each of them (as botocore built it) naming the target's alarms."""
from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.checks.alarm_fired import AlarmFired, AlarmFiredParams, resolve_alarm_names
from harness.checks.base import Evidence
from harness.target.model import AlarmNames
from harness.target.target import Target
from harness.twin.kube.auditlog import audit_of

CLUSTERS = ["g7-use2a", "g7-use2b"]


class RecordingCloudWatch:
    """DescribeAlarms by name answers the alarms it holds; the paginator (a walk through every alarm) is counted."""

    def __init__(self, alarms: dict[str, dict]):
        self.alarms = alarms
        self.by_name: list[list[str]] = []
        self.pages = 0

    def describe_alarms(self, **kwargs):
        names = kwargs["AlarmNames"]
        self.by_name.append(list(names))
        return {"MetricAlarms": [self.alarms[n] for n in names if n in self.alarms], "CompositeAlarms": []}

    def get_paginator(self, operation: str):
        assert operation == "describe_alarms"
        owner = self

        class Paginator:
            def paginate(self, **_):
                owner.pages += 1
                return [{"MetricAlarms": list(owner.alarms.values())}]
        return Paginator()


def _alarm(name: str, metric: str, state: str = "OK") -> dict:
    return {"AlarmName": name, "MetricName": metric, "StateValue": state,
            "StateUpdatedTimestamp": dt.datetime.now(dt.timezone.utc)}


def _target(cloudwatch: RecordingCloudWatch) -> SimpleNamespace:
    return SimpleNamespace(contexts=CLUSTERS, spec=SimpleNamespace(alarms=AlarmNames()), aws=lambda _: cloudwatch)


def _run(check: AlarmFired, target: SimpleNamespace, seconds: float) -> None:
    check.POLL_S = 0.05
    check.start(SimpleNamespace(target=target))
    threading.Event().wait(seconds)
    check.stop()


def test_the_targets_alarms_are_polled_by_name_and_nothing_is_paged():
    cloudwatch = RecordingCloudWatch({
        "g7-use2a-gpu-ecc-dbe": _alarm("g7-use2a-gpu-ecc-dbe", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"),
        "g7-use2b-gpu-ecc-dbe": _alarm("g7-use2b-gpu-ecc-dbe", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"),
        "other-team-dbe": _alarm("other-team-dbe", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "ALARM")})
    check = AlarmFired(AlarmFiredParams(metric="DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"))
    _run(check, _target(cloudwatch), 0.3)
    assert cloudwatch.pages == 0
    assert len(cloudwatch.by_name) >= 2
    assert all(names == ["g7-use2a-gpu-ecc-dbe", "g7-use2b-gpu-ecc-dbe"] for names in cloudwatch.by_name)
    assert check.known == {"g7-use2a-gpu-ecc-dbe", "g7-use2b-gpu-ecc-dbe"}   # another team's alarm is not ours


def test_an_unconfigured_metric_is_looked_up_once_by_metric_name():
    # a metric the target names no alarm for (efa_* metrics map to the target's EFA alarm, so not one of those)
    cloudwatch = RecordingCloudWatch({"gateway-queue": _alarm("gateway-queue", "nv_inference_pending_request_count"),
                                      "unrelated": _alarm("unrelated", "CPUUtilization")})
    check = AlarmFired(AlarmFiredParams(metric="nv_inference_pending_request_count"))
    _run(check, _target(cloudwatch), 0.3)
    assert cloudwatch.pages == 1
    assert cloudwatch.by_name and all(names == ["gateway-queue"] for names in cloudwatch.by_name)
    assert resolve_alarm_names(_target(cloudwatch), cloudwatch, "nv_inference_pending_request_count", "mine") == (
        ["mine"], "the scenario's alarm")


def test_a_configured_alarm_cloudwatch_lacks_fails_with_its_name():
    cloudwatch = RecordingCloudWatch({"somebody-elses-dbe": _alarm("somebody-elses-dbe",
                                                                   "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "ALARM")})
    check = AlarmFired(AlarmFiredParams(metric="DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"))
    _run(check, _target(cloudwatch), 0.2)
    fault = SimpleNamespace(injected_at=time.time() - 5, landed_at=time.time() - 4, unobservable={})
    evidence = Evidence(target=SimpleNamespace(wall_seconds=lambda s: s / 30.0), timeline=None, faults=[fault],
                        load=None)
    result = check.evaluate(evidence)
    assert not result.passed
    assert "g7-use2a-gpu-ecc-dbe, g7-use2b-gpu-ecc-dbe" in result.reason and "do not exist" in result.reason
    assert cloudwatch.pages == 0


@pytest.mark.slow
def test_the_twin_serves_the_checks_describe_alarms_by_name_at_its_pace(twin_pool, tmp_path: Path):
    handle = twin_pool.get("article", nodes_per_az=1, time_scale=30.0)
    target = Target.from_twin_endpoints(Path(handle.twin.out_dir) / "endpoints.json")
    sent: list[dict] = []
    cloudwatch = target.aws("cloudwatch")
    cloudwatch.meta.events.register("provide-client-params.monitoring.DescribeAlarms",
                                    lambda params, **_: sent.append(dict(params)))
    log = audit_of(handle)
    mark = log.mark()
    check = AlarmFired(AlarmFiredParams(metric="DCGM_FI_DEV_GPU_TEMP"))
    check.start(SimpleNamespace(target=target))
    threading.Event().wait(2.0)
    check.stop()
    calls = [c for c in log.calls(since=mark) if c.action.startswith("cloudwatch:")]
    assert {c.action for c in calls} == {"cloudwatch:DescribeAlarms"}
    assert 2 <= len(calls) <= 2.0 / check.POLL_S + 2, f"{len(calls)} calls in 2 s"
    assert len(sent) == len(calls)
    expected = [target.spec.alarms.for_metric("DCGM_FI_DEV_GPU_TEMP", c) for c in target.contexts]
    assert all(p.get("AlarmNames") == expected for p in sent), sent
    assert check.known == {f"{c}-gpu-temperature" for c in target.contexts}
