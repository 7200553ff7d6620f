"""JSON Schema of scenario files, for editors (yaml-language-server) and for review tools.

Pydantic generates the schema of every model; the two dynamic shapes are then written by hand from the
fault and check registries (every fault and check registered when the schema is built), because in YAML a
fault step is `{at, duration?, <one fault name>: params}` and a check is `{<one check name>: params}`, not the
Python attributes `fault`/`params` the models keep.
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from harness.checks import CHECK_PARAMS
from harness.faults import FAULT_PARAMS
from harness.scenario.model import CheckStep, FaultStep, Scenario
from harness.strict.jsonschema import json_schema_for

SCHEMA_ID = "https://g7chaos.dev/schema/scenario.json"


def _nullable(ref: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [ref, {"type": "null"}]}


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, built from the current fault and check registries."""
    faults = dict(FAULT_PARAMS)
    checks = dict(CHECK_PARAMS)
    param_models: list[type[BaseModel]] = [*faults.values(), *checks.values()]
    schema = json_schema_for(Scenario, param_models, "g7chaos scenario")
    schema["$id"] = SCHEMA_ID
    defs = schema["$defs"]
    keys, _ = models_json_schema([(m, "validation") for m in param_models], ref_template="#/$defs/{model}")

    step = defs.get(FaultStep.__name__, {})
    duration = {k: v for k, v in step.get("properties", {}).get("at", {"type": "string"}).items() if k != "title"}
    fault_props: dict[str, Any] = {"at": duration, "duration": duration}
    fault_props.update({name: _nullable(keys[(model, "validation")]) for name, model in faults.items()})
    defs[FaultStep.__name__] = {
        "type": "object",
        "description": (FaultStep.__doc__ or "").strip().splitlines()[0],
        "properties": fault_props,
        "required": ["at"],
        "additionalProperties": False,
        "oneOf": [{"required": [name]} for name in faults],
    }
    defs[CheckStep.__name__] = {
        "type": "object",
        "description": (CheckStep.__doc__ or "").strip().splitlines()[0],
        "properties": {name: _nullable(keys[(model, "validation")]) for name, model in checks.items()},
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
    }
    return schema


def scenario_json_schema_text() -> str:
    return json.dumps(scenario_json_schema(), indent=2, sort_keys=False)
