"""A fault and a check added from one file each (toy_fault.py, toy_check.py, outside the harness package) are
known everywhere a built-in one is, with nothing else touched: a scenario naming them validates (and a misspelt
parameter is located, naming the toy's own keys), `g7chaos list` and `g7chaos schema` show them, a run against the
twin plans, injects, judges and reverts them, and `g7chaos recover` finishes the toy's revert from a journal alone.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from kubernetes import client

from harness.cli import main
from harness.faults.base import RunContext
from harness.journal import Journal, owed_reverts
from harness.observe import Timeline
from harness.run.runner import RunOptions, Runner
from harness.scenario.loader import load_scenario, load_scenario_text
from harness.strict.params import NodeSelector
from harness.target.target import Target
from toy_check import ToyLandedQuicklyParams
from toy_fault import ANNOTATION, ToyNodeAnnotation, ToyNodeAnnotationParams

FAULT, CHECK = "toy-node-annotation", "toy-landed-quickly"
TOY = f"{FAULT}: {{node: {{zone: us-east-2a, pick: first}}, value: toy}}"


def scenario_text(fault: str = TOY) -> str:
    return f"""\
name: toy-extension
description: the toy fault and check, registered from their own files
target: twin
duration: 1m
load: {{users: 4, spawn_rate: 4, prompt_tokens: 16, max_tokens: 16, timeout: 30s, stall_timeout: 5s}}
steady_state: {{ttft_p99: 5s, tbt_p99: 1s, error_rate: 5%}}
faults:
  - at: 10s
    duration: 20s
    {fault}
checks:
  - fault-landed: {{within: 1m}}
  - {CHECK}: {{within: 30s}}
"""


def test_a_scenario_naming_the_toys_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "toy.yaml"
    path.write_text(scenario_text())
    assert main(["validate", str(path)]) == 0
    assert f"OK {path}: toy-extension (1 fault(s), 2 check(s))" in capsys.readouterr().out
    scenario = load_scenario(path)
    assert isinstance(scenario.faults[0].params, ToyNodeAnnotationParams)
    assert scenario.faults[0].params.node == NodeSelector(zone="us-east-2a", pick="first")
    assert isinstance(scenario.checks[1].params, ToyLandedQuicklyParams) and scenario.checks[1].params.within == 30.0


def test_a_misspelt_toy_parameter_is_located_with_the_toys_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "toy.yaml"
    path.write_text(scenario_text(f"{FAULT}: {{colour: red}}"))
    assert main(["validate", str(path)]) == 2
    assert f"{path}:10:27: unknown key 'colour' in {FAULT}; allowed: node, value" in capsys.readouterr().err


def test_g7chaos_list_names_the_toys(capsys: pytest.CaptureFixture[str]):
    assert main(["list", "faults", "--json"]) == 0
    faults = json.loads(capsys.readouterr().out)["faults"]
    assert faults[FAULT].startswith("Annotate the chosen nodes (g7chaos.dev/toy-fault)")
    assert main(["list", "checks", "--json"]) == 0
    checks = json.loads(capsys.readouterr().out)["checks"]
    assert checks[CHECK] == "The toy fault landed within the limit and was reverted."


def test_g7chaos_schema_describes_the_toys(capsys: pytest.CaptureFixture[str]):
    assert main(["schema"]) == 0
    defs = json.loads(capsys.readouterr().out)["$defs"]
    fault_ref = defs["FaultStep"]["properties"][FAULT]["anyOf"][0]["$ref"]
    assert set(defs[fault_ref.rsplit("/", 1)[-1]]["properties"]) == {"node", "value"}
    assert {"required": [FAULT]} in defs["FaultStep"]["oneOf"]
    check_ref = defs["CheckStep"]["properties"][CHECK]["anyOf"][0]["$ref"]
    assert set(defs[check_ref.rsplit("/", 1)[-1]]["properties"]) == {"faults", "within"}


@pytest.fixture(scope="module")
def endpoints(twin_pool) -> Path:
    handle = twin_pool.get("article", nodes_per_az=1, time_scale=30.0)
    return Path(handle.twin.out_dir) / "endpoints.json"


def annotations(target: Target, context: str, node: str) -> dict[str, str]:
    return client.CoreV1Api(target.kube(context)).read_node(node).metadata.annotations or {}


def annotated(target: Target) -> list[str]:
    """Every node of the twin that carries the toy's annotation."""
    return [f"{context}/{node.metadata.name}" for context in target.contexts
            for node in client.CoreV1Api(target.kube(context)).list_node().items
            if ANNOTATION in (node.metadata.annotations or {})]


def test_a_run_on_the_twin_injects_judges_and_reverts_the_toy(endpoints: Path, tmp_path: Path):
    target = Target.from_twin_endpoints(endpoints)
    result = Runner(load_scenario_text(scenario_text()), target, RunOptions(report_root=tmp_path, seed=1)).run()
    assert (result.verdict, result.exit_code) == ("pass", 0), result.summary()
    toy = next(c for c in result.checks if c.name == CHECK)
    assert toy.passed and "reverted" in toy.reason, toy.reason
    (record,) = result.faults
    assert record.name == FAULT and record.landed and record.reverted_at and record.revert_error is None
    assert record.landed_evidence["value"] == "toy"
    assert annotated(target) == []


def test_recover_finishes_the_toys_owed_revert(endpoints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A run that died with the toy in place left only its journal: recover reverts from the journal's arguments."""
    target = Target.from_twin_endpoints(endpoints)
    journal = Journal(tmp_path / "reports" / "died" / "journal.jsonl")
    ctx = RunContext(target=target, journal=journal, timeline=Timeline(), rng=random.Random(1))
    fault = ToyNodeAnnotation(ToyNodeAnnotationParams(node=NodeSelector(zone="us-east-2b", pick="first")), ctx)
    fault.plan()
    fault.inject()
    journal.close()
    (node,) = fault.nodes
    assert annotations(target, node.context, node.name)[ANNOTATION] == "on"
    assert [o.fault for o in owed_reverts(journal.path)] == [FAULT]

    assert main(["recover", "--reports", str(tmp_path / "reports"), "--twin-endpoints", str(endpoints)]) == 0
    assert f"reverted {FAULT}" in capsys.readouterr().out
    assert owed_reverts(journal.path) == []
    assert annotated(target) == []
