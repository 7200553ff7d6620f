"""The loader: safe YAML, bounded cost, and every error at file:line:column with what would be right."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.cli import main
from harness.scenario.loader import ScenarioError, load_scenario, load_scenario_text
from harness.scenario.schema import scenario_json_schema
from harness.strict.yamlsafe import Limits, parse_yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "scenarios").glob("*.yaml"))

VALID = textwrap.dedent("""\
    name: ecc-test
    description: a test
    duration: 10m
    faults:
      - at: 2m
        ecc-double-bit-error: {node: {zone: us-east-2a}, gpu: 0}
    checks:
      - slo:
          ttft_p99: 500ms
      - node-drained: {within: 2m}
    stop_when: ["error_rate > 20% for 30s"]
    """)


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / "scenarios" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def problems(text: str, source: str = "scenarios/x.yaml") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, source)
    return [str(p) for p in info.value.problems]


def test_valid_text_loads():
    scenario = load_scenario_text(VALID)
    assert scenario.faults[0].fault == "ecc-double-bit-error" and scenario.checks[1].params.within == 120.0


def test_misspelt_key_names_file_line_column_and_allowed_keys():
    text = VALID.replace("ttft_p99: 500ms", "ttft_p9: 500ms")
    assert problems(text) == [
        "scenarios/x.yaml:9:7: unknown key 'ttft_p9' in slo; allowed: faults, ttft_p99, tbt_p99, error_rate, window"]


def test_misspelt_fault_and_check_names_list_the_registry():
    text = VALID.replace("ecc-double-bit-error:", "ecc-double-bit-eror:").replace("node-drained:", "node-drain:")
    found = problems(text)
    # the registries' names in alphabetical order, whatever order their modules were imported in
    assert found[0].startswith("scenarios/x.yaml:6:5: unknown fault 'ecc-double-bit-eror' in faults[0]; allowed: at, "
                               "duration, az-loss, device-plugin-race, ecc-double-bit-error, ")
    assert found[1].startswith("scenarios/x.yaml:10:5: unknown check 'node-drain' in checks[1]; allowed: alarm-fired, "
                               "capacity-restored, fault-landed, ")


def test_every_error_is_reported_at_its_value():
    text = VALID.replace("gpu: 0", "gpu: 9").replace("duration: 10m", "duration: ten minutes") \
                .replace("20% for 30s", "20% for ever")
    found = problems(text)
    assert found[0].startswith("scenarios/x.yaml:3:11: duration: invalid duration 'ten minutes'")
    assert found[1].startswith("scenarios/x.yaml:6:59: faults[0].ecc-double-bit-error.gpu: Input should be less than "
                               "or equal to 7 (got 9)")
    # inside a one-line string the column is that of the offending character ("ever")
    assert found[2].startswith("scenarios/x.yaml:11:35: stop_when[0]: expected a duration after 'for'")


def test_stop_when_errors_point_into_plain_and_quoted_strings():
    plain = VALID.replace('stop_when: ["error_rate > 20% for 30s"]', "stop_when:\n  - ttft_p99 > 800 for 30s")
    assert problems(plain)[0].startswith("scenarios/x.yaml:12:16: stop_when[0]: ttft_p99 needs a unit")
    quoted = VALID.replace('"error_rate > 20% for 30s"', "'error_rate >> 20%'")
    assert problems(quoted)[0].startswith("scenarios/x.yaml:11:26: stop_when[0]: expected a number")


def test_missing_required_key_points_at_its_mapping():
    assert problems(VALID.replace("description: a test\n", "")) == [
        "scenarios/x.yaml:1:1: scenario: missing required key 'description'"]


def test_timeline_error_points_at_the_fault():
    found = problems(VALID.replace("at: 2m", "at: 12m"))
    assert found[0].startswith("scenarios/x.yaml:5:9: faults[0].at: ecc-double-bit-error starts at 720s")


@pytest.mark.parametrize("text,expected", [
    ("", "1:1: the file is empty"),
    ("- a\n- b\n", "1:1: the top level of a scenario file must be a mapping"),
    ("name: a\nname: b\n", "2:1: duplicate key 'name'"),
    ("a: !!python/object/apply:os.system ['echo owned']\n", "1:4: tag 'tag:yaml.org,2002:python/object/apply:os.system' "
                                                             "is not allowed"),
    ("a: !!binary aGVsbG8=\n", "is not allowed"),
    ("a: !!set {x}\n", "is not allowed"),
    ("a: [1, 2\n", "invalid YAML"),
    ("a: 1\n---\nb: 2\n", "invalid YAML: expected a single document in the stream; but found another document"),
    ("a: &x [*x]\n", "an alias refers to a value that contains it"),
    ("? [a]\n: 1\n", "a key must be a plain name"),
    ("gpu: " + "9" * 5000 + "\n", "invalid value"),
    ("name: a\ndescription: b\x1f\n", "2:15: invalid YAML: character #x001f is not allowed"),
])
def test_unsafe_or_malformed_yaml_is_a_located_error(text, expected):
    found = problems(text)
    assert expected in found[0], found
    assert found[0].startswith("scenarios/x.yaml:")


def test_yaml_11_booleans_do_not_eat_keys():
    # `on:` is the boolean True in YAML 1.1; as a key it must stay the word the user wrote.
    scenario = load_scenario_text(VALID + "load: {retries: {on: [5xx]}}\n")
    assert scenario.load.retries.on == ["5xx"]


def test_merge_keys_work_and_explicit_keys_win():
    text = VALID + textwrap.dedent("""\
        x-defaults: &d {users: 4, max_tokens: 64}
        """)
    assert "unknown key 'x-defaults'" in problems(text)[0]
    text = VALID + "load:\n  <<: {users: 4, max_tokens: 64}\n  users: 8\n"
    scenario = load_scenario_text(text)
    assert (scenario.load.users, scenario.load.max_tokens) == (8, 64)


def test_billion_laughs_is_refused_fast():
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i-1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    start = time.perf_counter()
    found = problems("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 2.0   # ~5 ms alone
    assert "aliases" in found[0] or "values after expanding aliases" in found[0]


def test_alias_expansion_is_bounded_even_with_few_aliases():
    lines = ["a0: &a0 [" + ",".join(["x"] * 400) + "]"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 8) + "]")
    found = problems("\n".join(lines) + "\n")
    assert "values after expanding aliases" in found[0]


def test_deep_nesting_is_refused():
    assert "nested deeper than 32 levels" in problems("a: " + "[" * 5000 + "]" * 5000 + "\n")[0]
    assert "nested deeper" in problems("a: " + "{b: " * 100 + "1" + "}" * 100 + "\n")[0]


def test_a_100_mb_file_is_refused_from_its_size(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:       # sparse: refused before a byte is read
        handle.truncate(100 * 1024 * 1024)
    start = time.perf_counter()
    with pytest.raises(ScenarioError, match=r"big.yaml:1:1: file is 104857600 bytes; the limit is 1048576"):
        load_scenario(big)
    assert time.perf_counter() - start < 2.0   # refused from its size: ~1 ms alone


def test_size_cap_holds_for_unsized_files(tmp_path):
    with pytest.raises(ScenarioError, match="larger than the limit of 64 bytes"):
        load_scenario("/dev/zero", limits=Limits(max_bytes=64))


def test_non_utf8_is_located(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: ok\ndescription: caf\xe9\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml:2:17: not UTF-8 text"):
        load_scenario(path)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenarios_validate_and_match_the_json_schema(path):
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    # keys as the loader reads them (YAML 1.2 editors agree: `on:` is a word, not a boolean)
    jsonschema.validate(parse_yaml(path.read_text(), str(path)).data, scenario_json_schema())


def test_shipped_ecc_scenario_is_the_article_lesson():
    scenario = load_scenario(REPO / "scenarios" / "ecc-double-bit-error.yaml")
    assert scenario.fault_names() == ["ecc-double-bit-error"]
    assert {"fault-landed", "node-drained", "no-corrupted-responses", "alarm-fired", "slo"} <= set(scenario.check_names())
    alarm = next(c for c in scenario.checks if c.check == "alarm-fired").params
    assert alarm.metric == "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
    assert scenario.duration / 30.0 <= 20.0     # the twin's control-plane part is fast at 30x


def test_json_schema_rejects_what_the_loader_rejects():
    schema = scenario_json_schema()
    data = yaml.safe_load(VALID)
    jsonschema.validate(data, schema)
    data["checks"][0]["slo"]["ttft_p9"] = "1s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    data = yaml.safe_load(VALID)
    data["faults"][0]["az-loss"] = {"zone": "us-east-2a"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_validate_command_exit_codes(tmp_path, capsys):
    good = write(tmp_path, VALID, "good.yaml")
    bad = write(tmp_path, VALID.replace("ttft_p99", "ttft_p9"), "bad.yaml")
    assert main(["validate", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:9:7: unknown key 'ttft_p9' in slo; allowed: faults, ttft_p99, tbt_p99, error_rate, window" in err
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["validate", str(good.parent)]) == 2   # a folder: every scenario in it


def test_validate_cli_process_prints_no_traceback(tmp_path):
    bad = write(tmp_path, "name: [unclosed\n", "broken.yaml")
    result = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(bad)], capture_output=True,
                            text=True, timeout=60, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "broken.yaml:2:1: invalid YAML" in result.stderr


def test_schema_command_prints_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "g7chaos scenario"
    assert set(schema["$defs"]["FaultStep"]["properties"]) >= {"at", "duration", "ecc-double-bit-error"}
    assert main(["schema", "--targets"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "g7chaos targets"


def test_the_documented_examples_validate():
    import re

    from harness.target.model import load_targets_text
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "SCENARIOS.md").read_text(), re.S)
    assert load_scenario_text(blocks[0], "docs/SCENARIOS.md").name == "ecc-double-bit-error"
    assert list(load_targets_text(blocks[-1], "docs/SCENARIOS.md")) == ["staging-use2"]


@pytest.mark.parametrize("text", [
    "a: [" + "1," * 600_000 + "1]\n",
    "- " + "\n- ".join(["x"] * 250_000),
    "x: " + "a" * 2_000_000 + "\n",
])
def test_a_megabyte_of_anything_is_answered_fast(text):
    text = text[: 1 << 20]
    start = time.perf_counter()
    with pytest.raises(ScenarioError):
        load_scenario_text(text)
    assert time.perf_counter() - start < 5.0   # ~0.6 s alone; generous for a shared 2-core machine


def test_validate_also_checks_targets_files(tmp_path, capsys):
    good = tmp_path / "targets.yaml"
    good.write_text("targets:\n  dev-a:\n    environment: dev\n    kubeconfig: k\n    contexts: [a]\n"
                    "    aws: {region: us-east-2}\n    inference_url: http://127.0.0.1:1\n")
    assert main(["validate", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "more-targets.yaml"
    bad.write_text(good.read_text().replace("kubeconfig", "kubconfig"))
    assert main(["validate", str(bad)]) == 2
    assert "more-targets.yaml:4:5: unknown key 'kubconfig' in dev-a" in capsys.readouterr().err
