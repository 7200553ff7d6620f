"""CloudWatch alarms named by `stop_when: ["alarm:<name>"]`, watched from their own thread.

A stop condition must abort within a second of being observed, and the runner's wait loop ticks every
100 ms with the load's figures; a CloudWatch call there would put AWS's latency (and, on a flaky control
plane, botocore's retries) into every tick. So one thread asks CloudWatch `describe_alarms` for exactly the
named alarms every POLL_S (all names in one call) and keeps the last answer; the wait loop only reads it. CloudWatch has no push
for alarm state short of SNS/EventBridge wiring the harness does not own, so polling is the way.

Alarms are resolved (name -> ARN) before anything is injected: a stop condition naming an alarm that does not
exist would never fire, which is worse than not running, so it is refused as invalid input.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

# Alarm state read every 400 ms: a state change is seen within 0.4 s plus one call, so the abort lands within
# 1 s of it; and 2.5 calls a second stay well under CloudWatch's DescribeAlarms quota (9 per second per
# account and region by default), even with two runs side by side and the account's own tools calling too.
POLL_S = 0.4
MAX_NAMES_PER_CALL = 100   # describe_alarms takes at most 100 AlarmNames


class MissingAlarms(ValueError):
    """stop_when names alarms CloudWatch does not have."""

    def __init__(self, names: list[str]):
        super().__init__(f"stop_when names CloudWatch alarm(s) that do not exist: {', '.join(names)}")
        self.names = names


class AlarmState(BaseModel):
    """One alarm as last read. `updated_at` is CloudWatch's own StateUpdatedTimestamp; `seen_at` when the
    harness first read the current state (so a breach's `for` window counts from what was observed)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arn: str
    state: str
    reason: str = ""
    updated_at: float | None = None
    seen_at: float


def alarm_names(conditions: Iterable[Any]) -> list[str]:
    """The alarm names of `alarm:` stop conditions, in order, each once."""
    names: list[str] = []
    for condition in conditions or []:
        name = getattr(condition, "alarm", None)
        if getattr(condition, "metric", None) == "alarm" and name and name not in names:
            names.append(name)
    return names


def describe_by_name(cloudwatch: Any, names: list[str]) -> list[dict[str, Any]]:
    """The named alarms (metric and composite) as CloudWatch has them now: DescribeAlarms with AlarmNames, one
    call per 100 names, never a walk through every alarm of the account."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(names), MAX_NAMES_PER_CALL):
        chunk = names[start:start + MAX_NAMES_PER_CALL]
        token = None
        while True:
            page = cloudwatch.describe_alarms(AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"],
                                              **({"NextToken": token} if token else {}))
            found.extend(page.get("MetricAlarms", []) + page.get("CompositeAlarms", []))
            token = page.get("NextToken")
            if not token:
                break
    return found


def resolve_alarms(cloudwatch: Any, names: list[str]) -> dict[str, str]:
    """Alarm name -> ARN for every name (read-only), or MissingAlarms naming those CloudWatch lacks."""
    if not names:
        return {}
    arns = {a["AlarmName"]: a["AlarmArn"] for a in describe_by_name(cloudwatch, names)}
    missing = [n for n in names if n not in arns]
    if missing:
        raise MissingAlarms(missing)
    return {n: arns[n] for n in names}


def _stamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    return None


class AlarmWatch:
    """Reads the named alarms' states every POLL_S in a daemon thread; `states()` is the latest reading."""

    def __init__(self, cloudwatch: Any, names: list[str], *, poll_s: float = POLL_S,
                 on_error: Callable[[str], None] | None = None):
        self.cloudwatch = cloudwatch
        self.names = list(names)
        self.poll_s = poll_s
        self.on_error = on_error
        self._states: dict[str, AlarmState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors = 0

    def start(self) -> None:
        if not self.names or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="alarm-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_first(self, timeout_s: float) -> bool:
        """True once every alarm has been read at least once (or there is nothing to watch)."""
        return not self.names or self._first.wait(timeout_s)

    def states(self) -> dict[str, AlarmState]:
        with self._lock:
            return dict(self._states)

    def poll(self) -> None:
        """One reading of every alarm (the thread's step; callable directly)."""
        now = time.time()
        read = {a["AlarmName"]: a for a in describe_by_name(self.cloudwatch, self.names)}
        with self._lock:
            for name, alarm in read.items():
                previous = self._states.get(name)
                state = str(alarm.get("StateValue", ""))
                seen_at = previous.seen_at if previous is not None and previous.state == state else now
                self._states[name] = AlarmState(name=name, arn=alarm["AlarmArn"], state=state,
                                                reason=str(alarm.get("StateReason", ""))[:500],
                                                updated_at=_stamp(alarm.get("StateUpdatedTimestamp")),
                                                seen_at=seen_at)
        if all(n in read for n in self.names):
            self._first.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            try:
                self.poll()
            except Exception as exc:   # a failed read keeps the last state; the next poll tries again
                self._errors += 1
                if self.on_error is not None and self._errors in (1, 10, 100):
                    self.on_error(f"describe_alarms failed ({self._errors} so far): {type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.poll_s - (time.time() - started)))
