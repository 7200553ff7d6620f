"""The scenario schema: every fault and check by its contract name, strict params, a coherent timeline."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.checks import CHECK_PARAMS, CHECKS
from harness.faults import FAULT_PARAMS, FAULTS
from harness.scenario.model import CheckStep, FaultStep, LoadSection, Scenario
from harness.strict.params import BlastRadius

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "CONTRACTS.md"


def contract_names(kind: str) -> list[str]:
    """The names docs/CONTRACTS.md section 1 promises (`Faults: ...` / `Checks: ...`), in its order."""
    paragraph = re.search(rf"^{kind}: (.*?)\.\n", CONTRACTS.read_text(encoding="utf-8"), re.M | re.S)
    assert paragraph, f"no '{kind}:' list in {CONTRACTS}"
    return re.findall(r"`([a-z0-9-]+)`", paragraph.group(1))


def built_in(registry: dict) -> set[str]:
    """What the harness's own packages register (a test may register a toy of its own alongside)."""
    return {name for name, cls in registry.items() if cls.__module__.startswith(("harness.faults.", "harness.checks."))}


def scenario(**overrides):
    data = {"name": "s", "description": "d", "duration": "10m",
            "faults": [{"at": "2m", "node-reboot": {}}], "checks": [{"fault-landed": {}}]}
    data.update(overrides)
    return Scenario.model_validate(data)


def errors_of(call):
    with pytest.raises(ValidationError) as info:
        call()
    return info.value.errors()


def test_registries_hold_exactly_the_contract_names():
    assert sorted(built_in(FAULTS)) == sorted(contract_names("Faults"))
    assert sorted(built_in(CHECKS)) == sorted(contract_names("Checks"))
    assert set(FAULT_PARAMS) == set(FAULTS) and set(CHECK_PARAMS) == set(CHECKS)


# One valid and one invalid parameter set per fault: (name, valid params, invalid params, offending field).
FAULT_CASES = [
    ("ecc-double-bit-error", {"node": {"zone": "us-east-2a", "pick": "random", "seed": 7}, "gpu": 3}, {"gpu": 8}, "gpu"),
    ("spot-interruption", {"node": {"nodegroup": "g7-use2a-13b", "count": 2}, "notice": "2m"}, {"notice": "1m"},
     "notice"),
    ("az-loss", {"zone": "us-east-2a", "mode": "power", "zonal_shift": True}, {"mode": "flood", "zone": "a"}, "mode"),
    ("device-plugin-race", {"method": "reboot"}, {"method": "plugin-restart"}, "method"),
    ("efa-saturation", {"tp_group": "llama-70b", "load": "95%"}, {"load": "150%"}, "load"),
    ("replica-stall", {"model": "llama-13b-fp8", "count": 2, "mode": "mid-stream"}, {"count": 0}, "count"),
    ("gpu-thermal-throttle", {"gpu": "all", "temperature": 92, "sm_clock_mhz": 900}, {"gpu": "some"}, "gpu"),
    ("node-reboot", {"node": {"pick": "first"}}, {"node": {"pick": "worst"}}, "node"),
]


def test_every_fault_has_parameter_cases():
    assert {case[0] for case in FAULT_CASES} == built_in(FAULTS)


@pytest.mark.parametrize("name,good,bad,field", FAULT_CASES, ids=[c[0] for c in FAULT_CASES])
def test_fault_params(name, good, bad, field):
    step = FaultStep.model_validate({"at": "1m", "duration": "30s", name: good})
    assert step.fault == name and isinstance(step.params, FAULT_PARAMS[name])
    assert step.at == 60.0 and step.duration == 30.0
    problems = errors_of(lambda: FaultStep.model_validate({"at": "1m", name: bad}))
    assert problems[0]["loc"][:2] == (name, field)
    misspelt = errors_of(lambda: FaultStep.model_validate({"at": "1m", name: {**good, "colour": "red"}}))
    assert misspelt[0]["type"] == "extra_forbidden" and misspelt[0]["loc"] == (name, "colour")


def test_spot_notice_is_the_article_default_and_az_loss_needs_a_zone():
    assert FaultStep.model_validate({"at": 0, "spot-interruption": None}).params.notice == 120.0
    assert errors_of(lambda: FaultStep.model_validate({"at": 0, "az-loss": {}}))[0]["loc"] == ("az-loss", "zone")


@pytest.mark.parametrize("step,message", [
    ({"at": "1m"}, "exactly one fault"),
    ({"at": "1m", "node-reboot": {}, "az-loss": {"zone": "z"}}, "exactly one fault"),
    ({"node-reboot": {}}, "Field required"),
    ({"at": "1m", "node-rebot": {}}, "unknown fault 'node-rebot'"),
    ({"at": "1m", "fault": "node-reboot", "params": {}}, "unknown fault 'fault'"),
    ("node-reboot", "mapping"),
])
def test_a_fault_step_names_exactly_one_known_fault(step, message):
    problems = errors_of(lambda: FaultStep.model_validate(step))
    assert message in problems[0]["msg"]


CHECK_CASES = [
    ("fault-landed", {"within": "1m"}, {"within": "soon"}),
    ("node-drained", {"within": "2m"}, {"within": 0}),
    ("node-replaced", {"within": "10m"}, {"within": -1}),
    ("capacity-restored", {"within": "10m"}, {"within": "x"}),
    ("no-corrupted-responses", {}, {"max": 1}),
    ("alarm-fired", {"metric": "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "within": "1m"}, {"within": "1m"}),
    ("traffic-failover", {"within": "1m", "error_budget": "2%"}, {"error_budget": "200%"}),
    ("idempotent-retries", {}, {"strict": True}),
    ("session-continuity", {"max_ttft_ratio": 1.5}, {"max_ttft_ratio": 0}),
    ("no-silent-capacity-loss", {"within": "5m"}, {"within": "forever"}),
    ("slo", {"window": "whole", "ttft_p99": "500ms", "tbt_p99": "50ms", "error_rate": "1%"}, {"window": "lunch"}),
    ("recovery-time", {"within": "5m"}, {"within": None}),
]


def test_every_check_has_parameter_cases():
    assert {case[0] for case in CHECK_CASES} == built_in(CHECKS)


@pytest.mark.parametrize("name,good,bad", CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_check_params(name, good, bad):
    step = CheckStep.model_validate({name: good})
    assert step.check == name and isinstance(step.params, CHECK_PARAMS[name])
    problems = errors_of(lambda: CheckStep.model_validate({name: bad}))
    assert problems[0]["loc"][0] == name


def test_check_defaults_are_the_article_numbers():
    slo = CheckStep.model_validate({"slo": None}).params
    assert (slo.ttft_p99, slo.tbt_p99, slo.window) == (0.5, 0.05, "whole")
    assert CheckStep.model_validate({"node-drained": {}}).params.within == 120.0


def test_a_check_entry_is_a_single_key_mapping():
    assert "exactly one check" in errors_of(lambda: CheckStep.model_validate({"slo": {}, "node-drained": {}}))[0]["msg"]
    assert errors_of(lambda: CheckStep.model_validate({"slo-p99": {}}))[0]["type"] == "extra_forbidden"


def test_load_spec_arrivals():
    assert LoadSection.model_validate({"arrival": "poisson", "rate": 20}).rate == 20
    assert "needs 'rate'" in errors_of(lambda: LoadSection.model_validate({"arrival": "poisson"}))[0]["msg"]
    assert "only applies" in errors_of(lambda: LoadSection.model_validate({"rate": 5}))[0]["msg"]
    spec = LoadSection.model_validate({"workers": 4, "retries": {"attempts": 2, "on": ["5xx"]}, "timeout": "20s",
                                       "stall_timeout": "2s", "canary": {"every": "500ms"},
                                       "conversations": {"turns": 3}})
    assert (spec.workers, spec.retries.attempts, spec.timeout, spec.stall_timeout, spec.canary.every) == \
        (4, 2, 20.0, 2.0, 0.5)
    refused = errors_of(lambda: LoadSection.model_validate({"retries": {"on": ["4xx"]}}))
    assert refused[0]["loc"][:2] == ("retries", "on")


def test_timeline_must_fit_inside_the_scenario():
    problems = errors_of(lambda: scenario(duration="5m", faults=[{"at": "6m", "node-reboot": {}}]))
    assert problems[0]["loc"] == ("faults", 0, "at") and "not before the scenario ends" in problems[0]["msg"]
    problems = errors_of(lambda: scenario(duration="5m", faults=[{"at": "4m", "duration": "2m", "node-reboot": {}}]))
    assert problems[0]["loc"] == ("faults", 0, "duration")


def test_blast_radius_caps_node_selectors():
    problems = errors_of(lambda: scenario(blast_radius={"max_nodes": 1},
                                          faults=[{"at": "1m", "node-reboot": {"node": {"count": 2}}}]))
    assert problems[0]["loc"] == ("faults", 0, "node-reboot", "node", "count")


def test_blast_radius_tighter_and_violations():
    caps = BlastRadius(max_nodes=2, max_fleet_percent=0.5).tighter(BlastRadius(max_nodes=1, max_gpus=8))
    assert (caps.max_nodes, caps.max_gpus, caps.max_fleet_percent) == (1, 8, 0.5)
    assert caps.violations(nodes=1, gpus=8, fleet_nodes=4) == []
    assert len(caps.violations(nodes=2, gpus=16, fleet_nodes=3)) == 3


def test_scenario_round_trips_through_its_yaml_shape():
    original = scenario(stop_when=["error_rate > 20% for 30s", "alarm:g7-use2a-gpu-ecc-dbe"],
                        checks=[{"slo": {"window": "each"}}, {"node-drained": {"within": "90s"}}])
    dumped = original.model_dump(mode="json")
    assert dumped["faults"][0]["at"] == 120.0 and "node-reboot" in dumped["faults"][0]
    assert dumped["stop_when"][0] == "error_rate > 20% for 30s"
    assert Scenario.model_validate(dumped) == original


def test_unknown_top_level_keys_and_names_are_refused():
    assert errors_of(lambda: scenario(seed=3))[0]["type"] == "extra_forbidden"
    assert errors_of(lambda: scenario(name="Bad Name"))[0]["loc"] == ("name",)
    assert errors_of(lambda: scenario(faults=[]))[0]["loc"] == ("faults",)


def test_a_registered_check_is_usable_without_rebuilding_models():
    from harness.checks.base import Check, register
    from harness.strict.params import CheckParams
    from harness.strict.units import Duration

    class GoodputParams(CheckParams):
        min_goodput: float = 0.9
        within: Duration = 60.0

    class Goodput(Check):
        name = "goodput"
        params_model = GoodputParams

        def evaluate(self, evidence):
            return self.result(True, "enough goodput")

    register(Goodput)
    try:
        step = CheckStep.model_validate({"goodput": {"min_goodput": 0.95, "within": "2m"}})
        assert step.params.within == 120.0
        from harness.scenario.schema import scenario_json_schema
        assert "goodput" in scenario_json_schema()["$defs"]["CheckStep"]["properties"]
    finally:
        del CHECKS["goodput"]
    assert errors_of(lambda: CheckStep.model_validate({"goodput": {}}))[0]["type"] == "extra_forbidden"


def test_scenario_load_becomes_the_load_process_spec():
    from harness.scenario.loadspec import to_load_spec
    load = LoadSection.model_validate({"users": 10, "arrival": "poisson", "rate": 25, "timeout": "20s",
                                       "stall_timeout": "1500ms", "retries": {"attempts": 2, "on": ["5xx"]},
                                       "canary": {"every": "500ms", "prompts": 5},
                                       "conversations": {"turns": 3, "share": "50%"}, "workers": 2})
    spec = to_load_spec(load, duration_s=16.0, seed=7)
    assert (spec.users, spec.arrival, spec.rate, spec.timeout_s, spec.stall_timeout_s, spec.workers) == \
        (10, "poisson", 25, 20.0, 1.5, 2)
    assert (spec.retries.attempts, spec.retries.on) == (2, ["5xx"])
    assert spec.canary.every_s == 0.5 and len(set(spec.canary.prompts)) == 5
    assert (spec.chat, spec.conversations, spec.turns, spec.duration_s, spec.seed) == (True, 5, 3, 16.0, 7)
    assert to_load_spec(LoadSection()).canary.every_s is None


def test_a_check_can_be_scoped_to_faults_by_kind_or_position():
    two = [{"at": "1m", "ecc-double-bit-error": {}}, {"at": "3m", "spot-interruption": {}}]
    ok = scenario(faults=two, checks=[{"session-continuity": {"faults": ["spot-interruption"]}},
                                      {"node-drained": {"faults": [0, 1]}}])
    assert ok.checks[0].params.faults == ["spot-interruption"] and ok.checks[1].params.faults == [0, 1]
    assert Scenario.model_validate(ok.model_dump(mode="json")) == ok


def test_a_scope_naming_a_fault_the_scenario_lacks_is_refused_where_it_stands():
    problems = errors_of(lambda: scenario(checks=[{"node-drained": {"faults": ["az-loss"]}}]))
    assert problems[0]["loc"] == ("checks", 0, "node-drained", "faults", 0)
    assert "no az-loss fault" in problems[0]["msg"] and "node-reboot" in problems[0]["msg"]
    problems = errors_of(lambda: scenario(checks=[{"fault-landed": {"faults": [1]}}]))
    assert problems[0]["loc"] == ("checks", 0, "fault-landed", "faults", 0) and "0..0" in problems[0]["msg"]


def test_plugin_restart_is_refused_with_the_reason():
    problems = errors_of(lambda: scenario(faults=[{"at": "1m", "device-plugin-race": {"method": "plugin-restart"}}]))
    assert problems[0]["loc"] == ("faults", 0, "device-plugin-race", "method")
    assert "cannot reproduce the race" in problems[0]["msg"] and "method: reboot" in problems[0]["msg"]


def test_spot_notice_outside_fis_range_and_rebalance_first_are_refused_clearly():
    for notice in ("1m", "16m"):
        problems = errors_of(lambda: FaultStep.model_validate({"at": 0, "spot-interruption": {"notice": notice}}))
        assert problems[0]["loc"][:2] == ("spot-interruption", "notice")
        assert "PT2M..PT15M" in problems[0]["msg"]
    same_time = errors_of(lambda: FaultStep.model_validate(
        {"at": 0, "spot-interruption": {"notice": "2m", "rebalance_first": True}}))
    assert "rebalance_first needs a notice longer than 2m" in same_time[0]["msg"]
    implicit = errors_of(lambda: FaultStep.model_validate({"at": 0, "spot-interruption": {"notice": "5m"}}))
    assert "set rebalance_first: true" in implicit[0]["msg"]
    lead = FaultStep.model_validate({"at": 0, "spot-interruption": {"notice": "5m", "rebalance_first": True}})
    assert lead.params.notice == 300.0 and lead.params.rebalance_first
