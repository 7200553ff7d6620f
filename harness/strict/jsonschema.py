"""JSON Schema of a user file's root model, for editors (yaml-language-server) and for review tools."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema


def json_schema_for(root: type[BaseModel], extra_models: list[type[BaseModel]], title: str) -> dict[str, Any]:
    """Schema of `root` with `extra_models` in the same `$defs` (so dynamic shapes can reference them)."""
    keys, combined = models_json_schema([(model, "validation") for model in [root, *extra_models]],
                                        ref_template="#/$defs/{model}")
    defs: dict[str, Any] = combined.get("$defs", {})
    root_name = keys[(root, "validation")]["$ref"].rsplit("/", 1)[-1]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **defs.pop(root_name), "title": title}
    schema["$defs"] = defs
    return schema
