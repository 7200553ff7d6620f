"""alarm-fired: a CloudWatch alarm on the metric went to ALARM within the limit after the fault landed.

CloudWatch offers no watch, so the check samples `describe_alarms` while the run goes on (every quarter
second of wall time, bounded by the run) and stamps every entry into ALARM it sees.

An entry counts from the fault's injection on, not from the moment the harness confirmed it landed: a fault
starts acting when injected, and its confirmation can take a second or more (an all_reduce_perf run has to
finish before it prints its bandwidth), in which time a fast alarm may already have fired. An alarm already in
ALARM before the injection counts only if it leaves ALARM and enters it again.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from harness.checks.base import Check, Evidence, register


def unobservable_metric(evidence: Evidence, metric: str | None) -> str | None:
    """Why no alarm on `metric` could see the faults of this run, when a fault found that out (a DCGM injection
    that the node's dcgm-exporter cannot show: embedded hostengine, or the counter not exported), else None.
    Such a run says nothing about the deployment's alarm, and says so, rather than failing for a reason nobody
    can see; `g7chaos audit` flags the exporter configuration."""
    if not metric:
        return None
    blind = {node: why for fault in evidence.faults
             for node, why in (getattr(fault, "extra", {}).get("unobservable", {}).get(metric) or {}).items()}
    if not blind:
        return None
    return (f"{metric} is not observable with this dcgm-exporter configuration, so no alarm on it can fire: "
            + "; ".join(f"{node}: {why}" for node, why in sorted(blind.items())))


@register
class AlarmFired(Check):
    name = "alarm-fired"
    POLL_S = 0.25

    def start(self, ctx: Any) -> None:
        self.cloudwatch = ctx.target.aws("cloudwatch")
        self.entered: dict[str, list[float]] = {}     # alarm -> when each entry into ALARM was seen
        self.last_state: dict[str, str] = {}
        self.known: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="alarm-fired")
        self._thread.start()

    def _matching(self) -> list[dict]:
        alarms = []
        seen = 0
        for page in self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
            for alarm in page["MetricAlarms"]:
                seen += 1
                if (self.params.alarm and alarm["AlarmName"] == self.params.alarm) or \
                        (not self.params.alarm and alarm.get("MetricName") == self.params.metric):
                    alarms.append(alarm)
        self.total_alarms = seen
        return alarms

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                for alarm in self._matching():
                    self.observe(alarm, time.time())
            except Exception:   # a throttled or failed call: the next sample tries again
                pass
            self._stop.wait(self.POLL_S)

    def observe(self, alarm: dict[str, Any], seen_at: float) -> None:
        """One sample of one alarm. An entry into ALARM is stamped when first seen; an alarm found in ALARM at
        the first sample is stamped with its own StateUpdatedTimestamp, since it may have been there long before."""
        name, state = alarm["AlarmName"], alarm["StateValue"]
        self.known.add(name)
        previous = self.last_state.get(name)
        self.last_state[name] = state
        if state != "ALARM" or previous == "ALARM":
            return
        if previous is None:
            updated = alarm.get("StateUpdatedTimestamp")
            seen_at = min(seen_at, updated.timestamp()) if hasattr(updated, "timestamp") else float("-inf")
        self.entered.setdefault(name, []).append(seen_at)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def evaluate(self, evidence: Evidence):
        unobservable = unobservable_metric(evidence, self.params.metric)
        if unobservable:
            return self.result(False, unobservable, observable=False)
        what = self.params.alarm or f"metric {self.params.metric}"
        limit = evidence.wall(self.params.within)
        injected = min((f.injected_at for f in evidence.faults if f.injected_at), default=None)
        landed = min((f.landed_at or f.injected_at for f in evidence.faults if f.injected_at), default=None)
        if not self.known:
            try:
                self.known = {a["AlarmName"] for a in self._matching()}
            except Exception as exc:
                return self.result(False, f"could not read CloudWatch alarms: {exc}")
        if not self.known:
            total = getattr(self, "total_alarms", None)
            among = f" (0 of the {total} metric alarms in the region)" if total is not None else ""
            return self.result(False, f"no CloudWatch alarm watches {what}{among}: the fault went unalarmed",
                               alarms=[])
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
