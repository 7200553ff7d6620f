"""Models to files: result.json contract fields, junit.xml counts, report.html content and plots."""
from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET

from harness.report.model import GamedayResult, StopRecord
from harness.report.writers import read_result, write_gameday, write_run

from report_factory import make_run, write_records

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_result_json_holds_the_contract_fields(tmp_path, failing_run):
    artifacts = write_run(failing_run, tmp_path / "run")
    data = json.loads(artifacts.result_json.read_text())
    for key in ("scenario", "target", "profile", "verdict", "checks", "faults", "metrics", "exit_code"):
        assert key in data
    assert (data["scenario"], data["target"], data["profile"], data["verdict"]) == \
        ("ecc-double-bit-error", "twin", "no-dbe-remediation", "fail")
    drained = next(c for c in data["checks"] if c["name"] == "node-drained")
    assert drained["passed"] is False and drained["detail"].startswith("node-drained: 3 corrupted")
    fault = data["faults"][0]
    assert {"name", "injected_at", "landed", "reverted_at"} <= fault.keys() and fault["landed"] is True
    metrics = data["metrics"]
    for key in ("requests", "errors", "ttft_p50_ms", "ttft_p99_ms", "tbt_p50_ms", "tbt_p99_ms"):
        assert metrics[key] is not None
    assert [w["window"] for w in metrics["windows"]] == ["steady-state", "fault:ecc-double-bit-error", "recovery"]
    assert metrics["windows"][1]["ttft_p99_ms"] == 470.0 and metrics["windows"][1]["degraded"] is True
    assert data["report_dir"] == str(tmp_path / "run")
    read = read_result(artifacts.result_json)
    assert read.score is not None and len(read.milestones) == 6 * len(failing_run.faults)   # added by the writer
    assert read == failing_run.model_copy(update={"report_dir": str(tmp_path / "run"), "milestones": read.milestones,
                                                   "score": read.score})


def _suite_counts(path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    return root, suites


def test_junit_one_testcase_per_check_and_failures_counted(tmp_path, failing_run):
    artifacts = write_run(failing_run, tmp_path)
    root, suites = _suite_counts(artifacts.junit_xml)
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.name for c in failing_run.checks]
    failures = [c for c in cases if c.find("failure") is not None]
    assert sorted(c.get("name") for c in failures) == ["no-corrupted-responses", "node-drained"]
    assert failures[0].find("failure").get("message") == failing_run.checks[1].reason
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "2", "0")
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "2", "0")
    out = cases[1].find("system-out").text
    assert "ip-10-0-1-12.us-east-2.compute.internal" in out and "41.2" in out


def test_junit_fault_that_did_not_land_is_an_error(tmp_path):
    run = make_run(landed=False)
    assert run.exit_code == 4
    _, suites = _suite_counts(write_run(run, tmp_path).junit_xml)
    suite = suites[0]
    errors = [c for c in suite.findall("testcase") if c.find("error") is not None]
    assert [c.get("name") for c in errors] == ["fault:ecc-double-bit-error", "run"]
    assert errors[0].find("error").get("type") == "FaultNotLanded"
    assert "did not land" in errors[0].find("error").get("message")
    assert suite.get("errors") == "2" and suite.get("failures") == "0" and suite.get("tests") == "7"


def test_junit_aborted_run_names_the_stop_condition(tmp_path):
    stop = StopRecord(condition="error_rate > 20% for 30s", observed=0.341, threshold=0.2, held_for_s=30.4,
                      reason="error_rate 34.1% > 20% for 30.4 s")
    run = make_run(stop=stop)
    assert (run.verdict, run.exit_code) == ("aborted", 3)
    _, suites = _suite_counts(write_run(run, tmp_path).junit_xml)
    error = suites[0].find("testcase[@name='run']/error")
    assert error.get("type") == "Aborted" and "34.1% > 20%" in error.get("message")


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img alt="[^"]*"[^>]* src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_report_html_has_checks_faults_windows_and_a_plot(tmp_path, failing_run):
    html = write_run(failing_run, tmp_path).report_html.read_text()
    assert '<table id="checks">' in html
    for check in failing_run.checks:
        assert check.name in html
    assert "3 corrupted answers reached clients after 41.2 s" in html
    assert html.count("<td class=\"bad\">FAIL</td>") == 2 and html.count("<td class=\"ok\">PASS</td>") == 3
    assert "fault:ecc-double-bit-error" in html and "470.0 ms" in html and "degraded" in html
    assert "+1.5 s" in html   # landed 1.5 s after injection, on the faults timeline
    images = _images(html)
    assert len(images) == 1 and all(img.startswith(PNG_MAGIC) for img in images)


def test_report_html_plots_request_rate_from_records(tmp_path, passing_run):
    records = tmp_path / "records-worker0.jsonl"
    write_records(records)
    html = write_run(passing_run, tmp_path / "run", records=records).report_html.read_text()
    assert 'id="timeline"' in html and 'id="milestones"' in html and 'id="score"' in html
    images = _images(html)
    assert len(images) == 2 and all(img.startswith(PNG_MAGIC) and len(img) > 2000 for img in images)


def test_unusable_records_never_cost_the_report(tmp_path, passing_run):
    records = tmp_path / "garbage.jsonl"
    records.write_text("not json\n[1, 2]\n{\"t_start\": \"yesterday\"}\n")
    html = write_run(passing_run, tmp_path / "run", records=[records, tmp_path / "missing.jsonl"]).report_html.read_text()
    assert len(_images(html)) == 1 and "node-drained" in html


def test_html_escapes_what_checks_report(tmp_path):
    run = make_run(failed=("slo",), evidence_extra={"body": "<script>alert(1)</script>"})
    html = write_run(run, tmp_path).report_html.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_gameday_combines_runs_one_suite_each(tmp_path, passing_run, failing_run):
    other = make_run(scenario="spot-interruption", landed=False)
    day = GamedayResult.from_runs([passing_run, failing_run, other], target="twin")
    assert (day.verdict, day.exit_code) == ("error", 4)
    artifacts = write_gameday(day, tmp_path)
    data = json.loads(artifacts.result_json.read_text())
    assert data["kind"] == "gameday" and data["exit_code"] == 4 and len(data["runs"]) == 3
    assert data["counts"] == {"pass": 1, "fail": 1, "inconclusive": 0, "aborted": 0, "error": 1}
    root, suites = _suite_counts(artifacts.junit_xml)
    assert [s.get("name") for s in suites] == ["ecc-double-bit-error", "ecc-double-bit-error", "spot-interruption"]
    assert root.get("tests") == str(5 + 5 + 7) and root.get("failures") == "2" and root.get("errors") == "2"
    assert isinstance(read_result(artifacts.result_json), GamedayResult)


def test_gameday_html_links_each_run_report(tmp_path, passing_run, failing_run):
    first = write_run(passing_run, tmp_path / "runs" / "a")
    write_run(failing_run, tmp_path / "runs" / "b")
    runs = [passing_run.model_copy(update={"report_dir": str(tmp_path / "runs" / "a")}),
            failing_run.model_copy(update={"report_dir": str(tmp_path / "runs" / "b")})]
    html = write_gameday(GamedayResult.from_runs(runs), tmp_path / "day").report_html.read_text()
    assert '<a href="../runs/a/report.html">' in html and '<a href="../runs/b/report.html">' in html
    assert "1 pass, 1 fail, 0 inconclusive, 0 aborted, 0 error" in html
    assert "<b>node-drained</b>: node-drained: 3 corrupted answers" in html
    assert first.report_html.exists()


def test_non_finite_figures_become_null(tmp_path, passing_run):
    passing_run.metrics.ttft_p99_ms = float("nan")
    passing_run.metrics.windows[0].tbt_p99_ms = float("inf")
    text = write_run(passing_run, tmp_path).result_json.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["metrics"]["ttft_p99_ms"] is None and data["metrics"]["windows"][0]["tbt_p99_ms"] is None


def test_run_dir_is_utc_time_then_a_safe_scenario_name(tmp_path):
    from datetime import datetime, timedelta, timezone

    from harness.report.writers import run_dir

    when = datetime(2026, 11, 24, 9, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert run_dir(tmp_path, "ecc-double-bit-error", when) == tmp_path / "20261124T073005Z-ecc-double-bit-error"
    assert run_dir(tmp_path, "../../etc/x y", when).name == "20261124T073005Z-etc-x-y"
