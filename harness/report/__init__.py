"""Run results and reports: models (result.json contract), writers (result.json, junit.xml, report.html),
the rich console view, the verdict matrix, and redaction of credentials from all of them.

How a runner uses it:

    from harness.report.console import ConsoleView
    from harness.report.model import CheckResult, FaultRecord, RunMetrics, RunResult, WindowMetrics
    from harness.report.writers import run_dir, write_run

    view = ConsoleView()                      # live panel on a terminal, plain lines in CI
    with view:
        view.phase("steady-state"); view.load(live_figures); view.event("injected ...")
    result = RunResult.build(scenario=..., target=..., profile=..., checks=[...], faults=[...],
                             metrics=RunMetrics(...), stop_condition=None, ended_at=...)
    write_run(result, run_dir("reports", result.scenario, result.started_at), records=load_records_path)
    view.final(result)
    return result.exit_code
"""
from harness.redact import Redactor, default_redactor
from harness.report.model import (CheckResult, ExitCode, FaultRecord, GamedayResult, RunMetrics, RunResult,
                                  StopRecord, Verdict, WindowMetrics, gameday_exit_code, verdict_and_exit_code)

__all__ = ["CheckResult", "ExitCode", "FaultRecord", "GamedayResult", "RunMetrics", "RunResult", "StopRecord",
           "Verdict", "WindowMetrics", "gameday_exit_code", "verdict_and_exit_code", "Redactor", "default_redactor"]
