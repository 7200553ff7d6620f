"""The scenario's stop conditions (`stop_when`), judged while the run waits: a breach held for its `for` aborts
the run (exit 3) and the faults are reverted.

Two kinds. A metric condition (`error_rate > 50% for 1m`, `ttft_p99`, `tbt_p99`) is judged on the load's
live figures, once enough requests answered to mean something; its breach counts from when it was first
seen and resets when it clears, over the whole run. An `alarm:<name>` condition reads the alarm watch's
latest state (harness/alarmwatch.py polls CloudWatch in its own thread, so judging makes no call).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from harness.alarmwatch import AlarmWatch, alarm_names
from harness.load.process import LiveFigures
from harness.report.model import StopRecord
from harness.run.events import RunEvents
from harness.run.outcomes import Aborted, TargetUnreachable

MIN_REQUESTS = 20      # a metric condition is not judged on fewer answers


class StopConditions:
    def __init__(self, stop_when: list[Any], target: Any, events: RunEvents):
        self.stop_when = list(stop_when)
        self.target = target
        self.events = events
        self.alarms: AlarmWatch | None = None
        self.breach_since: dict[str, float] = {}   # condition -> when its breach was first seen (whole run)

    def watch_alarms(self) -> None:
        """Start reading the `alarm:` conditions' alarms; a run whose stop alarms cannot be read must not start."""
        names = alarm_names(self.stop_when)
        if not names:
            return
        self.alarms = AlarmWatch(self.target.aws("cloudwatch"), names, on_error=self.events.alarm_watch_error.fire)
        self.alarms.start()
        if not self.alarms.wait_first(15.0):
            raise TargetUnreachable(f"could not read the state of stop-condition alarm(s) {', '.join(names)}")

    def stop(self) -> None:
        if self.alarms is not None:
            self.alarms.stop()

    def check(self, live: LiveFigures | None, now: float) -> None:
        """Aborted when a condition has held for its `for`; `live` None: the load has not started."""
        if live is not None:
            self.check_metrics(live, now)
        self.check_alarms(now)

    def check_metrics(self, live: LiveFigures, now: float) -> None:
        values = {"error_rate": live.error_rate, "ttft_p99": (live.ttft_p99_ms or 0) / 1000,
                  "tbt_p99": (live.tbt_p99_ms or 0) / 1000}
        for condition in self.stop_when:
            if condition.metric not in values:
                continue
            observed = values[condition.metric]
            if condition.breached(observed) and live.requests >= MIN_REQUESTS:
                since = self.breach_since.setdefault(condition.text, now)
                if now - since >= self.target.wall_seconds(condition.for_s):
                    record = StopRecord(condition=condition.text, observed=observed, threshold=condition.threshold,
                                        held_for_s=now - since, fired_at=now,
                                        reason=f"{condition.metric} {observed:.4g} breached '{condition.text}' "
                                               f"for {now - since:.2f} s")
                    self.events.stop_condition_fired.fire(record)
                    raise Aborted(record.reason, record)
            else:
                self.breach_since.pop(condition.text, None)

    def check_alarms(self, now: float) -> None:
        """`alarm:<name>` stop conditions, from the alarm watch's latest reading (no call made here).

        The `for` window counts from when the harness first read the alarm in ALARM; the report also gives
        CloudWatch's own state-change time, so how long the abort took is on record from both clocks."""
        if self.alarms is None:
            return
        states = self.alarms.states()
        for condition in self.stop_when:
            if condition.metric != "alarm":
                continue
            alarm = states.get(condition.alarm or "")
            if alarm is None or alarm.state != "ALARM":
                continue
            held = now - alarm.seen_at
            if held < self.target.wall_seconds(condition.for_s):
                continue
            changed = (datetime.fromtimestamp(alarm.updated_at, timezone.utc).isoformat(timespec="milliseconds")
                       if alarm.updated_at is not None else "?")
            record = StopRecord(condition=condition.text, observed=None, threshold=None, held_for_s=held,
                                fired_at=now, alarm=alarm.name, alarm_arn=alarm.arn, state=alarm.state,
                                state_updated_at=alarm.updated_at, state_reason=alarm.reason,
                                reason=f"alarm {alarm.name} in ALARM (since {changed}, seen {held:.2f} s ago) fired "
                                       f"'{condition.text}': {alarm.reason}"[:1000])
            self.events.stop_condition_fired.fire(record)
            raise Aborted(record.reason, record)
