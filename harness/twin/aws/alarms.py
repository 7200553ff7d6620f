"""CloudWatch: the twin publishes the GPU/EFA metrics a CloudWatch agent would, and evaluates alarms.

moto stores metric data and alarms but never evaluates an alarm. Every scaled ALARM_PERIOD_S the twin
(1) publishes, per running node, what the node's dcgm-exporter shows (the agent scrapes it: a field the exporter
does not export, or an injection its embedded hostengine cannot see, never reaches CloudWatch), namespace G7/GPU with dimensions ClusterName + InstanceId, and the same
series aggregated by ClusterName alone (the agent's aggregation_dimensions), so one alarm per cluster
watches every node of it; the EFA counters go out as the CloudWatch agent's `efa` section exports them
(FIDELITY EFA-4): namespace `CWAgent`, `efa_<hw counter>` (`rx_drops` as `efa_rx_dropped`), delta values,
summed over the node's devices and ports (the agent's own dimensions are device, port and eniId; the
deployment appends InstanceId and ClusterName and aggregates by them, as for the GPU metrics); (2) evaluates every metric alarm in moto the way CloudWatch does: the statistic
per period over the last EvaluationPeriods periods (periods scaled by time_scale), M-of-N breaching
datapoints, TreatMissingData, and sets the state with a reason only when it changes. Alarm history, which
moto cannot answer (describe_alarm_history 500s), is served from the alarms' own state-change records.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
from typing import Any

from harness.twin import hardware
from harness.twin.aws import backends
from harness.twin.clock import TwinClock
from harness.twin.fleet.exporter import collected, exporter_config, exporter_pod
from harness.twin.world import DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP, EFA_COUNTERS, World

log = logging.getLogger(__name__)

NAMESPACE = "G7/GPU"
METRIC_DBE = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
METRIC_TEMP = "DCGM_FI_DEV_GPU_TEMP"
EFA_NAMESPACE = "CWAgent"
METRIC_EFA = "efa_retrans_pkts"          # FIDELITY EFA-4: the EFA alarm's metric, as the CloudWatch agent names it
RETENTION_PERIODS = 120          # metric datapoints older than this many scaled periods are dropped

OPERATORS = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


def agent_efa_metric(counter: str) -> str:
    """The CloudWatch agent's name for a kernel EFA hw counter (FIDELITY EFA-4)."""
    return "efa_rx_dropped" if counter == "rx_drops" else f"efa_{counter}"


EFA_PUBLISHED = (*EFA_COUNTERS, "tx_bytes", "rx_bytes")


def utcnow() -> dt.datetime:
    """moto stores naive UTC datetimes."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def alarm_specs(cluster: str, behaviour: Any) -> list[dict[str, Any]]:
    """The per-cluster alarms of the contract; put_metric_alarm keyword arguments."""
    common = dict(Namespace=NAMESPACE, Dimensions=[{"Name": "ClusterName", "Value": cluster}],
                  Period=int(hardware.ALARM_PERIOD_S), EvaluationPeriods=1, DatapointsToAlarm=1,
                  TreatMissingData="notBreaching", ActionsEnabled=True)
    specs = []
    if behaviour.dbe_alarm:
        specs.append(dict(common, AlarmName=f"{cluster}-gpu-ecc-dbe", MetricName=METRIC_DBE, Statistic="Maximum",
                          ComparisonOperator="GreaterThanThreshold", Threshold=0.0,
                          AlarmDescription="Uncorrectable (double-bit) ECC error on a GPU: replace the node."))
    if behaviour.gpu_temp_alarm:
        specs.append(dict(common, AlarmName=f"{cluster}-gpu-temperature", MetricName=METRIC_TEMP,
                          Statistic="Maximum", ComparisonOperator="GreaterThanThreshold",
                          Threshold=hardware.GPU_THERMAL_LIMIT_C, AlarmDescription="GPU above 83 C: thermal slowdown."))
    if behaviour.efa_monitoring:
        specs.append(dict(common, AlarmName=f"{cluster}-efa-errors", Namespace=EFA_NAMESPACE, MetricName=METRIC_EFA,
                          Statistic="Sum",
                          ComparisonOperator="GreaterThanThreshold", Threshold=0.0,
                          AlarmDescription="EFA error counters increasing: fabric saturated or impaired."))
    return specs


class CloudWatchTwin:
    def __init__(self, world: World, region: str, clock: TwinClock) -> None:
        self.world = world
        self.region = region
        self.clock = clock
        self._efa_seen: dict[tuple[str, str], int] = {}
        self._next_at = 0.0

    @property
    def period_wall(self) -> float:
        return self.clock.wall(hardware.ALARM_PERIOD_S)

    def _cw(self) -> Any:
        return backends.backend("cloudwatch", self.region)

    def tick(self, now: float) -> None:
        if now < self._next_at:
            return
        self._next_at = now + self.period_wall
        self.publish()
        self.evaluate()

    # -- the agent -----------------------------------------------------------------------------------------
    def publish(self) -> None:
        per_cluster: dict[tuple[str, str], dict[str, list[float]]] = {}
        data: dict[str, list[dict[str, Any]]] = {NAMESPACE: [], EFA_NAMESPACE: []}
        for node in list(self.world.nodes.values()):
            counts = {**node.efa_counters, **node.efa_traffic}
            deltas = {}
            for counter in EFA_PUBLISHED:    # the agent's cumulative-to-delta conversion
                seen = self._efa_seen.get((node.instance_id, counter), counts.get(counter, 0))
                deltas[agent_efa_metric(counter)] = float(max(0, counts.get(counter, 0) - seen))
                self._efa_seen[(node.instance_id, counter)] = counts.get(counter, 0)
            if node.power != "running" or not node.network_reachable or not node.gpus:
                continue   # an agent on a node that is off or cut off publishes nothing
            cluster = self.world.clusters.get(node.cluster)
            pod = exporter_pod(cluster.store, node.name) if cluster is not None else None
            if cluster is None:
                # the AWS side run alone (no Kubernetes): what the article's exporter (remote, DBE counter) shows
                now = self.clock.now()
                shown = {fid: {g.index: g.value(fid, now) for g in node.gpus}
                         for fid in (DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP)}
            elif pod is not None:
                shown = collected(node, exporter_config(cluster.store, pod), self.clock.time_scale, self.clock.now())
            else:
                shown = {}
            # the CloudWatch side publishes only what the node's dcgm-exporter shows
            gpu_values = {metric: max(shown[fid].values())
                          for fid, metric in ((DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, METRIC_DBE),
                                              (DCGM_FI_DEV_GPU_TEMP, METRIC_TEMP)) if shown.get(fid)}
            dims = [{"Name": "ClusterName", "Value": node.cluster}, {"Name": "InstanceId", "Value": node.instance_id}]
            published = [(NAMESPACE, gpu_values)] if gpu_values else []
            if hardware.INSTANCE_TYPES.get(node.instance_type) and hardware.INSTANCE_TYPES[node.instance_type].efa_interfaces:
                published.append((EFA_NAMESPACE, deltas))
            for namespace, values in published:
                for name, value in values.items():
                    data[namespace].append({"MetricName": name, "Dimensions": dims, "Value": value})
                    per_cluster.setdefault((namespace, node.cluster), {}).setdefault(name, []).append(value)
        for (namespace, cluster), metrics in per_cluster.items():
            dims = [{"Name": "ClusterName", "Value": cluster}]
            for name, values in metrics.items():
                data[namespace].append({"MetricName": name, "Dimensions": dims, "StatisticValues": {
                    "SampleCount": float(len(values)), "Sum": float(sum(values)),
                    "Minimum": float(min(values)), "Maximum": float(max(values))}})
        cw = self._cw()
        for namespace, items in data.items():
            if items:
                cw.put_metric_data(namespace, items)
        horizon = utcnow() - dt.timedelta(seconds=self.period_wall * RETENTION_PERIODS)
        current = backends.snapshot(lambda: cw.metric_data)
        ours = (NAMESPACE, EFA_NAMESPACE)
        oldest = next((d for d in current if d.namespace in ours), None)
        if oldest is not None and oldest.timestamp < horizon:
            # rebuilt only when something expired: a user's put_metric_data racing this is rare and harmless
            cw.metric_data = [d for d in current if d.namespace not in ours or d.timestamp >= horizon]

    # -- the evaluator -------------------------------------------------------------------------------------
    def evaluate(self) -> None:
        cw = self._cw()
        data = backends.snapshot(lambda: cw.metric_data)
        for alarm in backends.snapshot(lambda: cw.alarms.values()):
            if alarm.rule is not None or alarm.metric_data_queries or not alarm.metric_name:
                continue   # composite and metric-math alarms are not evaluated by the twin
            try:
                self._evaluate_one(alarm, data)
            except Exception:
                log.exception("evaluating alarm %s", alarm.name)

    def _evaluate_one(self, alarm: Any, data: list[Any]) -> None:
        period = self.clock.wall(float(alarm.period))
        periods = int(alarm.evaluation_periods or 1)
        needed = int(alarm.datapoints_to_alarm or periods)
        now = utcnow()
        wanted = {(d.name, d.value) for d in alarm.dimensions}
        buckets: list[list[Any]] = [[] for _ in range(periods)]     # newest first
        for datum in data:
            if datum.namespace != alarm.namespace or datum.name != alarm.metric_name:
                continue
            if {(d.name, d.value) for d in datum.dimensions} != wanted:
                continue
            age = (now - datum.timestamp).total_seconds()
            index = math.floor(age / period) if age >= 0 else 0
            if 0 <= index < periods:
                buckets[index].append(datum)
        values = [self._statistic(alarm, b) for b in buckets]
        compare, words = OPERATORS.get(alarm.comparison_operator, OPERATORS["GreaterThanThreshold"])
        threshold = float(alarm.threshold)
        present = [v for v in values if v is not None]
        missing = (alarm.treat_missing_data or "missing")
        if not present:
            if missing == "breaching":
                state, breaching = "ALARM", periods
            elif missing == "notBreaching":
                state, breaching = "OK", 0
            elif missing == "ignore":
                return
            else:
                state, breaching = "INSUFFICIENT_DATA", 0
        else:
            breaching = sum(1 for v in present if compare(v, threshold))
            if missing == "breaching":
                breaching += len(values) - len(present)
            state = "ALARM" if breaching >= min(needed, periods) else "OK"
        if state == alarm.state_value:
            return
        shown = ", ".join(f"{v}" for v in present) or "no datapoints"
        if state == "INSUFFICIENT_DATA":
            reason = f"Insufficient Data: {periods} datapoint(s) were unknown."
        else:
            verb = "was" if state == "ALARM" else "was not"
            reason = (f"Threshold Crossed: {breaching} out of the last {periods} datapoints [{shown}] {verb} "
                      f"{words} the threshold ({threshold}) (minimum {needed} datapoint(s) for OK -> ALARM transition).")
        reason_data = json.dumps({
            "version": "1.0", "queryDate": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "statistic": alarm.statistic, "period": alarm.period, "recentDatapoints": present,
            "threshold": threshold, "evaluatedDatapoints": [{"value": v} for v in present]})
        alarm.update_state(reason, reason_data, state)

    @staticmethod
    def _statistic(alarm: Any, bucket: list[Any]) -> float | None:
        if not bucket:
            return None
        count = total = 0.0
        low, high = math.inf, -math.inf
        for d in bucket:
            if hasattr(d, "value"):
                count, total = count + 1, total + d.value
                low, high = min(low, d.value), max(high, d.value)
            else:
                count, total = count + d.sample_count, total + d.sum
                low, high = min(low, d.min), max(high, d.max)
        stat = alarm.statistic or "Average"
        if stat == "Maximum":
            return high
        if stat == "Minimum":
            return low
        if stat == "Sum":
            return total
        if stat == "SampleCount":
            return count
        return total / count if count else None


def install_alarm_history() -> None:
    """Serve describe_alarm_history (moto lacks it) from each alarm's own state-change records."""
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult

    if getattr(CloudWatchResponse, "describe_alarm_history", None) is not None:
        return

    def describe_alarm_history(self: Any) -> ActionResult:
        name = self._get_param("AlarmName")
        item_type = self._get_param("HistoryItemType")
        max_records = int(self._get_param("MaxRecords") or 100)
        newest_first = (self._get_param("ScanBy") or "TimestampDescending") == "TimestampDescending"
        items = []
        for alarm in list(self.cloudwatch_backend.alarms.values()):
            if name and alarm.name != name:
                continue
            # each history entry is the state *before* an update; the state after is the next entry or now
            states = [(h[3], h[1], h[4]) for h in alarm.history if h[0] == "StateUpdate"]
            states.append((alarm.state_value, alarm.state_reason, alarm.state_updated_timestamp))
            for (old, _, _), (new, reason, when) in zip(states, states[1:]):
                items.append({
                    "AlarmName": alarm.name, "AlarmType": "CompositeAlarm" if alarm.rule else "MetricAlarm",
                    "Timestamp": when, "HistoryItemType": "StateUpdate",
                    "HistorySummary": f"Alarm updated from {old} to {new}",
                    "HistoryData": json.dumps({"version": "1.0", "oldState": {"stateValue": old},
                                               "newState": {"stateValue": new, "stateReason": reason}}),
                })
        if item_type and item_type != "StateUpdate":
            items = []
        items.sort(key=lambda i: i["Timestamp"], reverse=newest_first)
        return ActionResult({"AlarmHistoryItems": items[:max_records]})

    CloudWatchResponse.describe_alarm_history = describe_alarm_history  # type: ignore[attr-defined]
