"""IAM identity-policy evaluation, for the statements deploy/iam-policy.json uses.

Why the twin has this: "FIS stop and delete only on our tagged experiments, zonal shift only on our load
balancer" is a claim about how IAM evaluates a request context (action, resource ARN, condition keys), and
a test can only hold the shipped document to it by evaluating it the way IAM does
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):

- a request is allowed when some Allow statement matches and no Deny statement does; otherwise implicitly
  denied;
- Action and Resource match case-insensitively for actions, with `*` and `?` wildcards for both;
- every condition operator of a statement must hold (AND), any value of one key matches (OR);
- a condition on a key absent from the request context does not hold (`StringEquals`, `StringLike`,
  `ArnLike`), except `Null: "true"`, which holds exactly when the key is absent; `ForAllValues:` holds for an
  absent key, `ForAnyValue:` does not
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).

An operator this module does not know raises, rather than being read as allowing anything.
"""
from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any

Context = dict[str, Any]    # condition key -> str or list[str]; absent keys are absent


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _wildcard(pattern: str, value: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _single(operator: str, wanted: list[str], present: list[str]) -> bool:
    if operator == "StringEquals":
        return any(v in wanted for v in present)
    if operator in ("StringLike", "ArnLike", "ArnEquals"):
        return any(_wildcard(w, v) for w in wanted for v in present)
    if operator == "StringNotEquals":
        return not any(v in wanted for v in present)
    raise ValueError(f"condition operator {operator!r} is not evaluated here")


def condition_holds(operator: str, key: str, wanted: Any, context: Context) -> bool:
    """One condition operator on one key, as IAM evaluates it (FIDELITY IAM-5)."""
    wanted_values = _listed(wanted)
    if operator == "Null":
        absent = key not in context
        return any((w.lower() == "true") == absent for w in wanted_values)
    qualifier, _, base = operator.rpartition(":")
    if key not in context:
        return qualifier == "ForAllValues"
    present = _listed(context[key])
    if qualifier == "ForAllValues":
        return all(_single(base, wanted_values, [v]) for v in present)
    if qualifier == "ForAnyValue":
        return any(_single(base, wanted_values, [v]) for v in present)
    if qualifier:
        raise ValueError(f"condition qualifier {qualifier!r} is not evaluated here")
    return _single(base, wanted_values, present)


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, Any], ...]
    sid: str = ""

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Statement:
        if "NotAction" in raw or "NotResource" in raw or "Principal" in raw:
            raise ValueError(f"statement {raw.get('Sid')!r}: NotAction/NotResource/Principal are not evaluated here")
        conditions = tuple((op, key, value) for op, keys in (raw.get("Condition") or {}).items()
                           for key, value in keys.items())
        return cls(raw["Effect"], tuple(_listed(raw["Action"])), tuple(_listed(raw.get("Resource", "*"))),
                   conditions, raw.get("Sid", ""))

    def applies(self, action: str, resource: str, context: Context) -> bool:
        return (any(_wildcard(a, action, case=False) for a in self.actions)
                and any(_wildcard(r, resource) for r in self.resources)
                and all(condition_holds(op, key, value, context) for op, key, value in self.conditions))


@dataclass(frozen=True)
class IamPolicy:
    statements: tuple[Statement, ...]

    @classmethod
    def from_json(cls, text: str) -> IamPolicy:
        return cls(tuple(Statement.of(s) for s in json.loads(text)["Statement"]))

    def allows(self, action: str, resource: str = "*", context: Context | None = None) -> bool:
        """Whether one request context (one action on one resource) is allowed."""
        context = context or {}
        if any(s.effect == "Deny" and s.applies(action, resource, context) for s in self.statements):
            return False
        return any(s.effect == "Allow" and s.applies(action, resource, context) for s in self.statements)

    def actions(self) -> set[str]:
        return {a for s in self.statements if s.effect == "Allow" for a in s.actions}

    def resources_of(self, action: str) -> set[str]:
        return {r for s in self.statements if s.effect == "Allow"
                and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in s.actions) for r in s.resources}
