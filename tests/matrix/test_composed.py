"""Two faults in one game day, each judged by its own rules (tests/matrix/scenarios/ecc-then-spot.yaml).

A DBE on a node of one zone, then a spot notice on a node of the other. On `article` every check passes; the spot
node serving until it is reclaimed is no DBE violation, and the DBE fault is not judged by the spot rule of
session continuity. With the KV offload and the DBE alarm both missing, exactly session-continuity (for the spot
fault) and alarm-fired (for the DBE) fail.
"""
from __future__ import annotations

import json

import pytest

from cellkit import ROOT, Ran, failing_checks, scenario_run

SCENARIO = "ecc-then-spot"
FOLDER = ROOT / "tests" / "matrix" / "scenarios"
BROKEN = "no-kv-offload,no-dbe-alarm"


def ahead_job(test: str, params: dict):
    return scenario_run(SCENARIO, params["profile"], FOLDER, timeout_s=300)


def _result(ran: Ran) -> dict:
    (path,) = ran.report_dir.glob(f"*-{SCENARIO}/result.json")
    return json.loads(path.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["article"])
def test_composed_faults_pass_on_article(profile: str, ahead_run: Ran) -> None:
    out = ahead_run.out
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    result = _result(ahead_run)
    assert result["verdict"] == "pass"
    judged = {c["name"]: [(j["index"], j["fault"], j["status"]) for j in c["judgements"]] for c in result["checks"]}
    assert judged["session-continuity"] == [(0, "ecc-double-bit-error", "not-applicable"),
                                            (1, "spot-interruption", "pass")]
    assert judged["no-corrupted-responses"] == [(0, "ecc-double-bit-error", "pass"), (1, "spot-interruption", "pass")]
    drained = [c for c in result["checks"] if c["name"] == "node-drained"]
    assert [[j["status"] for j in c["judgements"]] for c in drained] == [["pass", "not-applicable"],
                                                                          ["not-applicable", "pass"]]


@pytest.mark.slow
@pytest.mark.parametrize("profile", [BROKEN])
def test_each_broken_prescription_fails_only_its_faults_check(profile: str, ahead_run: Ran) -> None:
    failed = failing_checks(ahead_run, SCENARIO, profile)
    assert set(failed) == {"session-continuity", "alarm-fired"}, {n: c.get("reason") for n, c in failed.items()}
    session = {j["fault"]: j["status"] for j in failed["session-continuity"]["judgements"]}
    assert session == {"ecc-double-bit-error": "not-applicable", "spot-interruption": "fail"}
