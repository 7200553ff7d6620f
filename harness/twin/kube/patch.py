"""The three PATCH flavours kubectl and the Python client send.

- JSON merge patch (RFC 7386): `kubectl label/annotate`, the client's `patch_*` with a dict body when
  told `application/merge-patch+json`.
- Strategic merge patch: `kubectl cordon` (`{"spec":{"unschedulable":true}}`), `taint`, and the client's
  default for dict bodies. Lists with a merge key (containers by name, conditions by type...) merge item
  by item; `$patch: delete` removes an item; `$setElementOrder/...` and `$retainKeys` directives are
  accepted and ignored, which is enough for the objects the twin serves.
- JSON patch (RFC 6902): add/remove/replace/move/copy/test with JSON pointers.
"""
from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# field name -> merge key, as in the Kubernetes types' patchMergeKey tags
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "volumeMounts": "mountPath", "ports": "containerPort", "conditions": "type",
    "ownerReferences": "uid", "addresses": "type", "imagePullSecrets": "name", "containerStatuses": "name",
    "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
}
MERGE_PRIMITIVE_LISTS = {"finalizers"}


class PatchError(ValueError):
    """A patch the API server would reject (422/400)."""


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    return _smp(target, patch, None)


def _smp(target: Any, patch: Any, field_name: str | None) -> Any:
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                if key.startswith("$deleteFromPrimitiveList/"):
                    name = key.split("/", 1)[1]
                    result[name] = [v for v in result.get(name) or [] if v not in value]
                continue
            if value is None:
                result.pop(key, None)
            elif isinstance(value, list):
                result[key] = _smp_list(result.get(key), value, key)
            else:
                result[key] = _smp(result.get(key), value, key)
        return result
    return copy.deepcopy(patch)


def _smp_list(target: Any, patch: list, field_name: str) -> list:
    current = copy.deepcopy(target) if isinstance(target, list) else []
    merge_key = MERGE_KEYS.get(field_name)
    if field_name in MERGE_PRIMITIVE_LISTS:
        return current + [v for v in patch if v not in current]
    if not merge_key or not all(isinstance(p, dict) for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and p.get("$patch"))]
    for item in patch:
        key_value = item.get(merge_key)
        idx = next((i for i, c in enumerate(current) if isinstance(c, dict) and c.get(merge_key) == key_value), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                current.pop(idx)
            continue
        if idx is None:
            current.append({k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("$")})
        else:
            current[idx] = _smp(current[idx], item, field_name)
    return current


# -- RFC 6902 --------------------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise PatchError(f"path /{'/'.join(parts)} does not exist")
    return cur, parts[-1]


def _get(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for p in parts:
        try:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"path /{'/'.join(parts)} does not exist") from None
    return cur


def _remove(doc: Any, parts: list[str]) -> Any:
    parent, last = _parent(doc, parts)
    try:
        return parent.pop(int(last)) if isinstance(parent, list) else parent.pop(last)
    except (KeyError, IndexError, ValueError):
        raise PatchError(f"unable to remove nonexistent key /{'/'.join(parts)}") from None


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return copy.deepcopy(value)
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        if last == "-":
            parent.append(copy.deepcopy(value))
        else:
            idx = int(last)
            if idx > len(parent):
                raise PatchError("index out of range")
            parent.insert(idx, copy.deepcopy(value))
    elif isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    else:
        raise PatchError(f"cannot add to /{'/'.join(parts)}")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        if kind == "add":
            doc = _add(doc, parts, op["value"])
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _get(doc, parts)
            if not parts:
                doc = copy.deepcopy(op["value"])
            else:
                parent, last = _parent(doc, parts)
                parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(op["value"])
        elif kind == "move":
            value = _remove(doc, _pointer(op["from"]))
            doc = _add(doc, parts, value)
        elif kind == "copy":
            doc = _add(doc, parts, _get(doc, _pointer(op["from"])))
        elif kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise PatchError(f"test operation failed at {op.get('path')}")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return doc


def apply(content_type: str, target: Obj, body: Any) -> Obj:
    """Apply a PATCH body of the given content type to `target`, returning the new object."""
    ct = content_type.split(";")[0].strip().lower()
    if ct == JSON_PATCH:
        return json_patch(target, body)
    if ct == MERGE_PATCH:
        return merge_patch(target, body)
    if ct in (STRATEGIC_MERGE_PATCH, APPLY_PATCH):
        return strategic_merge_patch(target, body)
    raise PatchError(f"unsupported patch content type {content_type!r}")
