"""alarm-fired: a CloudWatch alarm on the metric went to ALARM within the limit after the fault landed.

CloudWatch offers no watch, so the check samples `describe_alarms` while the run goes on (every quarter
second of wall time, bounded by the run) and stamps the first ALARM it sees; alarm history confirms it
afterwards when the sample missed a short ALARM period.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from harness.checks.base import Check, Evidence, register


@register
class AlarmFired(Check):
    name = "alarm-fired"
    POLL_S = 0.25

    def start(self, ctx: Any) -> None:
        self.cloudwatch = ctx.target.aws("cloudwatch")
        self.first_alarm: dict[str, float] = {}
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
                    self.known.add(alarm["AlarmName"])
                    if alarm["StateValue"] == "ALARM":
                        self.first_alarm.setdefault(alarm["AlarmName"], time.time())
            except Exception:   # a throttled or failed call: the next sample tries again
                pass
            self._stop.wait(self.POLL_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def evaluate(self, evidence: Evidence):
        what = self.params.alarm or f"metric {self.params.metric}"
        limit = evidence.wall(self.params.within)
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
        if landed is None:
            return self.result(False, "no fault landed: nothing to alarm on", alarms=sorted(self.known))
        fired = {name: at - landed for name, at in self.first_alarm.items() if at >= landed - 1.0}
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
