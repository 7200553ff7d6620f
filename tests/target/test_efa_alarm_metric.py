"""The EFA alarm's metric is one the CloudWatch agent exports (namespace CWAgent), chosen per target, and the
audit's `efa-alarm` rule and the alarm-name lookup follow the target's choice."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from harness.commands.audit import alarm_findings
from harness.target.model import CWAGENT_EFA_METRICS, AlarmNames


def test_the_efa_metric_must_be_one_the_cloudwatch_agent_exports():
    assert AlarmNames().efa_metric == "efa_retrans_pkts" and AlarmNames().efa_namespace == "CWAgent"
    assert AlarmNames(efa_metric="efa_rdma_read_wr_err").efa_metric == "efa_rdma_read_wr_err"
    for wrong in ("EFA/ErrorCount", "efa_rdma_read_resp_err", "rdma_read_wr_err"):
        with pytest.raises(ValidationError):
            AlarmNames(efa_metric=wrong)
    assert {"efa_rdma_read_wr_err", "efa_rdma_write_wr_err", "efa_retrans_pkts", "efa_rx_dropped"} <= CWAGENT_EFA_METRICS


def test_any_agent_efa_metric_names_the_targets_efa_alarm():
    names = AlarmNames(efa_errors="{cluster}-fabric", efa_metric="efa_rdma_write_wr_err")
    assert names.for_metric("efa_retrans_pkts", "c1") == names.for_metric("efa_rdma_write_wr_err", "c1") == "c1-fabric"
    assert names.for_metric("EFA/ErrorCount", "c1") is None


class _Paginator:
    def __init__(self, alarms):
        self.alarms = alarms

    def paginate(self, **_):
        return [{"MetricAlarms": self.alarms}]


def _target(alarms, **names):
    cloudwatch = SimpleNamespace(get_paginator=lambda op: _Paginator(alarms))
    return SimpleNamespace(contexts=["c1"], aws=lambda service: cloudwatch,
                           spec=SimpleNamespace(alarms=AlarmNames(**names)))


def _efa(target) -> bool:
    return next(f for f in alarm_findings(target) if f.rule == "efa-alarm").passed


def test_audit_efa_alarm_rule_follows_the_targets_metric_and_namespace():
    dims = [{"Name": "ClusterName", "Value": "c1"}]
    agent = {"AlarmName": "c1-efa-errors", "Namespace": "CWAgent", "MetricName": "efa_retrans_pkts", "Dimensions": dims}
    assert _efa(_target([agent]))
    assert not _efa(_target([{**agent, "MetricName": "EFA/ErrorCount"}]))     # no agent exports that
    assert not _efa(_target([{**agent, "Namespace": "G7/GPU"}]))
    assert not _efa(_target([agent], efa_metric="efa_rdma_read_wr_err"))
    assert _efa(_target([{**agent, "MetricName": "efa_rdma_read_wr_err"}], efa_metric="efa_rdma_read_wr_err"))
