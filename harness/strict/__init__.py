"""The bottom layer of everything a person writes for the harness: scenario files, targets.yaml, and the
parameters each fault and check declares.

- `model`: `StrictModel` (unknown keys, NaN and mutation are errors) and `raise_at` for located errors;
- `units`: durations and percentages as people write them (`90s`, `0.5%`);
- `yamlsafe`: bounded, safe YAML that keeps each value's line and column, and pydantic errors turned into
  `file:line:column` problems naming the allowed keys;
- `problems`: `Problem` and `ScenarioError` (exit 2);
- `params`: the parameter bases and shared parameter types of faults and checks (`FaultParams`,
  `CheckParams`, `NodeSelector`, `GpuIndex`, `BlastRadius`) and `ParamsOf`, the name -> model view of a registry;
- `jsonschema`: one JSON Schema for a root model and the models it refers to by name.

Scenarios, targets, faults and checks all build on this package and it imports none of them, so none of them has
to import another to share a type.
"""
