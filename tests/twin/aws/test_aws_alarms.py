"""CloudWatch alarms that evaluate the metrics the twin publishes, their history, and FIS stop conditions."""
from __future__ import annotations

import json
from conftest import RunningTwin, node_in, state
from support.polling import wait_for
from harness.twin.world import DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP


def test_dbe_alarm_fires_for_its_cluster_only_and_has_history(twin: RunningTwin) -> None:
    cw = twin.aws.client("cloudwatch")
    names = {a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]}
    assert {"g7-use2a-gpu-ecc-dbe", "g7-use2a-gpu-temperature", "g7-use2a-efa-errors",
            "g7-use2b-gpu-ecc-dbe"} <= names
    wait_for(lambda: state(twin, "g7-use2a-gpu-ecc-dbe") == "OK", 3, "OK before the fault")
    node = node_in(twin, "g7-use2a")
    twin.call(lambda: node.gpus[3].fields.__setitem__(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, 1.0))
    wait_for(lambda: state(twin, "g7-use2a-gpu-ecc-dbe") == "ALARM", 4, "DBE alarm")
    assert state(twin, "g7-use2b-gpu-ecc-dbe") == "OK"
    alarm = cw.describe_alarms(AlarmNames=["g7-use2a-gpu-ecc-dbe"])["MetricAlarms"][0]
    assert alarm["StateReason"].startswith("Threshold Crossed") and json.loads(alarm["StateReasonData"])[
        "recentDatapoints"] == [1.0]
    # the per-instance series is there too, for dashboards and for finding the node
    stats = cw.list_metrics(Namespace="G7/GPU", MetricName="DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")["Metrics"]
    assert any({"Name": "InstanceId", "Value": node.instance_id} in m["Dimensions"] for m in stats)
    twin.call(lambda: node.gpus[3].fields.__setitem__(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, 0.0))
    wait_for(lambda: state(twin, "g7-use2a-gpu-ecc-dbe") == "OK", 4, "back to OK")
    history = cw.describe_alarm_history(AlarmName="g7-use2a-gpu-ecc-dbe", HistoryItemType="StateUpdate",
                                        ScanBy="TimestampAscending")["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in history][-2:] == ["Alarm updated from OK to ALARM",
                                                            "Alarm updated from ALARM to OK"]


def test_temperature_and_efa_alarms(twin: RunningTwin) -> None:
    node = node_in(twin, "g7-use2b")
    twin.call(lambda: node.gpus[0].fields.__setitem__(DCGM_FI_DEV_GPU_TEMP, 90.0))
    twin.call(lambda: node.efa_counters.__setitem__("retrans_pkts", node.efa_counters["retrans_pkts"] + 40))
    wait_for(lambda: state(twin, "g7-use2b-gpu-temperature") == "ALARM", 4, "temperature alarm")
    wait_for(lambda: state(twin, "g7-use2b-efa-errors") == "ALARM", 4, "EFA alarm")
    # as the CloudWatch agent exports it: efa_retrans_pkts in CWAgent, a delta (40 retransmits, then none)
    cw = twin.aws.client("cloudwatch")
    alarm = cw.describe_alarms(AlarmNames=["g7-use2b-efa-errors"])["MetricAlarms"][0]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("CWAgent", "efa_retrans_pkts")
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [40.0]
    listed = {m["MetricName"] for m in cw.list_metrics(Namespace="CWAgent")["Metrics"]}
    assert {"efa_retrans_pkts", "efa_rx_dropped", "efa_rdma_read_wr_err", "efa_rdma_write_wr_err",
            "efa_tx_bytes", "efa_rx_bytes"} <= listed and not any("resp_err" in m for m in listed)
    twin.call(lambda: node.gpus[0].fields.__setitem__(DCGM_FI_DEV_GPU_TEMP, 50.0))
    # counters that stop increasing are no longer errors
    wait_for(lambda: state(twin, "g7-use2b-efa-errors") == "OK", 4, "EFA back to OK")
    wait_for(lambda: state(twin, "g7-use2b-gpu-temperature") == "OK", 4, "temperature back to OK")


def test_alarms_created_by_users_evaluate_too(twin: RunningTwin) -> None:
    cw = twin.aws.client("cloudwatch")
    node = node_in(twin, "g7-use2b")
    cw.put_metric_alarm(AlarmName="cold-node", Namespace="G7/GPU", MetricName="DCGM_FI_DEV_GPU_TEMP",
                        Dimensions=[{"Name": "ClusterName", "Value": "g7-use2b"},
                                    {"Name": "InstanceId", "Value": node.instance_id}],
                        Statistic="Minimum", Period=60, EvaluationPeriods=2, Threshold=100.0,
                        ComparisonOperator="LessThanThreshold")
    wait_for(lambda: state(twin, "cold-node") == "ALARM", 5, "user alarm")


def test_stop_condition_alarm_stops_an_experiment(twin: RunningTwin) -> None:
    fis, cw = twin.aws.client("fis"), twin.aws.client("cloudwatch")
    alarm_arn = cw.describe_alarms(AlarmNames=["g7-use2a-gpu-temperature"])["MetricAlarms"][0]["AlarmArn"]
    template = fis.create_experiment_template(
        description="a long wait guarded by the temperature alarm", roleArn=twin.aws.seeded.fis_role_arn,
        stopConditions=[{"source": "aws:cloudwatch:alarm", "value": alarm_arn}], targets={},
        actions={"wait": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT30M"}}})["experimentTemplate"]
    experiment = fis.start_experiment(experimentTemplateId=template["id"])["experiment"]
    wait_for(lambda: fis.get_experiment(id=experiment["id"])["experiment"]["state"]["status"] == "running", 2, "run")
    node = node_in(twin, "g7-use2a")
    twin.call(lambda: node.gpus[1].fields.__setitem__(DCGM_FI_DEV_GPU_TEMP, 95.0))
    try:
        wait_for(lambda: fis.get_experiment(id=experiment["id"])["experiment"]["state"]["status"] == "stopped", 5,
                 "stopped by the stop condition")
        reason = fis.get_experiment(id=experiment["id"])["experiment"]["state"]["reason"]
        assert "g7-use2a-gpu-temperature" in reason
        # a new experiment cannot start while its stop condition is in ALARM
        again = fis.start_experiment(experimentTemplateId=template["id"])["experiment"]
        wait_for(lambda: fis.get_experiment(id=again["id"])["experiment"]["state"]["status"] == "failed", 2, "failed")
    finally:
        twin.call(lambda: node.gpus[1].fields.__setitem__(DCGM_FI_DEV_GPU_TEMP, 50.0))
