"""A run's events are the one source of its journal and its console: the journal's records keep the names and
fields `g7chaos recover` reads, and the console shows the same steps, after they are on record."""
from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from harness.commands.recover import run_started
from harness.journal import Journal, read_records
from harness.report.console import ConsoleView
from harness.run.events import FaultLanded, FaultReverted, RevertFailed, RunEvents, RunStarted
from harness.run.journaling import JournalRecords
from harness.run.onconsole import show_on_console
from harness.session import TwinFacts


def _fault(name: str = "ecc-double-bit-error") -> SimpleNamespace:
    node = SimpleNamespace(describe=lambda: "g7-use2a/ip-10-0-1-12 gpu 0 (us-east-2a)")
    return SimpleNamespace(name=name, nodes=[node])


def test_the_records_recover_reads_come_from_the_events(tmp_path: Path) -> None:
    path = tmp_path / "run" / "journal.jsonl"
    events = RunEvents()
    JournalRecords(Journal(path)).listen(events)
    twin = TwinFacts(endpoints=tmp_path / "twin" / "endpoints.json", profile="article", owned=True, pid=4242)
    events.run_started.fire(RunStarted(scenario="ecc", target="twin", profile="article", seed=1, dry_run=False,
                                       target_spec={"name": "twin"}, twin=twin, harness_pid=99))
    fault = _fault()
    events.fault_injected.fire(fault)
    events.fault_landed.fire(FaultLanded(fault, {"source": "dcgm"}))
    events.revert_failed.fire(RevertFailed(fault, "RuntimeError: 503", "duration elapsed"))
    events.fault_reverted.fire(FaultReverted(fault, "end of run"))
    events.run_ended.fire(SimpleNamespace(verdict="pass", exit_code=0))

    started = run_started(path)
    assert (started["twin_endpoints"], started["owns_twin"], started["twin_pid"], started["harness_pid"]) == (
        str(tmp_path / "twin" / "endpoints.json"), True, 4242, 99)
    records = [{k: v for k, v in r.items() if k != "ts"} for r in read_records(path)][1:]
    assert records == [
        {"event": "fault-injected", "fault": fault.name, "nodes": ["g7-use2a/ip-10-0-1-12 gpu 0 (us-east-2a)"]},
        {"event": "fault-landed", "fault": fault.name, "evidence": {"source": "dcgm"}},
        {"event": "revert-failed", "fault": fault.name, "error": "RuntimeError: 503", "reason": "duration elapsed"},
        {"event": "fault-reverted", "fault": fault.name, "reason": "end of run"},
        {"event": "run-ended", "verdict": "pass", "exit_code": 0},
    ]


def test_a_run_on_a_named_target_records_no_twin(tmp_path: Path) -> None:
    events = RunEvents()
    JournalRecords(Journal(tmp_path / "journal.jsonl")).listen(events)
    events.run_started.fire(RunStarted(scenario="ecc", target="prod", profile=None, seed=1, dry_run=False,
                                       target_spec={}, twin=None, harness_pid=99))
    started = run_started(tmp_path / "journal.jsonl")
    assert (started["twin_endpoints"], started["owns_twin"], started["twin_pid"]) == (None, False, None)


def test_the_console_shows_a_step_once_the_journal_has_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    events = RunEvents()
    JournalRecords(Journal(path)).listen(events)
    seen: list[list[str]] = []
    events.phase_started.add_listener(lambda name: seen.append([r["event"] for r in read_records(path)]))
    out = io.StringIO()
    show_on_console(ConsoleView(out, live=False), events)
    events.phase_started.fire("preflight")
    events.fault_injecting.fire(_fault())
    assert seen == [["phase"]]
    assert "phase: preflight" in out.getvalue() and "inject ecc-double-bit-error" in out.getvalue()
    assert not any(r["event"] == "fault-injected" for r in read_records(path))   # injecting is not injected
