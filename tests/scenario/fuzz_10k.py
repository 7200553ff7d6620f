"""The slow half of tests/scenario/test_scenario_fuzz.py: 10,000 hostile scenario files (7,000 mutated, 3,000
generated), each a Scenario or a clean located ScenarioError. Run by that module as a pytest command of its own
(its `ahead_job`), so it shares the machine with the suite rather than queueing behind it; not collected on its own
(the name does not start with test_).
"""
from __future__ import annotations

from hypothesis import given

from test_scenario_fuzz import SLOW_GENERATED, SLOW_MUTATED, assert_clean, generated_text, mutated_text


@SLOW_MUTATED
@given(mutated_text())
def test_7k_mutated_files(text):
    assert_clean(text)


@SLOW_GENERATED
@given(generated_text())
def test_3k_generated_files(text):
    assert_clean(text)
