"""The console: plain lines without control codes when not a terminal (CI), a live panel when it is."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys

from harness.report.console import ConsoleView, LoadFigures
from harness.report.model import GamedayResult

from report_factory import make_run

ESCAPE = re.compile(r"\x1b|\x9b|\r")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_output_has_no_control_codes_and_throttles_load_lines(failing_run):
    out, clock = io.StringIO(), FakeClock()
    view = ConsoleView(out, clock=clock, plain_load_interval_s=5.0)
    assert view.is_live is False          # StringIO is not a terminal: chosen automatically
    with view:
        view.phase("steady-state")
        for i in range(20):               # 20 updates over 4 s: one line
            clock.now += 0.2
            view.load(LoadFigures(rps=40.0, requests=100 + i, error_rate=0.0, ttft_p99_ms=310.0, tbt_p99_ms=34.0,
                                  window="steady-state"))
        clock.now += 1.0
        view.load({"rps": 38.5, "error_rate": 0.0105, "ttft_p99_ms": 470.0, "tbt_p99_ms": 48.0,
                   "degraded": True, "degraded_reason": "load CPU 81%"})    # turning degraded prints at once
        view.event("injected ecc-double-bit-error on ip-10-0-1-12 gpu 0")
    view.final(failing_run)
    text = out.getvalue()
    assert not ESCAPE.search(text)
    lines = text.splitlines()
    assert lines[0] == "[    0.0s] phase: steady-state"
    load_lines = [line for line in lines if "] load: " in line]
    assert len(load_lines) == 2
    assert "errors 1.05% | ttft p99 470 ms | tbt p99 48.0 ms | DEGRADED (load CPU 81%)" in load_lines[1]
    assert "[    5.0s] injected ecc-double-bit-error" in text
    # final tables: every check with its result and reason, the fault, the verdict line
    for check in failing_run.checks:
        row = next(line for line in lines if f"| {check.name} " in line)
        assert ("FAIL" if not check.passed else "PASS") in row
    assert "3 corrupted answers reached clients" in text
    assert "yes (+1.5 s)" in text
    assert lines[-1].startswith("verdict FAIL  ecc-double-bit-error  exit 1")
    assert "measurement degraded: load CPU 81% during fault window" in lines[-1]


def test_live_mode_draws_a_panel_with_the_figures():
    out, clock = io.StringIO(), FakeClock()
    view = ConsoleView(out, live=True, clock=clock, width=100)
    with view:
        view.phase("fault:ecc-double-bit-error")
        clock.now += 12.5
        view.load(LoadFigures(rps=41.0, error_rate=0.02, ttft_p99_ms=480.0, tbt_p99_ms=49.0, degraded=True))
    text = out.getvalue()
    assert "\x1b[" in text                                         # a terminal gets colours and redraws
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "fault:ecc-double-bit-error" in plain and "12.5 s" in plain
    assert "480 ms" in plain and "49.0 ms" in plain and "2.00%" in plain and "DEGRADED" in plain


def test_gameday_summary_plain(passing_run, failing_run):
    out = io.StringIO()
    view = ConsoleView(out)
    view.final_gameday(GamedayResult.from_runs([passing_run, failing_run, make_run(scenario="az-loss", landed=False)]))
    text = out.getvalue()
    assert not ESCAPE.search(text)
    assert text.splitlines()[-1].startswith("verdict ERROR  gameday  exit 4")
    assert "node-drained, no-corrupted-responses" in text and "az-loss" in text and "did not land" in text


def test_piped_stdout_of_a_real_process_gets_no_control_codes():
    """What CI sees: the default stream is a pipe, and TERM may even claim colour support."""
    code = ("from harness.report.console import ConsoleView\n"
            "v = ConsoleView()\n"
            "v.start(); v.phase('preflight'); v.load({'rps': 1.0, 'degraded': True}); v.event('done'); v.stop()\n")
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "FORCE_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 0, proc.stderr
    assert not ESCAPE.search(proc.stdout)
    lines = [re.sub(r"^\[ *\d+\.\ds\] ", "", line) for line in proc.stdout.splitlines()]
    assert lines == ["phase: preflight", "load: rps 1.0 | errors - | ttft p99 - ms | tbt p99 - ms | DEGRADED", "done"]


def test_live_view_survives_concurrent_updates():
    """The load poller and the fault timeline update from different threads while Live redraws."""
    import threading

    out = io.StringIO()
    view = ConsoleView(out, live=True, width=100)
    errors: list[BaseException] = []

    def hammer(kind: str) -> None:
        try:
            for i in range(300):
                if kind == "load":
                    view.load({"rps": float(i), "error_rate": 0.0, "ttft_p99_ms": 100.0 + i})
                else:
                    view.event(f"event {i}")
                    view.phase(f"phase {i % 3}")
        except BaseException as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    with view:
        threads = [threading.Thread(target=hammer, args=(k,)) for k in ("load", "event", "load", "event")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert not any(t.is_alive() for t in threads), "console deadlocked"
    assert not errors
    assert "event 299" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())


def test_rps_is_derived_from_request_counts_when_not_given():
    from pydantic import BaseModel

    class Live(BaseModel):          # the load process's live figures: counts, no rate
        window: str
        requests: int
        errors: int = 0
        error_rate: float = 0.0
        ttft_p99_ms: float | None = None
        tbt_p99_ms: float | None = None
        tokens: int = 0
        degraded: bool = False

    out, clock = io.StringIO(), FakeClock()
    view = ConsoleView(out, clock=clock, plain_load_interval_s=0.0)
    for i in range(11):             # 40 requests per second for 10 s (sampled every 1 s)
        view.load(Live(window="steady-state", requests=40 * i))
        clock.now += 1.0
    view.load(Live(window="fault:x", requests=3))     # a new window restarts its count: no bogus rate
    lines = [line for line in out.getvalue().splitlines() if "load:" in line]
    assert "rps -" in lines[0]
    assert "rps 40.0" in lines[10]
    assert "rps -" in lines[11] and "window fault:x" in lines[11]


def test_a_dumb_terminal_gets_plain_lines():
    from harness.report.console import _stream_is_terminal

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert _stream_is_terminal(Tty(), {"TERM": "xterm-256color"}) is True
    assert _stream_is_terminal(Tty(), {"TERM": "dumb"}) is False
    assert _stream_is_terminal(io.StringIO(), {"TERM": "xterm-256color"}) is False
