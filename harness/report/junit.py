"""JUnit XML for release pipelines: one testsuite per scenario run, one testcase per check.

CI systems (GitHub Actions, GitLab, Jenkins) understand the common JUnit dialect: `<testsuites>` with
`<testsuite tests failures errors skipped time timestamp>`, `<testcase classname name time>` holding an
optional `<failure message type>` or `<error message type>` and `<system-out>`. A failed check is a
*failure*; things that make the run itself untrustworthy are *errors*: a fault that was not injected or whose
landing was never proven (one `fault:<name>` testcase each), an aborted run, or a harness/target error (one
`run` testcase). A run whose faults landed and that was not aborted has exactly one testcase per check.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Iterable

from harness.redact import Redactor
from harness.report.model import RunResult


def _seconds(value: float | None) -> str:
    return f"{(value or 0.0):.3f}"


def _case(suite: ET.Element, classname: str, name: str, time_s: float | None) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time=_seconds(time_s))


def _evidence_text(redactor: Redactor, evidence: dict) -> str:
    return json.dumps(redactor.data(evidence), indent=2, sort_keys=True, default=str)


def _milestone_properties(result: RunResult) -> list[tuple[str, str]]:
    """`milestone.<fault index>.<fault>.<name>`: deployment seconds after the fault began (with the limit), or
    `absent: why`: a gate can read a milestone without parsing result.json."""
    out = []
    for m in result.milestones:
        if m.after_s is not None:
            value = f"{m.after_s:.3f}" + (f" (limit {m.limit_s:g})" if m.limit_s is not None else "")
        else:
            value = f"absent: {m.absent}"
        out.append((f"milestone.{m.index}.{m.fault}.{m.name}", value))
    return out


def run_suite(result: RunResult, redactor: Redactor) -> ET.Element:
    """The <testsuite> element for one run (its text already redacted)."""
    classname = f"g7chaos.{result.scenario}"
    suite = ET.Element("testsuite", name=result.scenario)
    properties = ET.SubElement(suite, "properties")
    for key, value in (("target", result.target), ("profile", result.profile), ("seed", result.seed),
                       ("verdict", result.verdict), ("exit_code", result.exit_code),
                       ("measurement_degraded", result.measurement_degraded),
                       ("report_dir", result.report_dir),
                       ("score", result.score.value if result.score else None),
                       ("score_gated_by", "; ".join(result.score.gated_by) if result.score and
                        result.score.gated_by else None),
                       *_milestone_properties(result)):
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            ET.SubElement(properties, "property", name=key, value=redactor.text(text))
    failures = errors = 0
    for check in result.checks:
        case = _case(suite, classname, check.name, check.duration_s)
        if check.status == "not-applicable":
            ET.SubElement(case, "skipped", message=redactor.text(f"not applicable: {check.reason}"))
        elif check.status == "inconclusive":
            errors += 1     # never green: a gate must not read missing evidence as a pass
            error = ET.SubElement(case, "error", message=redactor.text(f"inconclusive: {check.reason}"),
                                  type="Inconclusive")
            error.text = redactor.text(f"{check.name}: {check.reason}")
        elif check.failed:
            failures += 1
            failure = ET.SubElement(case, "failure", message=redactor.text(check.reason), type="CheckFailed")
            failure.text = redactor.text(f"{check.name}: {check.reason}")
        out = ET.SubElement(case, "system-out")
        out.text = redactor.text(f"{check.reason}\nevidence:\n{_evidence_text(redactor, check.evidence)}")
    for fault in result.faults:
        if fault.did_land:
            continue
        errors += 1
        case = _case(suite, classname, f"fault:{fault.name}", None)
        error = ET.SubElement(case, "error", message=redactor.text(fault.not_landed_reason()), type="FaultNotLanded")
        error.text = redactor.text(json.dumps(redactor.data(fault.model_dump(mode="json")), indent=2, sort_keys=True))
    if result.missing_evidence:
        errors += 1
        case = _case(suite, classname, "evidence", None)
        message = "inconclusive: " + "; ".join(result.missing_evidence)
        ET.SubElement(case, "error", message=redactor.text(message), type="Inconclusive").text = redactor.text(message)
    if result.verdict == "aborted" or (result.verdict == "error" and result.error):
        errors += 1
        case = _case(suite, classname, "run", result.duration_s)
        if result.verdict == "aborted":
            stop = result.stop_condition
            message = (f"aborted by stop condition {stop.condition}: {stop.reason}" if stop
                       else f"aborted: {result.error or 'interrupted'}")
            kind = "Aborted"
        else:
            message, kind = str(result.error), "RunError"
        ET.SubElement(case, "error", message=redactor.text(message), type=kind).text = redactor.text(message)
    tests = len(suite.findall("testcase"))
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(sum(1 for c in result.checks if c.status == "not-applicable")))
    suite.set("time", _seconds(result.duration_s))
    suite.set("timestamp", result.started_at.strftime("%Y-%m-%dT%H:%M:%S"))
    if result.measurement_degraded:
        out = ET.SubElement(suite, "system-out")
        out.text = redactor.text(f"measurement degraded: {result.measurement_degraded_reason or 'load generator saturated'}")
    return suite


def junit_document(runs: Iterable[RunResult], redactor: Redactor, name: str = "g7chaos") -> str:
    """A complete <testsuites> document as text."""
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for run in runs:
        suite = run_suite(run, redactor)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        total_time += float(suite.get("time", "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(total_time))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
