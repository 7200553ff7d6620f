"""Run results and reports: models (result.json contract), writers (result.json, junit.xml, report.html),
the rich console view, the verdict matrix, and redaction of credentials from all of them."""
from harness.report.model import (CheckResult, ExitCode, FaultRecord, GamedayResult, RunMetrics, RunResult,
                                  StopCondition, Verdict, WindowMetrics, gameday_exit_code, verdict_and_exit_code)
from harness.report.redact import Redactor, default_redactor

__all__ = ["CheckResult", "ExitCode", "FaultRecord", "GamedayResult", "RunMetrics", "RunResult", "StopCondition",
           "Verdict", "WindowMetrics", "gameday_exit_code", "verdict_and_exit_code", "Redactor", "default_redactor"]
