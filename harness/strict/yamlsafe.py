"""Hostile-input-safe YAML: bounded, safe, and keeping every key's and value's line and column.

Scenario and target files arrive in pull requests, so loading must never execute anything, never hang
and never exhaust memory, and every error must point at the line to fix:

- the size cap is checked *before* parsing (a 100 MB file is refused from its size, unread);
- only the safe YAML subset: plain scalars, sequences and mappings with the core tags; any other tag
  (`!!python/...`, `!!binary`, `!!set`, ...) is an error;
- nesting depth, alias count and the number of nodes after alias expansion are capped, so a
  "billion laughs" document is refused after a few thousand nodes instead of expanding;
- duplicate keys are errors (YAML silently keeps the last one, hiding a mistake);
- keys are taken as written (YAML 1.1 would turn the key `on:` into the boolean True).

`parse_yaml` returns the plain data plus a map from each path to its marks; `validate_document` runs a
pydantic model over it and turns every error into `file:line:column: message`, listing the allowed keys
for an unknown key.
"""
from __future__ import annotations

import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from harness.strict.problems import Problem, ScenarioError

PathKey = tuple[Union[str, int], ...]

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Limits:
    """Bounds on what a user file may cost to load. A real scenario is a few kilobytes and ~200 nodes."""

    max_bytes: int = 1 << 20
    max_depth: int = 32
    max_aliases: int = 100
    max_nodes: int = 20_000


DEFAULT_LIMITS = Limits()


@dataclass
class MarkedDocument:
    """Plain data (dicts, lists, scalars) and where each part was written (1-based line, column)."""

    source: str
    data: Any
    value_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # single-line scalars: path -> column offset of the text inside (1 when quoted), to locate errors within
    inline_offsets: dict[PathKey, int] = field(default_factory=dict)

    def mark_for(self, loc: PathKey, *, key: bool = False) -> tuple[int, int]:
        """The mark of `loc`, or of its nearest written ancestor (defaults and missing keys have none)."""
        if key and loc in self.key_marks:
            return self.key_marks[loc]
        for end in range(len(loc), -1, -1):
            prefix = loc[:end]
            if prefix in self.value_marks:
                return self.value_marks[prefix]
        return (1, 1)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _LimitExceeded(Exception):
    def __init__(self, message: str, mark: tuple[int, int]) -> None:
        super().__init__(message)
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer counts nesting and aliases while it builds the node graph."""

    def __init__(self, stream: str, limits: Limits) -> None:
        super().__init__(stream)
        self._limits = limits
        self._depth = 0
        self._aliases = 0
        self._composed = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D401 (PyYAML hook)
        event = self.peek_event()
        where = (event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self._limits.max_aliases:
                raise _LimitExceeded(f"more than {self._limits.max_aliases} aliases", where)
        self._composed += 1
        if self._composed > self._limits.max_nodes:   # stop composing early, not after a megabyte of nodes
            raise _LimitExceeded(f"more than {self._limits.max_nodes} values", where)
        self._depth += 1
        if self._depth > self._limits.max_depth:
            raise _LimitExceeded(f"nested deeper than {self._limits.max_depth} levels", where)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Converter:
    """Node graph -> plain data, expanding aliases under a node budget and recording marks."""

    def __init__(self, loader: _BoundedLoader, doc: MarkedDocument, limits: Limits) -> None:
        self.loader = loader
        self.doc = doc
        self.limits = limits
        self.visited = 0
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: PathKey, depth: int, record: bool = True) -> Any:
        self.visited += 1
        if self.visited > self.limits.max_nodes:
            raise _LimitExceeded(f"more than {self.limits.max_nodes} values after expanding aliases", _mark(node))
        if depth > self.limits.max_depth:
            raise _LimitExceeded(f"nested deeper than {self.limits.max_depth} levels (through aliases)", _mark(node))
        if id(node) in self.active:
            raise _LimitExceeded("an alias refers to a value that contains it", _mark(node))
        if record:
            self.doc.value_marks.setdefault(path, _mark(node))
        if isinstance(node, yaml.ScalarNode):
            if record and node.start_mark.line == node.end_mark.line and node.style in (None, "'", '"'):
                self.doc.inline_offsets.setdefault(path, 0 if node.style is None else 1)
            return self._scalar(node)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ_TAG:
                    raise _LimitExceeded(f"tag {node.tag!r} is not allowed", _mark(node))
                return [self.convert(item, (*path, i), depth + 1, record) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                if node.tag != _MAP_TAG:
                    raise _LimitExceeded(f"tag {node.tag!r} is not allowed", _mark(node))
                return self._mapping(node, path, depth, record)
            raise _LimitExceeded("unsupported YAML node", _mark(node))
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            return node.value   # a date-like string stays a string; no datetime objects
        if node.tag not in _SCALAR_TAGS:
            raise _LimitExceeded(f"tag {node.tag!r} is not allowed", _mark(node))
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError, yaml.YAMLError) as exc:   # e.g. an int of 100k digits
            raise _LimitExceeded(f"invalid value: {str(exc)[:120]}", _mark(node)) from None

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int, record: bool) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: list[dict[str, Any]] = []
        for key_node, value_node in node.value:
            self.visited += 1
            if key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node, path, depth))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise _LimitExceeded("a key must be a plain name, not a list or mapping", _mark(key_node))
            key = str(key_node.value)
            if key in result:
                raise _LimitExceeded(f"duplicate key {key!r}", _mark(key_node))
            if record:
                self.doc.key_marks[(*path, key)] = _mark(key_node)
            result[key] = self.convert(value_node, (*path, key), depth + 1, record)
        for source in merged:
            for key, value in source.items():
                result.setdefault(key, value)
        return result

    def _merge_sources(self, node: yaml.Node, path: PathKey, depth: int) -> list[dict[str, Any]]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        sources = []
        for item in items:
            if not isinstance(item, yaml.MappingNode):
                raise _LimitExceeded("'<<' merges mappings only", _mark(item))
            sources.append(self.convert(item, path, depth + 1, record=False))
        return sources


def read_bounded(path: Path | str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Read a user file as UTF-8, refusing it from its size before reading when it is too large."""
    source = str(path)
    try:
        size = os.stat(path).st_size
        if size > limits.max_bytes:
            raise ScenarioError.at(source, 1, 1, f"file is {size} bytes; the limit is {limits.max_bytes}")
        with open(path, "rb") as handle:   # also bounded for pipes and devices, whose size reads 0
            raw = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise ScenarioError.at(source, 1, 1, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > limits.max_bytes:
        raise ScenarioError.at(source, 1, 1, f"file is larger than the limit of {limits.max_bytes} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioError.at(source, line, column, "not UTF-8 text") from None


def parse_yaml(text: str, source: str, limits: Limits = DEFAULT_LIMITS) -> MarkedDocument:
    """Parse one YAML document safely into plain data with marks; raise ScenarioError on anything else."""
    if len(text) > limits.max_bytes:
        raise ScenarioError.at(source, 1, 1, f"document is larger than the limit of {limits.max_bytes} bytes")
    doc = MarkedDocument(source=source, data=None)
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text, limits)   # the reader already refuses control characters here
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError.at(source, 1, 1, "the file is empty")
        doc.data = _Converter(loader, doc, limits).convert(node, (), 0)
    except _LimitExceeded as exc:
        raise ScenarioError.at(source, exc.mark[0], exc.mark[1], str(exc)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = "; ".join(part for part in (exc.context, exc.problem) if part) or "malformed"
        raise ScenarioError.at(source, line, column, f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:   # control characters and the like
        position = max(0, min(int(exc.position), len(text)))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else int(exc.character)
        raise ScenarioError.at(source, line, column,
                               f"invalid YAML: character #x{code:04x} is not allowed") from None
    except yaml.YAMLError as exc:
        raise ScenarioError.at(source, 1, 1, f"invalid YAML: {str(exc).splitlines()[0][:200]}") from None
    except RecursionError:
        raise ScenarioError.at(source, 1, 1, "nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


# ------------------------------------------------------------------------------- pydantic -> messages


def _unwrap(annotation: Any) -> Any:
    """The model type inside Optional[...] / Annotated[...] (first BaseModel member), else the annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
            if get_origin(inner) in (list, dict):
                return inner
        return annotation
    return annotation


def model_keys(model: type[BaseModel]) -> list[str]:
    """Keys a model accepts in YAML. Models with a dynamic shape define `yaml_keys()`."""
    custom = getattr(model, "yaml_keys", None)
    if callable(custom):
        return list(custom())
    return [info.alias or name for name, info in model.model_fields.items()]


def _child(current: Any, element: str | int) -> Any:
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        custom = getattr(current, "yaml_child", None)
        if callable(custom):
            return custom(element)
        for name, info in current.model_fields.items():
            if element in (name, info.alias):
                return info.annotation
        return None
    origin = get_origin(current)
    if origin is list and isinstance(element, int):
        return get_args(current)[0]
    if origin is dict and isinstance(element, str):
        return get_args(current)[1]
    return None


def allowed_keys(root: type[BaseModel], parent: PathKey) -> list[str] | None:
    """Keys accepted at `parent` (a path into the document), walking the model's field types."""
    current: Any = root
    for element in parent:
        current = _child(current, element)
        if current is None:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return model_keys(current)
    return None


def render_path(loc: PathKey) -> str:
    out = ""
    for element in loc:
        if isinstance(element, int):
            out += f"[{element}]"
        else:
            out += ("." if out else "") + str(element)
    return out


def _parent_label(parent: PathKey, root_label: str) -> str:
    for i in range(len(parent) - 1, -1, -1):
        if isinstance(parent[i], str):
            return render_path(parent[i:]) if i else render_path(parent)
    return render_path(parent) if parent else root_label


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_INNER_COLUMN_RE = re.compile(r" \(column (\d+)\)$")


def problems_from_validation(error: ValidationError, doc: MarkedDocument, root: type[BaseModel],
                             root_label: str) -> list[Problem]:
    """One located, human-sized Problem per pydantic error."""
    problems: list[Problem] = []
    seen: set[tuple[int, int, str]] = set()
    for detail in error.errors(include_url=False):
        loc: PathKey = tuple(detail["loc"])
        kind = detail["type"]
        message = str(detail["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            if message.startswith(prefix):
                message = message[len(prefix):]
        if kind == "extra_forbidden" and loc:
            parent, key = loc[:-1], loc[-1]
            line, column = doc.mark_for(loc, key=True)
            what = message.split(" ", 2)[1] if message.startswith("unknown ") else "key"
            text = f"unknown {what} {str(key)!r} in {_parent_label(parent, root_label)}"
            allowed = allowed_keys(root, parent)
            if allowed:
                text += f"; allowed: {', '.join(allowed)}"
        elif kind == "missing":
            line, column = doc.mark_for(loc[:-1])
            where = render_path(loc[:-1]) or root_label
            text = f"{where}: missing required key {str(loc[-1])!r}" if loc else message
        else:
            line, column = doc.mark_for(loc)
            inner = _INNER_COLUMN_RE.search(message)
            if inner and loc in doc.inline_offsets and loc in doc.value_marks:
                # an error inside a one-line string (stop_when): point at the character itself
                column += doc.inline_offsets[loc] + int(inner.group(1)) - 1
                message = message[:inner.start()]
            value = detail.get("input")
            got = f" (got {_short(value)})" if isinstance(value, (str, int, float, bool)) or value is None else ""
            text = f"{render_path(loc) or root_label}: {message}{got}"
        key = (line, column, text)
        if key not in seen:
            seen.add(key)
            problems.append(Problem(doc.source, line, column, text))
    problems.sort(key=lambda p: (p.line, p.column))
    return problems


def validate_document(model: type[BaseModel], doc: MarkedDocument, root_label: str) -> Any:
    """Validate parsed data against `model`; every error becomes a located Problem."""
    if not isinstance(doc.data, dict):
        line, column = doc.mark_for(())
        raise ScenarioError.at(doc.source, line, column,
                               f"the top level of a {root_label} file must be a mapping of keys to values")
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise ScenarioError(problems_from_validation(exc, doc, model, root_label)) from None
    except RecursionError:
        raise ScenarioError.at(doc.source, 1, 1, "nested too deeply") from None
