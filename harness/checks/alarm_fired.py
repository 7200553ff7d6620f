"""alarm-fired: a CloudWatch alarm on the metric went to ALARM within the limit after the fault landed.

Which alarms: the scenario's `alarm` when it names one; otherwise the target's alarm for the metric in each of
its clusters (`alarms` in targets.yaml, e.g. `{cluster}-gpu-ecc-dbe`); only for a metric the target configures
no alarm for does the check look the alarms up by metric name, in one paginated DescribeAlarms at its start.
The names are resolved once. From then on the check asks DescribeAlarms for exactly those names (one call for
up to 100 names) every POLL_S while the run goes on, and stamps every entry into ALARM it sees. Paging
through every alarm of the account four times a second, as a metric-name match would, competes for the
account's DescribeAlarms quota (9 requests per second per account and region by default, shared with every
other tool of the account) and gets throttled; a call by name costs one request whatever the account holds.

An entry counts from the fault's injection on, not from the moment the harness confirmed it landed: a fault
starts acting when injected, and its confirmation can take a second or more (an all_reduce_perf run has to
finish before it prints its bandwidth), in which time a fast alarm may already have fired. An alarm already in
ALARM before the injection counts only if it leaves ALARM and enters it again.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import Field

from harness.alarmwatch import describe_by_name
from harness.checks.base import Check, Evidence, register
from harness.report.marks import ClusterMark
from harness.strict.params import CheckParams
from harness.strict.units import Duration

# One DescribeAlarms call by name every half second: an entry into ALARM is stamped within 0.5 s of wall time,
# and with stop_when's watch (0.4 s) a run makes 4.5 calls a second, half the account's default quota.
POLL_S = 0.5
MAX_BACKOFF_S = 8.0       # a throttled or failing call waits longer each time, up to this


def configured_alarm_names(target: Any, metric: str, alarm: str | None) -> list[str]:
    """The alarm(s) a check on `metric` watches by configuration: the scenario's `alarm`, else the target's
    alarm for the metric in each cluster (empty when the target configures none for this metric)."""
    if alarm:
        return [alarm]
    names: list[str] = []
    for cluster in target.contexts:
        name = target.spec.alarms.for_metric(metric, cluster)
        if name and name not in names:
            names.append(name)
    return names


def alarms_on_metric(cloudwatch: Any, metric: str) -> list[str]:
    """Names of the metric alarms on `metric`, from one paginated DescribeAlarms (for metrics the target
    configures no alarm for; DescribeAlarmsForMetric would need the namespace and dimensions too)."""
    names = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
        names.extend(a["AlarmName"] for a in page.get("MetricAlarms", []) if a.get("MetricName") == metric)
    return names


def resolve_alarm_names(target: Any, cloudwatch: Any, metric: str, alarm: str | None) -> tuple[list[str], str]:
    """(names to watch, how they were chosen). Configured names are kept even when CloudWatch lacks them:
    the check then reports the missing alarm instead of silently watching another one."""
    names = configured_alarm_names(target, metric, alarm)
    if names:
        return names, "the scenario's alarm" if alarm else f"the target's alarm(s) for {metric}"
    return alarms_on_metric(cloudwatch, metric), f"alarms on metric {metric} (the target configures none)"


def unobservable_metric(evidence: Evidence, metric: str | None) -> str | None:
    """Why no alarm on `metric` could see the faults of this run, when a fault found that out (a DCGM injection
    that the node's dcgm-exporter cannot show: embedded hostengine, or the counter not exported), else None.
    Such a run says nothing about the deployment's alarm, and says so, rather than failing for a reason nobody
    can see; `g7chaos audit` flags the exporter configuration."""
    if not metric:
        return None
    blind = {node: why for fault in evidence.faults for node, why in fault.unobservable.get(metric, {}).items()}
    if not blind:
        return None
    return (f"{metric} is not observable with this dcgm-exporter configuration, so no alarm on it can fire: "
            + "; ".join(f"{node}: {why}" for node, why in sorted(blind.items())))


class AlarmFiredParams(CheckParams):
    """A CloudWatch alarm on `metric` (or the alarm named `alarm`) is in ALARM within the limit."""

    metric: str = Field(..., min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_./:\-]+$")
    alarm: str | None = Field(None, max_length=255, description="alarm name; default: the target's alarm for metric")
    within: Duration = Field(60.0, gt=0)


@register
class AlarmFired(Check):
    name = "alarm-fired"
    params_model = AlarmFiredParams
    params: AlarmFiredParams
    POLL_S = POLL_S

    def __init__(self, params: AlarmFiredParams):
        super().__init__(params)
        self.entered: dict[str, list[float]] = {}     # alarm -> when each entry into ALARM was seen
        self.last_state: dict[str, str] = {}
        self.changes: list[tuple[float, str, str, str]] = []   # (seen at, alarm, state, reason): the report's marks
        self.known: set[str] = set()

    def start(self, ctx: Any) -> None:
        self.cloudwatch = ctx.target.aws("cloudwatch")
        try:
            self.names, self.chosen = resolve_alarm_names(ctx.target, self.cloudwatch, self.params.metric,
                                                          self.params.alarm)
        except Exception as exc:      # judged at evaluate: CloudWatch could not be read
            self.names, self.chosen, self.resolve_error = [], "", f"{type(exc).__name__}: {exc}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="alarm-fired")
        self._thread.start()

    def _read(self) -> list[dict[str, Any]]:
        """The watched alarms as CloudWatch has them now: one DescribeAlarms by name (per 100 names)."""
        return describe_by_name(self.cloudwatch, self.names) if self.names else []

    def _poll(self) -> None:
        wait = self.POLL_S
        while not self._stop.is_set() and self.names:
            try:
                for alarm in self._read():
                    self.observe(alarm, time.time())
                wait = self.POLL_S
            except Exception:   # a throttled or failed call: back off, the next sample tries again
                wait = min(MAX_BACKOFF_S, wait * 2)
            self._stop.wait(wait)

    def observe(self, alarm: dict[str, Any], seen_at: float) -> None:
        """One sample of one alarm. An entry into ALARM is stamped when first seen; an alarm found in ALARM at
        the first sample is stamped with its own StateUpdatedTimestamp, since it may have been there long before."""
        name, state = alarm["AlarmName"], alarm["StateValue"]
        self.known.add(name)
        previous = self.last_state.get(name)
        self.last_state[name] = state
        if previous is not None and state != previous:
            self.changes.append((seen_at, name, state, alarm.get("StateReason", "")))
        if state != "ALARM" or previous == "ALARM":
            return
        if previous is None:
            updated = alarm.get("StateUpdatedTimestamp")
            seen_at = min(seen_at, updated.timestamp()) if hasattr(updated, "timestamp") else float("-inf")
        self.entered.setdefault(name, []).append(seen_at)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def marks(self) -> list[ClusterMark]:
        """Each state change of a watched alarm, stamped when a sample first showed it."""
        return [ClusterMark(at=at, kind="alarm", subject=name, label=f"alarm {name} {state}", detail=reason)
                for at, name, state, reason in self.changes]

    def _missing(self, what: str) -> str:
        names = getattr(self, "names", [])
        if names:
            return (f"no CloudWatch alarm watches {what}: {getattr(self, 'chosen', 'the alarm(s)')} "
                    f"({', '.join(names)}) do not exist")
        return f"no CloudWatch alarm watches {what}: the fault went unalarmed"

    def evaluate(self, evidence: Evidence):
        unobservable = unobservable_metric(evidence, self.params.metric)
        if unobservable:
            return self.result(False, unobservable, observable=False)
        what = self.params.alarm or f"metric {self.params.metric}"
        limit = evidence.wall(self.params.within)
        injected = min((f.injected_at for f in evidence.faults if f.injected_at), default=None)
        landed = min((f.landed_at or f.injected_at for f in evidence.faults if f.injected_at), default=None)
        if getattr(self, "resolve_error", None):
            return self.result(False, f"could not read CloudWatch alarms: {self.resolve_error}")
        if not self.known and getattr(self, "names", None):
            try:
                self.known = {a["AlarmName"] for a in self._read()}
            except Exception as exc:
                return self.result(False, f"could not read CloudWatch alarms: {exc}")
        if not self.known:
            return self.result(False, self._missing(what), alarms=[])
        if landed is None or injected is None:
            return self.result(False, "no fault landed: nothing to alarm on", alarms=sorted(self.known))
        # from the injection on (less a second of clock skew between the harness and CloudWatch)
        fired = {name: min(after) - landed for name, entries in self.entered.items()
                 if (after := [at for at in entries if at >= injected - 1.0])}
        in_time = {name: took for name, took in fired.items() if took <= limit}
        if in_time:
            name, took = min(in_time.items(), key=lambda kv: kv[1])
            return self.result(True, f"{name} in ALARM {max(took, 0):.2f} s after the fault landed (limit {limit:.2f} s)",
                               alarms=sorted(self.known), fired_after_s=fired)
        if fired:
            name, took = min(fired.items(), key=lambda kv: kv[1])
            return self.result(False, f"{name} went to ALARM only after {took:.2f} s (limit {limit:.2f} s)",
                               alarms=sorted(self.known), fired_after_s=fired)
        return self.result(False, f"{len(self.known)} alarm(s) on {what} never went to ALARM within {limit:.2f} s",
                           alarms=sorted(self.known))
