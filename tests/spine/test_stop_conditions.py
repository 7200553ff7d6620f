"""Stop conditions and the blast radius, as a run meets them, against a twin in this process.

The run is the real Runner (load process, watches, faults through the twin's APIs); the twin is read from
its own side: its CloudWatch alarm's StateUpdatedTimestamp and its audit log give when the alarm changed, its
GPUs whether the fault was put back, its audit log whether anything was mutated. Proved here:
- an `alarm:<name>` condition: the alarm goes to ALARM while the fault is in place; the run aborts within 1 s
  of the state change (twin's clock vs the journal's stop record), exits 3 with the fault reverted, and
  result.json names the condition, the alarm and its state;
- a live-figure condition (error_rate) aborts within 1 s of its breach having held for its `for` window;
- a stop_when alarm that does not exist is refused (exit 2) before anything is injected;
- a scenario whose planned faults reach past the scenario's or the target's caps exits 2, in a run and in a
  dry run, with not one mutating call in the twin's audit log.
The twin runs `no-dbe-remediation`: nothing replaces a node with an injected DBE, so a missing revert shows.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from harness.journal import owed_reverts, read_records
from harness.report.history import read_history
from harness.run.runner import RunOptions, Runner
from harness.scenario.loader import load_scenario_text
from harness.target.endpoints import TwinEndpoints
from harness.target.target import Target, twin_spec
from harness.twin.kube.auditlog import audit_of
from harness.twin.world import DCGM_FI_DEV_ECC_DBE_VOL_DEV, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL

pytestmark = pytest.mark.slow
ALARM = "g7chaos-run-stop-probe"
ABORT_WITHIN_S = 1.0
CLOCK_GRAIN_S = 0.005   # the stop's hold and the journal's stamp of it are two readings of the clock, ms apart either way


def scenario_text(stop_when: list[str], fault: str, *, blast_radius: str = "{}", duration: str = "10m",
                  checks: str = "fault-landed: {within: 1m}") -> str:
    return f"""\
name: stop-probe
description: a fault held in place until a stop condition ends the run
target: twin
duration: {duration}
load: {{users: 16, spawn_rate: 16, prompt_tokens: 64, max_tokens: 32, timeout: 30s, stall_timeout: 5s}}
steady_state: {{ttft_p99: 5s, tbt_p99: 1s, error_rate: 5%}}
faults:
  - at: 30s
    {fault}
checks:
  - {checks}
stop_when: {json.dumps(stop_when)}
blast_radius: {blast_radius}
"""


ECC = "ecc-double-bit-error: {node: {zone: us-east-2a, model: llama-13b-fp8, pick: first}, gpu: 0}"


@pytest.fixture(scope="module")
def twin(twin_pool):
    return twin_pool.get("no-dbe-remediation", nodes_per_az=2)


@pytest.fixture(scope="module")
def endpoints(twin) -> Path:
    return Path(twin.twin.out_dir) / "endpoints.json"


@pytest.fixture()
def target(endpoints: Path) -> Target:
    return Target.from_twin_endpoints(endpoints)


@pytest.fixture(scope="module")
def probe_alarm(endpoints: Path):
    """An alarm on a metric nothing publishes, ignored while missing: only set_alarm_state moves it."""
    cloudwatch = Target.from_twin_endpoints(endpoints).aws("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName=ALARM, Namespace="G7chaos/Test", MetricName="StopProbe",
                                Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=0.0,
                                ComparisonOperator="GreaterThanThreshold", TreatMissingData="ignore")
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="test: ready")
    try:
        yield cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]["AlarmArn"]
    finally:
        cloudwatch.delete_alarms(AlarmNames=[ALARM])


def dbe_fields(twin: Any) -> dict[tuple[str, int], tuple[float, float]]:
    return twin.call(lambda: {(name, g.index): (g.value(DCGM_FI_DEV_ECC_DBE_VOL_DEV),
                                                g.value(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL))
                              for name, node in twin.world.nodes.items() for g in node.gpus})


def run_with(runner: Runner, during_fault: Callable[[], None] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Run in this (the main) thread; `during_fault` runs in another once the journal says the fault landed."""
    failure: list[BaseException] = []

    def when_landed() -> None:
        deadline, tick = time.time() + 60, threading.Event()
        try:
            while time.time() < deadline:
                records = list(read_records(runner.journal.path)) if runner.journal.path.exists() else []
                if any(r.get("event") == "fault-landed" for r in records):
                    during_fault()
                    return
                if any(r.get("event") in ("run-ended", "stop-condition") for r in records):
                    return
                tick.wait(0.02)
        except BaseException as exc:   # surfaced in the test thread below
            failure.append(exc)

    watcher = threading.Thread(target=when_landed, daemon=True) if during_fault else None
    if watcher:
        watcher.start()
    result = runner.run()
    if watcher:
        watcher.join(timeout=10)
    if failure:
        raise failure[0]
    return result, list(read_records(runner.journal.path))


def event(records: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [r for r in records if r.get("event") == name]
    assert found, f"no {name!r} in the journal: {[r.get('event') for r in records]}"
    return found[0]


@pytest.mark.parametrize("hold", ["", " for 30s"], ids=["at-once", "for-30s"])
def test_an_alarm_in_alarm_aborts_within_a_second_and_reverts(hold: str, twin, target: Target, probe_alarm: str,
                                                              tmp_path: Path) -> None:
    cloudwatch = target.aws("cloudwatch")
    condition = f"alarm:{ALARM}{hold}"
    for_wall = target.wall_seconds(30) if hold else 0.0
    scenario = load_scenario_text(scenario_text([condition, "error_rate > 90% for 1m"], ECC,
                                                duration="12m" if hold else "10m"))
    before = dbe_fields(twin)
    mark = audit_of(twin).mark()
    runner = Runner(scenario, target, RunOptions(report_root=tmp_path, seed=1))
    try:
        result, records = run_with(runner, lambda: cloudwatch.set_alarm_state(
            AlarmName=ALARM, StateValue="ALARM", StateReason="test: breach while the fault is in place"))
        alarm = cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]
    finally:
        cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="test: done")

    assert result.exit_code == 3 and result.verdict == "aborted", result.summary()
    stop = result.stop_condition
    assert stop is not None and stop.condition == condition
    assert stop.alarm == ALARM and stop.alarm_arn == probe_alarm and stop.state == "ALARM"
    assert "breach while the fault is in place" in (stop.state_reason or "")
    written = json.loads((Path(result.report_dir) / "result.json").read_text())
    assert written["exit_code"] == 3 and written["stop_condition"]["condition"] == condition
    assert ALARM in written["stop_condition"]["reason"]

    # put back: the DBE cleared on the twin's GPU, nothing owed, the fault's record says reverted
    assert dbe_fields(twin) == before
    assert owed_reverts(runner.journal.path) == []
    assert result.faults[0].reverted_at is not None and result.faults[0].revert_error is None

    # timing, from the twin's clocks: the alarm's own state change and the SetAlarmState call it served
    changed = alarm["StateUpdatedTimestamp"].timestamp()
    served = [c.at for c in audit_of(twin).calls(since=mark) if c.verb == "SetAlarmState"][0]   # ALARM, then OK
    aborted_at = event(records, "stop-condition")["ts"]
    reverted_at = event(records, "fault-reverted")["ts"]
    print(f"\nalarm ALARM at {changed:.3f} (call served {served:.3f}); abort +{aborted_at - changed:.3f} s "
          f"(for window {for_wall:.1f} s), fault reverted +{reverted_at - changed:.3f} s")
    assert abs(served - changed) < 0.5                       # the two twin clocks agree
    assert for_wall <= aborted_at - changed < for_wall + ABORT_WITHIN_S
    assert for_wall <= stop.held_for_s <= aborted_at - changed + CLOCK_GRAIN_S
    assert aborted_at <= reverted_at < changed + for_wall + ABORT_WITHIN_S + 1.0


def test_a_live_figure_breach_aborts_within_a_second_of_its_for_window(twin, target: Target, tmp_path: Path) -> None:
    # always breached while the twin serves well: the evaluation starts with the faults, so the breach does too
    scenario = load_scenario_text(scenario_text(["error_rate < 50% for 30s"], ECC))
    before = dbe_fields(twin)
    runner = Runner(scenario, target, RunOptions(report_root=tmp_path, seed=1))
    result, records = run_with(runner)
    assert result.exit_code == 3, result.summary()
    stop = result.stop_condition
    assert stop is not None and stop.condition == "error_rate < 50% for 30s"
    assert stop.observed is not None and stop.observed < 0.5 and stop.threshold == 0.5
    for_wall = target.wall_seconds(30)
    fired = event(records, "stop-condition")["ts"]
    faults_phase = next(r["ts"] for r in records if r.get("event") == "phase" and r.get("phase") == "faults")
    breach_seen = fired - stop.held_for_s
    print(f"\nbreach seen {breach_seen - faults_phase:.3f} s into the faults; fired {stop.held_for_s - for_wall:.3f} s "
          f"after its {for_wall:.1f} s window")
    # not judged in the steady state; from the fault on, once its window holds enough answers to judge
    assert faults_phase <= breach_seen < faults_phase + 5.0
    assert for_wall <= stop.held_for_s < for_wall + ABORT_WITHIN_S
    assert dbe_fields(twin) == before and owed_reverts(runner.journal.path) == []
    written = json.loads((Path(result.report_dir) / "result.json").read_text())
    assert "error_rate" in written["stop_condition"]["reason"]


def test_a_stop_alarm_that_does_not_exist_is_refused_before_anything(twin, target: Target, tmp_path: Path) -> None:
    scenario = load_scenario_text(scenario_text(["alarm:no-such-stop-alarm"], ECC))
    mark = audit_of(twin).mark()
    result = Runner(scenario, target, RunOptions(report_root=tmp_path, seed=1)).run()
    assert result.exit_code == 2 and "no-such-stop-alarm" in (result.error or ""), result.summary()
    assert [c.action for c in audit_of(twin).calls(since=mark, mutating=True)] == []


# ------------------------------------------------------------------------------------------- blast radius
@pytest.fixture(scope="module")
def capped_targets(endpoints: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The twin as a targets.yaml entry, capped at one node per run."""
    spec = twin_spec(TwinEndpoints.read(endpoints)).model_dump(mode="json", exclude_none=True)
    spec.pop("name", None)
    spec["caps"] = {"max_nodes": 1}
    path = tmp_path_factory.mktemp("capped") / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": {"capped": spec}}))
    return path


CASES = {
    # the scenario's own cap: a zone is 4 of the 6 nodes
    "scenario-percent": (scenario_text([], "az-loss: {zone: us-east-2a}", blast_radius="{max_fleet_percent: 50%}"),
                         [], "max_fleet_percent 50%"),
    # the scenario's own cap: a spot notice takes a whole node, all 8 of its GPUs
    # (a check that watches from the start, never started when the run is refused, is not stopped either)
    "scenario-gpus": (scenario_text([], "spot-interruption: {node: {zone: us-east-2b}, notice: 2m}",
                                    blast_radius="{max_gpus: 4}", checks="alarm-fired: {metric: DCGM_FI_DEV_GPU_TEMP}"),
                      [], "8 GPUs exceed max_gpus 4"),
    # the target's cap: one node per run, the scenario asks for two
    "target-nodes": (scenario_text([], "node-reboot: {node: {zone: us-east-2b, count: 2}}"),
                     ["--target", "capped"], "2 nodes exceed max_nodes 1"),
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_fault_reaching_past_the_caps_exits_2_before_any_mutation(case: str, dry_run: bool, twin, endpoints: Path,
                                                                   capped_targets: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main
    text, extra, why = CASES[case]
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    reports = tmp_path / "reports"
    mark = audit_of(twin).mark()
    args = ["run", str(path), "--report-dir", str(reports), "--twin-endpoints", str(endpoints)]
    if extra:
        args += [*extra, "--targets-file", str(capped_targets)]
    code = main(args + (["--dry-run"] if dry_run else []))
    out = capsys.readouterr()
    assert code == 2, out.out[-3000:] + out.err[-3000:]
    text_out = out.out + out.err
    if not dry_run:
        (result_file,) = reports.glob("*/result.json")
        text_out += result_file.read_text()
        result = json.loads(result_file.read_text())
        assert result["exit_code"] == 2 and result["faults"][0]["injected_at"] is None
        # a refused run is history too, from the file it came from; the command's last line names the index
        (entry,) = read_history(reports)
        assert (entry.name, entry.exit_code, entry.report, entry.scenario_file) == \
            (result["scenario"], 2, result_file.parent.name, str(path))
        assert out.out.splitlines()[-1] == f"index: {reports / 'index.html'}"
    assert "blast radius exceeded" in text_out and why in text_out, text_out[-3000:]
    calls = audit_of(twin).calls(since=mark)
    assert any(c.action == "list nodes" for c in calls)            # it did look at the fleet
    assert [c.action for c in calls if c.mutating] == []
