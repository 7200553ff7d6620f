"""Each fault's milestones as they happen, for the live view and the journal.

The report computes milestones once, from the run's files (harness/report/timeline.py). During the run the same
`MilestoneFinder` runs on what exists so far: the cluster marks derived from the watches up to now
(harness/run/clustermarks.py), so detect, isolate, drain and replace appear live at the moment the report will
give them. Impact is read from the live load figures of the fault's window (its first report with a failed
request, or with TTFT p99 over the SLO line): the per-request records are the load processes' files and are
read once, at the end, so the report's impact may be earlier by up to one live report. Both criteria imply a
request the report counts as not good (failed, or its TTFT over the line). A TBT p99 over the line does not: the
report judges a request's pace by its time per output token, and one slow gap among a hundred is no late
answer, so a live TBT figure would announce an impact the report then calls absent. SLO restored needs the
sustained goodput that only the records give: the report states it.

Ticks ride on the load's live reports (a few a second) and are throttled, so a long run costs a fold of the
new observations and a pass over the marks every `TICK_S`.
"""
from __future__ import annotations

import time

from harness.faults import Fault
from harness.load.process import LiveFigures
from harness.observe import Timeline
from harness.report.marks import ClusterMark
from harness.report.model import CheckLimit, Milestone, RunResult
from harness.report.timeline import FaultSpan, MilestoneFinder, read_load
from harness.run.clustermarks import MarkDeriver, fault_marks
from harness.run.events import RunEvents
from harness.run.verdict import fault_records

TICK_S = 1.0
LIVE_FROM_MARKS = ("detect", "isolate", "drain", "replace")


class LiveMilestones:
    def __init__(self, events: RunEvents, timeline: Timeline, faults: list[Fault], *, scenario: str,
                 time_scale: float, slo_ttft_ms: float, slo_tbt_ms: float, limits: list[CheckLimit]):
        self.events = events
        self.timeline = timeline
        self.faults = faults
        self.base = RunResult(scenario=scenario, verdict="pass", exit_code=0, time_scale=time_scale,
                              slo_ttft_ms=slo_ttft_ms, slo_tbt_ms=slo_tbt_ms, limits=limits)
        self.deriver = MarkDeriver()
        self.folded = 0
        self.empty = read_load(None)
        self.reached: set[tuple[int, str]] = set()
        self.last_tick = 0.0

    def listen(self) -> None:
        self.events.load_reported.add_listener(self.tick)

    def tick(self, figures: LiveFigures) -> None:
        now = time.time()
        injected = [f for f in self.faults if f.injected_at is not None]
        if not injected or now - self.last_tick < TICK_S:
            return
        self.last_tick = now
        marks = sorted([*self.cluster_marks(), *fault_marks(injected)], key=lambda m: m.at)
        result = self.base.model_copy(update={"faults": fault_records(injected)})
        finder = MilestoneFinder(result, self.empty, marks, now)
        for record in result.faults:
            span = FaultSpan.of(record, now)
            if span is None:
                continue
            if (record.index, "impact") not in self.reached and self._impact(figures, record.name):
                self._reach(finder.milestone(span, "impact", now, f"live load figures: {self._why(figures)}"))
            for milestone in finder.of(span):
                if milestone.name in LIVE_FROM_MARKS and milestone.reached:
                    self._reach(milestone)

    def cluster_marks(self) -> list[ClusterMark]:
        """The marks of every observation so far: only those not folded before are folded now. The run's end
        takes cluster.jsonl from here, so the marks the live view announced are the report's, computed once."""
        with self.timeline.lock:
            new = self.timeline.observations[self.folded:]
            self.folded += len(new)
        self.deriver.fold(new)
        return list(self.deriver.marks)

    def _impact(self, figures: LiveFigures, fault: str) -> bool:
        if figures.window != f"fault:{fault}":
            return False
        return bool(self._why(figures))

    def _why(self, figures: LiveFigures) -> str:
        slo = self.base
        if figures.errors:
            return f"{figures.errors} failed request(s) in {figures.window}"
        if figures.ttft_p99_ms is not None and slo.slo_ttft_ms is not None and figures.ttft_p99_ms > slo.slo_ttft_ms:
            return f"TTFT p99 {figures.ttft_p99_ms:.0f} ms over {slo.slo_ttft_ms:g} ms"
        return ""

    def _reach(self, milestone: Milestone) -> None:
        key = (milestone.index, milestone.name)
        if key in self.reached:
            return
        self.reached.add(key)
        self.events.milestone_reached.fire(milestone)


def describe(milestone: Milestone) -> str:
    """One console line: "ecc-double-bit-error: drain after 117.3 s (limit 180 s) - pod x left, the last of 8"."""
    limit = f" (limit {milestone.limit_s:g} s)" if milestone.limit_s is not None else ""
    late = " LATE" if milestone.late else ""
    return (f"{milestone.fault}: {milestone.name} after {milestone.after_s or 0:.1f} s{limit}{late}"
            f" - {milestone.source}")
