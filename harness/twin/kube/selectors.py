"""Label and field selectors with the API server's grammar.

kubectl drain lists a node's pods with `fieldSelector=spec.nodeName=<node>`; without real field
selection it would evict pods of every node. Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`,
`!key`) are what every controller and the harness use to find the DCGM, device-plugin and inference pods.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

Obj = dict[str, Any]


class SelectorError(ValueError):
    """A selector the API server would reject with 400 BadRequest."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str                      # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b` is two requirements)."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_SET = re.compile(r"^(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<vals>[^)]*)\)$")
_EQ = re.compile(r"^(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<val>[^\s!=(),]*)$")
_KEY = re.compile(r"^(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    reqs = []
    for part in _split_top(text):
        if m := _SET.match(part):
            vals = tuple(v.strip() for v in m["vals"].split(",") if v.strip())
            reqs.append(Requirement(m["key"], m["op"], vals))
        elif m := _EQ.match(part):
            reqs.append(Requirement(m["key"], "!=" if m["op"] == "!=" else "=", (m["val"],)))
        elif m := _KEY.match(part):
            reqs.append(Requirement(m["key"], "!exists" if m["neg"] else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")
    return reqs


def label_selector_from_dict(selector: Obj | None) -> list[Requirement]:
    """A metav1.LabelSelector (matchLabels + matchExpressions) as requirements."""
    if not selector:
        return []
    reqs = [Requirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return reqs


def labels_match(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


# -- field selectors -------------------------------------------------------------------------------
_BOOL_DEFAULT_FALSE = {"spec.unschedulable"}


def field_value(obj: Obj, path: str) -> str:
    """The string a field selector compares against; missing fields read as "" (booleans as "false")."""
    cur: Any = obj
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return "false" if path in _BOOL_DEFAULT_FALSE else ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if cur is None:
        return ""
    return str(cur)


def parse_field_selector(text: str | None) -> list[tuple[str, str, str]]:
    if not text:
        return []
    out = []
    for part in _split_top(text):
        m = re.match(r"^([^\s!=]+)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise SelectorError(f"invalid field selector: {part!r}")
        out.append((m[1], "!=" if m[2] == "!=" else "=", m[3].strip()))
    return out


def fields_match(reqs: list[tuple[str, str, str]], obj: Obj) -> bool:
    for path, op, value in reqs:
        actual = field_value(obj, path)
        if (actual == value) != (op == "="):
            return False
    return True


def predicate(label_selector: str | None, field_selector: str | None) -> Callable[[Obj], bool]:
    """One callable for list/watch filtering; raises SelectorError early, before any response starts."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector)

    def match(obj: Obj) -> bool:
        return labels_match(labels, obj.get("metadata", {}).get("labels")) and fields_match(fields, obj)
    return match
