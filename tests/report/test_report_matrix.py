"""The verdict matrix: scenarios x profiles, cells naming the failing checks; rich table and JSON agree."""
from __future__ import annotations

import io
import json
import re

from rich.console import Console

from harness.report.matrix import VerdictMatrix, write_matrix
from harness.report.model import GamedayResult, StopRecord

from report_factory import make_run


def _matrix() -> VerdictMatrix:
    article = GamedayResult.from_runs([make_run(), make_run(scenario="spot-interruption")])
    no_remediation = GamedayResult.from_runs([
        make_run(failed=("node-drained", "no-corrupted-responses"), profile="no-dbe-remediation"),
        make_run(scenario="spot-interruption", profile="no-dbe-remediation")])
    no_alarm = GamedayResult.from_runs([make_run(failed=("alarm-fired",), profile="no-dbe-alarm"),
                                        make_run(scenario="az-loss", landed=False, profile="no-dbe-alarm")])
    return VerdictMatrix.from_gamedays([("article", article), ("no-dbe-remediation", no_remediation),
                                        ("no-dbe-alarm", no_alarm)])


def test_cells_and_json():
    matrix = _matrix()
    assert matrix.profiles == ["article", "no-dbe-remediation", "no-dbe-alarm"]
    assert matrix.scenarios == ["ecc-double-bit-error", "spot-interruption", "az-loss"]
    data = json.loads(json.dumps(matrix.to_json()))
    ecc = data["cells"]["ecc-double-bit-error"]
    assert ecc["article"]["verdict"] == "pass" and ecc["article"]["failed_checks"] == []
    assert ecc["no-dbe-remediation"]["failed_checks"] == ["node-drained", "no-corrupted-responses"]
    assert ecc["no-dbe-remediation"]["exit_code"] == 1
    assert "3 corrupted answers" in ecc["no-dbe-remediation"]["reason"]
    assert ecc["no-dbe-alarm"]["failed_checks"] == ["alarm-fired"]
    assert data["cells"]["az-loss"]["no-dbe-alarm"]["verdict"] == "error"
    assert "az-loss" not in [s for s, cells in data["cells"].items() if "article" in cells]
    assert matrix.cell("az-loss", "article") is None


def test_table_rows_scenarios_columns_profiles(tmp_path):
    out = io.StringIO()
    _matrix().render(Console(file=out, width=160, force_terminal=False, color_system=None))
    text = out.getvalue()
    assert "\x1b" not in text
    header = next(line for line in text.splitlines() if "scenario" in line)
    assert re.search(r"scenario\s*\|\s*article\s*\|\s*no-dbe-remediation\s*\|\s*no-dbe-alarm", header)
    ecc = next(line for line in text.splitlines() if line.startswith("| ecc-double-bit-error"))
    cells = [c.strip() for c in ecc.strip("|").split("|")]
    assert cells == ["ecc-double-bit-error", "pass", "fail: node-drained, no-corrupted-responses", "fail: alarm-fired"]
    az = next(line for line in text.splitlines() if line.startswith("| az-loss"))
    assert [c.strip() for c in az.strip("|").split("|")] == ["az-loss", "-", "-", "error"]
    path = write_matrix(_matrix(), tmp_path)
    assert json.loads(path.read_text())["profiles"][2] == "no-dbe-alarm"
    assert "fail: alarm-fired" in (tmp_path / "matrix.txt").read_text()


def test_a_cell_carries_the_evidence_counts_its_verdict_rests_on():
    from harness.report.matrix import MatrixCell
    from harness.report.model import CheckResult, FaultJudgement, RunMetrics, RunResult

    checks = [CheckResult(name="no-corrupted-responses", passed=True, evidence={},
                          judgements=[FaultJudgement(fault="ecc-double-bit-error", index=0, status="pass",
                                                     evidence={"checked_after_knowing": 21})]),
              CheckResult(name="idempotent-retries", passed=True, evidence={"retried_keys": 14}),
              CheckResult(name="node-drained", passed=True,
                          evidence={"nodes": {"n1": {"pods_seen": 8}, "n2": {"pods_seen": 7}}}),
              CheckResult(name="session-continuity", passed=False, status="not-applicable", evidence={"judged": 9})]
    run = RunResult.build(scenario="s", checks=checks, metrics=RunMetrics(requests=812))
    cell = MatrixCell.of(run)
    assert cell.evidence == {"requests": 812, "canaries after fault": 21, "retried keys": 14, "pods drained": 15}
    assert cell.counts() == "requests 812, canaries after fault 21, retried keys 14, pods drained 15"


def test_a_fault_hidden_from_its_detectors_is_told_apart_from_a_broken_run():
    """Not landed and judged so by fault-landed alone, every revert held: the harness telling (the matrix exits
    0 for it). Not landed with a failed revert, or an error with no check behind it: a cell that proves nothing."""
    from harness.report.matrix import MatrixCell

    hidden = make_run(scenario="gpu-thermal-throttle", landed=False, profile="embedded-dcgm-exporter")
    hidden = hidden.model_copy(update={"checks": [c.model_copy(update={"passed": False, "status": "fail"})
                                                  for c in hidden.checks if c.name == "fault-landed"]})
    cell = MatrixCell.of(hidden)
    assert hidden.verdict == "error" and cell.fault_hidden and cell.label() == "error: fault-landed"
    stuck = hidden.model_copy(update={"faults": [hidden.faults[0].model_copy(update={"revert_error": "timed out"})]})
    assert not MatrixCell.of(stuck).fault_hidden
    broken = make_run(error="twin did not start: port in use")
    broken = broken.model_copy(update={"checks": []})
    assert broken.verdict == "error" and not MatrixCell.of(broken).fault_hidden
    assert MatrixCell.of(broken).label() == "error"


def test_the_matrix_exits_4_for_a_run_it_could_not_judge_but_not_for_a_hidden_fault():
    """A hidden fault is the cell the harness is meant to show (exit 0); a broken run is 4; an aborted one 3."""
    from harness.report.matrix import VerdictMatrix

    hidden = make_run(scenario="gpu-thermal-throttle", landed=False, profile="embedded-dcgm-exporter")
    hidden = hidden.model_copy(update={"checks": [c.model_copy(update={"passed": False, "status": "fail"})
                                                  for c in hidden.checks if c.name == "fault-landed"]})
    broken = make_run(scenario="ecc-double-bit-error", error="twin did not start: port in use").model_copy(
        update={"checks": []})
    aborted = make_run(scenario="spot-interruption", stop=StopRecord(
        condition="error_rate > 20% for 30s", observed=0.41, threshold=0.2, held_for_s=30.4, at=1000.0))

    def matrix(*runs):
        gameday = GamedayResult.from_runs(runs)
        return VerdictMatrix.from_gamedays([("p", gameday)])

    assert matrix(hidden).exit_code() == 0
    assert matrix(hidden, broken).exit_code() == 4
    assert matrix(hidden, broken, aborted).exit_code() == 3
    assert matrix(hidden, broken, aborted).column("p")[1].verdict == "error"
