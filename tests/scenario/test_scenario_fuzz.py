"""Hostile input: generated and mutated scenario files give a Scenario or a clean located ScenarioError.

Never another exception (that would be a traceback for the user), never a hang (pytest-timeout bounds the
run; per-example deadlines are off because a shared 2-core machine makes them flaky). The fast run throws
500 files at the loader; the `slow` run throws 10,000 (7,000 mutated, 3,000 generated: tests/scenario/fuzz_10k.py,
run as a command ahead of the test that reads its outcome).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.scenario.loader import ScenarioError, load_scenario_text
from harness.scenario.model import Scenario
from ahead import Job, Ran

REPO = Path(__file__).resolve().parents[2]
SLOW = Path(__file__).with_name("fuzz_10k.py")
SEEDS = [p.read_text() for p in sorted((REPO / "scenarios").glob("*.yaml"))] + ["""\
name: fuzz
description: seed
duration: 10m
load: {users: 4, retries: {attempts: 2, on: [timeout, 5xx]}, canary: {every: 1s}}
faults:
  - at: 2m
    duration: 1m
    spot-interruption: {node: {zone: us-east-2a, count: 1}, notice: 2m}
checks:
  - slo: {window: whole, ttft_p99: 500ms, tbt_p99: 50ms, error_rate: 1%}
  - traffic-failover: {within: 1m, error_budget: 5%}
stop_when: ["error_rate > 20% for 30s", "alarm:g7-use2a-gpu-ecc-dbe"]
"""]

FRAGMENTS = ["&a ", "*a", "*b", "!!python/object:os.system ", "!!binary ", "<<: ", "[", "]", "{", "}", ": ", "- ",
             "\t", "'", '"', "%", "---\n", "...\n", "? ", "|", ">", "#", ",", "~", "null", "yes", "on", "1e999",
             "9" * 50, ".nan", "-.inf", "0x1F", "1:30", "2001-12-14", "\x00", "\u202e", "é", "\ufeff", "ttft_p9",
             "at", "gpu", "ecc-double-bit-error", "az-loss", "slo", "within", "-1", "1000%", "500ms", "\n  ", "\n"]


@st.composite
def mutated_text(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "fragment", "duplicate-line", "truncate"]))
        if action == "insert":
            text = text[:position] + draw(st.text(max_size=8)) + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 20)):]
        elif action == "fragment":
            text = text[:position] + draw(st.sampled_from(FRAGMENTS)) + text[position:]
        elif action == "duplicate-line":
            lines = text.splitlines(keepends=True) or [""]
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(index, lines[index])
            text = "".join(lines)
        else:
            text = text[:position]
    return text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["2m", "500ms", "0.5%", "first", "random", "us-east-2a", "whole"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["at", "gpu", "node", "zone", "within", "metric", "window", "users", "count", "x", "on"])
        | st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


PARSED_SEEDS = [yaml.safe_load(seed) for seed in SEEDS]   # parsed once: re-parsing a seed per example was most of the cost


@st.composite
def generated_text(draw) -> str:
    data = copy.deepcopy(draw(st.sampled_from(PARSED_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(["name", "duration", "load", "faults", "checks", "stop_when", "steady_state",
                                    "blast_radius", "target", "extra"]))
        data[key] = draw(json_values)
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), allow_unicode=True)


def assert_clean(text: str) -> None:
    try:
        scenario = load_scenario_text(text, "fuzz.yaml")
    except ScenarioError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.source == "fuzz.yaml" and problem.line >= 1 and problem.column >= 1 and problem.message
            assert "Traceback" not in problem.message
        return
    assert isinstance(scenario, Scenario)


FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
SLOW_MUTATED = settings(max_examples=7000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
# 10,000 files in the slow run: generating a whole document costs hypothesis about four times a mutation
SLOW_GENERATED = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          database=None)


@FAST
@given(mutated_text())
def test_mutated_files_load_or_fail_cleanly(text):
    assert_clean(text)


@FAST
@given(generated_text())
def test_generated_files_load_or_fail_cleanly(text):
    assert_clean(text)


def ahead_job(test: str, params: dict) -> Job:
    """The 10,000 files go through the loader in a process of their own, ahead of the test that reads the
    outcome: the loader is CPU-bound and the background's scenario runs leave a core half idle."""
    return Job("scenario-fuzz-10k", lambda report: [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                                   "-o", "timeout=500", "--basetemp", str(report / "tmp"), str(SLOW)],
               timeout_s=560, cwd=REPO)


@pytest.mark.slow
def test_10k_generated_and_mutated_files_load_or_fail_cleanly(ahead_run: Ran) -> None:
    out = ahead_run.out
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "2 passed" in out.stdout, out.stdout[-3000:]
