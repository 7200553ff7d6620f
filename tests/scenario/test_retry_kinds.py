"""Retry kinds: a scenario validates only with the kinds the load process retries on, so `g7chaos validate`
never passes a scenario whose load then refuses to start."""
from __future__ import annotations

import textwrap
import pytest

from harness.load.spec import LoadSpec
from harness.scenario.loader import ScenarioError, load_scenario_text
from harness.scenario.loadspec import to_load_spec
from harness.scenario.model import LoadSection, Retries

SCENARIO = textwrap.dedent("""\
    name: retry-test
    description: a test
    duration: 10m
    faults:
      - at: 2m
        node-reboot: {}
    checks:
      - fault-landed: {}
    load:
      retries: {attempts: 3, on: [timeout, 429, connection]}
    """)


def scenario_kinds() -> tuple[str, ...]:
    """The kinds the scenario schema itself accepts, read from its JSON Schema (what editors and users see)."""
    items = Retries.model_json_schema()["properties"]["on"]["items"]
    return tuple(items["enum"])


def test_an_unsupported_retry_kind_is_a_located_validation_error():
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(SCENARIO, "scenarios/x.yaml")
    found = [str(p) for p in info.value.problems]
    assert len(found) == 2, found
    assert found[0].startswith("scenarios/x.yaml:10:40: load.retries.on[1]: the load generator does not retry on "
                               "this; it retries on timeout, 5xx, stall, truncated (got 429)"), found
    assert found[1].startswith("scenarios/x.yaml:10:45: load.retries.on[2]:"), found
    assert found[1].endswith("(got 'connection')"), found


def test_every_kind_the_scenario_accepts_the_load_process_accepts():
    kinds = scenario_kinds()
    assert kinds, "the scenario schema names no retry kind"
    for kind in kinds:
        section = LoadSection.model_validate({"retries": {"on": [kind]}})
        assert to_load_spec(section).retries.on == [kind]
    section = LoadSection.model_validate({"retries": {"on": list(kinds)}})
    assert LoadSpec.model_validate(to_load_spec(section).model_dump()).retries.on == list(kinds)
