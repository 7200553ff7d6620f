"""Scenario files: strict schema (model), safe bounded loading with file:line:column errors (loader),
the stop_when grammar, JSON Schema export, and the `validate` / `schema` commands."""
from harness.scenario.loader import load_scenario, load_scenario_text
from harness.scenario.model import CHECK_PARAMS, FAULT_PARAMS, CheckStep, FaultStep, Scenario
from harness.strict.problems import Problem, ScenarioError

__all__ = ["CHECK_PARAMS", "FAULT_PARAMS", "CheckStep", "FaultStep", "Problem", "Scenario", "ScenarioError",
           "load_scenario", "load_scenario_text"]
