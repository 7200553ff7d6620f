"""The console: a live view while a run is in progress, and the verdict at the end.

Two audiences. An SRE at a terminal wants a live panel (phase, elapsed time, load figures, the last events)
that redraws in place. A CI log wants plain lines: no cursor movement, no colours, no box-drawing tricks,
and not one line per 250 ms load update. `ConsoleView` picks the mode from whether its output is a terminal
(override with `live=`); a run's events reach it through harness/run/onconsole.py, which calls the same small
API either way:

    view = ConsoleView()
    with view:
        view.phase("steady-state")
        view.load(LoadFigures(rps=41.0, error_rate=0.0, ttft_p99_ms=212.0, tbt_p99_ms=31.0))
        view.event("injected ecc-double-bit-error on ip-10-0-1-12... gpu 0")
    view.final(result)

All methods are thread-safe (the load poller and the fault timeline run in different threads) and every line
is redacted like the report files.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any, Mapping

from pydantic import BaseModel
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harness.redact import Redactor, default_redactor
from harness.report.model import GamedayResult, RunResult

VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "aborted": "bold dark_orange", "error": "bold magenta",
                 "inconclusive": "bold yellow"}

# how each check status reads in the console: not-applicable is neither a pass nor a failure
STATUS_TEXT = {"pass": Text("PASS", style="green"), "fail": Text("FAIL", style="bold red"),
               "not-applicable": Text("N/A", style="dim"), "inconclusive": Text("INCONCLUSIVE", style="bold yellow")}


class LoadFigures(BaseModel):
    """Live figures of the current load window, as the load process reports them."""

    rps: float | None = None
    requests: int | None = None
    errors: int | None = None
    error_rate: float | None = None          # fraction 0..1
    ttft_p99_ms: float | None = None
    tbt_p99_ms: float | None = None
    window: str | None = None
    degraded: bool = False
    degraded_reason: str | None = None

    def line(self) -> str:
        parts = []
        if self.window:
            parts.append(f"window {self.window}")
        parts.append(f"rps {_num(self.rps, '.1f')}")
        if self.requests is not None:
            parts.append(f"requests {self.requests}")
        parts.append(f"errors {_pct(self.error_rate)}")
        parts.append(f"ttft p99 {_num(self.ttft_p99_ms, '.0f')} ms")
        parts.append(f"tbt p99 {_num(self.tbt_p99_ms, '.1f')} ms")
        if self.degraded:
            parts.append("DEGRADED" + (f" ({self.degraded_reason})" if self.degraded_reason else ""))
        return " | ".join(parts)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}%"


def _stream_is_terminal(stream: IO[str] | None, environ: Mapping[str, str] | None = None) -> bool:
    """A live view needs a terminal that understands cursor movement: a TTY whose TERM is not dumb."""
    import os

    env = os.environ if environ is None else environ
    if env.get("TERM", "") in ("dumb", "unknown"):
        return False
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


class ConsoleView:
    """Live run view (terminal) or plain progress lines (CI), plus the final tables.

    `plain_load_interval_s`: in plain mode, load figures are printed at most this often (phase changes and
    events are always printed at once).
    """

    def __init__(self, stream: IO[str] | None = None, *, live: bool | None = None, title: str = "g7chaos",
                 redactor: Redactor | None = None, plain_load_interval_s: float = 5.0, width: int | None = None,
                 clock=time.monotonic):
        import sys

        stream = stream if stream is not None else sys.stdout
        self.is_live = _stream_is_terminal(stream) if live is None else live
        if self.is_live:
            self.console = Console(file=stream, force_terminal=True, markup=False, width=width)
        else:
            # No terminal: no colours, no control codes, no soft wrapping games, ASCII boxes (CI log viewers).
            self.console = Console(file=stream, force_terminal=False, no_color=True, color_system=None,
                                   highlight=False, emoji=False, markup=False, width=width or 120,
                                   force_jupyter=False, legacy_windows=False)
        self.title = title
        self.redactor = redactor or default_redactor()
        self.plain_load_interval_s = plain_load_interval_s
        self._clock = clock
        self._lock = threading.RLock()
        self._started = clock()
        self._phase = "starting"
        self._figures: LoadFigures | None = None
        self._events: deque[str] = deque(maxlen=8)
        self._last_plain_load = float("-inf")
        self._rate_window: str | None = None
        self._rate_samples: deque[tuple[float, int]] = deque()
        self._live: Live | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def __enter__(self) -> "ConsoleView":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        with self._lock:
            self._started = self._clock()
            if not self.is_live or self._live is not None:
                return
            # get_renderable: Live's own refresh thread re-renders 4x a second, so elapsed time keeps moving
            # between updates. _render never takes our lock (Live holds its own while rendering: taking ours
            # there could deadlock against an update that holds ours and waits for Live's).
            self._live = Live(console=self.console, refresh_per_second=4, transient=False,
                              get_renderable=self._render)
            live = self._live
        live.start()

    def stop(self) -> None:
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            live.refresh()
            live.stop()

    # -- updates from the runner (wired to a run's events by harness/run/onconsole.py) ------------------------
    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = self.redactor.text(name)
            self._plain(f"phase: {self._phase}")
        self._refresh()

    def load(self, figures: LoadFigures | BaseModel | Mapping[str, Any]) -> None:
        """Live load figures: a LoadFigures, a mapping, or any model with the same field names (e.g. the load
        process's live figures). Without `rps`, the rate is derived from the request count over the last ~5 s."""
        if isinstance(figures, BaseModel) and not isinstance(figures, LoadFigures):
            figures = figures.model_dump()
        if not isinstance(figures, LoadFigures):
            figures = LoadFigures.model_validate(dict(figures))
        with self._lock:
            if figures.rps is None and figures.requests is not None:
                figures = figures.model_copy(update={"rps": self._derived_rps(figures)})
            became_degraded = figures.degraded and not (self._figures and self._figures.degraded)
            self._figures = figures
            now = self._clock()
            if not self.is_live and (became_degraded or now - self._last_plain_load >= self.plain_load_interval_s):
                self._last_plain_load = now
                self._plain(f"load: {self.redactor.text(figures.line())}")
        # no redraw here: Live redraws 4x a second by itself, and rendering per update would cost the runner CPU

    def event(self, text: str) -> None:
        with self._lock:
            line = self.redactor.text(text)
            self._events.append(f"{self.elapsed_s:7.1f}s  {line}")
            self._plain(line)

    def _derived_rps(self, figures: LoadFigures) -> float | None:
        now = self._clock()
        if self._rate_window != figures.window or (self._rate_samples and figures.requests < self._rate_samples[-1][1]):
            self._rate_samples.clear()          # new window: counts restart
            self._rate_window = figures.window
        self._rate_samples.append((now, figures.requests or 0))
        while len(self._rate_samples) > 2 and now - self._rate_samples[1][0] >= 5.0:
            self._rate_samples.popleft()
        (t0, r0), (t1, r1) = self._rate_samples[0], self._rate_samples[-1]
        return (r1 - r0) / (t1 - t0) if t1 - t0 >= 0.5 else None

    # -- output ---------------------------------------------------------------------------------------------
    def _plain(self, line: str) -> None:
        if not self.is_live:
            self.console.print(f"[{self.elapsed_s:7.1f}s] {line}", soft_wrap=True)

    def _refresh(self) -> None:
        live = self._live
        if live is not None:
            live.refresh()

    def _render(self) -> Panel:
        # A consistent-enough snapshot without our lock: attribute reads and list(deque) are atomic under the GIL.
        phase, f, events = self._phase, self._figures, list(self._events)
        head = Text.assemble(("phase ", "dim"), (phase, "bold cyan"), ("   elapsed ", "dim"),
                             (f"{self.elapsed_s:.1f} s", "bold"))
        parts: list[Any] = [head]
        if f is not None:
            grid = Table.grid(padding=(0, 2))
            for _ in range(6):
                grid.add_column()
            grid.add_row("rps", "errors", "ttft p99", "tbt p99", "window", "measurement")
            grid.add_row(_num(f.rps, ".1f"), _pct(f.error_rate), f"{_num(f.ttft_p99_ms, '.0f')} ms",
                         f"{_num(f.tbt_p99_ms, '.1f')} ms", f.window or "-",
                         Text("DEGRADED" + (f": {f.degraded_reason}" if f.degraded_reason else ""), style="bold yellow")
                         if f.degraded else Text("ok", style="green"))
            parts.append(grid)
        if events:
            parts.append(Text("\n".join(events), style="dim"))
        return Panel(Group(*parts), title=self.title, border_style="blue")

    def _box(self) -> box.Box:
        return box.ROUNDED if self.is_live else box.ASCII

    def checks_table(self, result: RunResult) -> Table:
        table = Table(title=f"checks: {result.scenario}", box=self._box(), show_lines=False)
        table.add_column("check")
        table.add_column("result")
        table.add_column("reason", overflow="fold")
        for check in result.checks:
            table.add_row(check.name, STATUS_TEXT[check.status], self.redactor.text(check.reason))
        return table

    def faults_table(self, result: RunResult) -> Table:
        table = Table(title="faults", box=self._box())
        for column in ("fault", "target", "injected", "landed", "reverted"):
            table.add_column(column, overflow="fold")
        for fault in result.faults:
            landed = ("yes" if fault.landed else "NO" if fault.landed is False else "not proven")
            if fault.landed and fault.landed_at and fault.injected_at:
                landed += f" (+{(fault.landed_at - fault.injected_at).total_seconds():.1f} s)"
            reverted = fault.reverted_at.strftime("%H:%M:%S") if fault.reverted_at else "-"
            if fault.revert_error:
                reverted += f" (error: {fault.revert_error})"
            table.add_row(fault.name, self.redactor.text(fault.target),
                          fault.injected_at.strftime("%H:%M:%S") if fault.injected_at else "not injected",
                          Text(landed, style="green" if fault.landed else "bold red"), self.redactor.text(reverted))
        return table

    def milestones_table(self, result: RunResult) -> Table:
        """Each fault's milestones on the scenario's clock, as the report shows them."""
        table = Table(title="milestones (deployment seconds after the fault began)", box=self._box())
        for column in ("fault", "milestone", "after", "limit", "from"):
            table.add_column(column, overflow="fold")
        for m in result.milestones:
            after = Text(f"{m.after_s:.1f} s", style="bold red" if m.late else "") if m.after_s is not None else \
                Text("absent", style="dim")
            table.add_row(f"{m.index}: {m.fault}", m.name, after, f"{m.limit_s:g} s" if m.limit_s is not None else "-",
                          self.redactor.text(m.source if m.after_s is not None else (m.absent or "")))
        return table

    def verdict_line(self, result: RunResult | GamedayResult) -> Text:
        name = result.scenario if isinstance(result, RunResult) else result.name
        text = Text.assemble(("verdict ", "bold"), (result.verdict.upper(), VERDICT_STYLE[result.verdict]),
                             f"  {name}  exit {result.exit_code}")
        if isinstance(result, RunResult):
            if result.stop_condition is not None:
                text.append(f"  stop condition: {result.stop_condition.condition}"
                            f" ({self.redactor.text(result.stop_condition.reason)})")
            if result.error:
                text.append(f"  error: {self.redactor.text(result.error)}")
            if result.measurement_degraded:
                text.append(f"  measurement degraded: {self.redactor.text(result.measurement_degraded_reason or '')}")
            if result.score is not None:
                text.append(f"  score {result.score.value:.1f}" + (" (gated)" if result.score.gated_by else ""))
            if result.report_dir:
                text.append(f"  report: {result.report_dir}")
        return text

    def final(self, result: RunResult) -> None:
        """The end of a run: checks table, faults table and the verdict line."""
        self.stop()
        with self._lock:
            if result.checks:
                self.console.print(self.checks_table(result))
            if result.faults:
                self.console.print(self.faults_table(result))
            if result.milestones:
                self.console.print(self.milestones_table(result))
            self.console.print(self.verdict_line(result))

    def index(self, path: Path) -> None:
        """The last line of `run` and `gameday`: where the history of every run in the reports folder is shown."""
        self.stop()
        with self._lock:
            self.console.print(f"index: {self.redactor.text(str(path))}", soft_wrap=True)

    def final_gameday(self, gameday: GamedayResult) -> None:
        self.stop()
        with self._lock:
            table = Table(title=f"game day: {gameday.name}", box=self._box())
            for column in ("scenario", "verdict", "failed checks / reason"):
                table.add_column(column, overflow="fold")
            for run in gameday.runs:
                why = ", ".join(c.name for c in run.failed_checks) if run.verdict == "fail" else \
                    ("" if run.verdict == "pass" else run.summary())
                table.add_row(run.scenario, Text(run.verdict, style=VERDICT_STYLE[run.verdict]), self.redactor.text(why))
            self.console.print(table)
            self.console.print(self.verdict_line(gameday))
