"""The harness's packages form layers, read from the source itself.

Every module of `harness` is parsed (never imported) and every import in it counted, a function's or a method's as
much as a module's: an import that is put off until a function runs is still a dependency, and hiding one there
would only move a cycle out of sight. Modules are grouped into units, one per subpackage (`harness.scenario`,
`harness.faults`, ...) and one per top-level module (`harness.session`, `harness.journal`, ...), and three rules hold
between units:

(a) the embedded twin is imported by nothing outside harness/twin/ but harness/cli.py, so every other path talks
    to it through the same protocols as to AWS (the CLI may start it and name its profiles);
(b) the library packages (scenario, target, faults, checks, load, report) never import the command line
    (`harness.cli`, `harness.commands`): commands are built on them, not the other way round;
(c) no cycle between units: each can be read, tested and changed with only what is below it in mind. A cycle
    is printed unit by unit, with the import lines that make it.

Each rule also has a test that feeds the checker a small package of its own that breaks it, so a checker that
silently sees nothing cannot pass.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ("scenario", "target", "faults", "checks", "load", "report")
COMMAND_LINE = ("cli", "commands")


@dataclass(frozen=True)
class Edge:
    """One import: module `source` (file `path`, line `line`) imports module `target`."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import anywhere in the file; `from a import b` counts as a.b when a.b is
    a module, so importing a submodule by name is seen as what it is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                child = f"{origin}.{alias.name}"
                found.append((child if child in known else origin, node.lineno))
    return found


def import_graph(package_dir: Path) -> list[Edge]:
    """Every import between modules of the package rooted at `package_dir` (other imports are left out)."""
    files = sorted(package_dir.rglob("*.py"))
    names = {path: module_name(path, package_dir) for path in files}
    known = set(names.values())
    top = package_dir.name
    edges = []
    for path, module in names.items():
        for target, line in imports_of(path, module, known):
            if target == top or target.startswith(top + "."):
                edges.append(Edge(module, target, str(path.relative_to(package_dir.parent)), line))
    return edges


def unit_of(module: str) -> str:
    """`harness.scenario.model` -> `harness.scenario`; `harness.journal` -> `harness.journal`."""
    return ".".join(module.split(".")[:2])


def twin_outside(edges: list[Edge]) -> list[Edge]:
    """Rule (a): imports of the twin from anywhere but the twin and the CLI."""
    return [e for e in edges if unit_of(e.target).endswith(".twin")
            and not unit_of(e.source).endswith(".twin") and not e.source.endswith(".cli")]


def library_on_command_line(edges: list[Edge]) -> list[Edge]:
    """Rule (b): the library packages importing the command line."""
    return [e for e in edges if unit_of(e.source).split(".")[-1] in LIBRARY
            and unit_of(e.target).split(".")[-1] in COMMAND_LINE]


def unit_cycles(edges: list[Edge]) -> list[str]:
    """Rule (c): one line per cycle between units (each strongly connected group of units), walked unit by unit
    with the import that makes each step."""
    between: dict[str, dict[str, Edge]] = defaultdict(dict)
    for edge in edges:
        source, target = unit_of(edge.source), unit_of(edge.target)
        if source != target:
            between[source].setdefault(target, edge)
    cycles = []
    for group in strongly_connected(between):
        if len(group) < 2:
            continue
        path = cycle_through(min(group), between, set(group))
        steps = [between[a][b] for a, b in zip(path, path[1:])]
        cycles.append(" -> ".join(path) + "  (" + "; ".join(str(step) for step in steps) + ")")
    return cycles


def strongly_connected(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (the graph is small; recursion is not the point)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, {})))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups


def cycle_through(start: str, graph: dict[str, dict[str, Edge]], group: set[str]) -> list[str]:
    """A shortest path from `start` back to itself inside `group` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph.get(node, {})):
                if successor not in group:
                    continue
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if successor not in previous:
                    previous[successor] = node
                    following.append(successor)
        frontier = following
    return [start]


# ------------------------------------------------------------------------------------------ the harness

HARNESS = import_graph(ROOT / "harness")


def test_the_graph_sees_the_harness():
    """A parser that read nothing would pass every rule below."""
    units = {unit_of(e.source) for e in HARNESS}
    assert {"harness.scenario", "harness.target", "harness.faults", "harness.checks", "harness.run"} <= units
    assert any(e.source == "harness.scenario.model" and e.target.startswith("harness.faults") for e in HARNESS)


def test_nothing_but_the_cli_imports_the_twin():
    assert twin_outside(HARNESS) == [], "\n".join(map(str, twin_outside(HARNESS)))


def test_the_library_never_imports_the_command_line():
    assert library_on_command_line(HARNESS) == [], "\n".join(map(str, library_on_command_line(HARNESS)))


def test_no_cycle_between_packages():
    cycles = unit_cycles(HARNESS)
    assert cycles == [], "import cycles between packages:\n" + "\n".join(cycles)


# ------------------------------------------------------------------------- the checker, on packages of its own


def package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package `harness` under tmp_path with these modules (path -> source); __init__.py files are added."""
    root = tmp_path / "harness"
    for relative, source in {"__init__.py": "", **files}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in [path.parent, *path.parent.parents]:
            if folder == root.parent:
                break
            (folder / "__init__.py").touch()
        path.write_text(source, encoding="utf-8")
    return root


def test_a_twin_import_outside_the_twin_and_the_cli_is_caught(tmp_path: Path):
    root = package(tmp_path, {
        "twin/server.py": "",
        "cli.py": "from harness.twin import server\n",                   # allowed
        "twin/world.py": "from harness.twin.server import *\n",           # allowed
        "runner.py": "def start():\n    from harness.twin.server import TwinServer\n",
    })
    caught = twin_outside(import_graph(root))
    assert [(e.source, e.target, e.line) for e in caught] == [("harness.runner", "harness.twin.server", 2)]


def test_a_library_import_of_the_command_line_is_caught(tmp_path: Path):
    root = package(tmp_path, {
        "cli.py": "class UsageError(Exception): ...\n",
        "commands/run.py": "from harness.cli import UsageError\n",        # allowed: commands sit on the cli
        "scenario/errors.py": "import harness.cli\n",
        "faults/base.py": "def later():\n    from harness.commands import run\n",
    })
    caught = library_on_command_line(import_graph(root))
    assert sorted((e.source, e.target) for e in caught) == [("harness.faults.base", "harness.commands.run"),
                                                            ("harness.scenario.errors", "harness.cli")]


def test_a_cycle_between_packages_is_caught_and_printed(tmp_path: Path):
    root = package(tmp_path, {
        "scenario/model.py": "from harness.target.model import TargetSpec\nfrom harness.strict import units\n",
        "target/model.py": "def schema():\n    from harness.scenario import schema\n",
        "scenario/schema.py": "",
        "strict/units.py": "from .model import StrictModel\n",            # relative, inside one unit: no cycle
        "strict/model.py": "",
        "runner.py": "from harness.scenario.model import *\n",
    })
    cycles = unit_cycles(import_graph(root))
    assert len(cycles) == 1, cycles
    assert cycles[0].startswith("harness.scenario -> harness.target -> harness.scenario")
    assert "harness/target/model.py:2: harness.target.model imports harness.scenario.schema" in cycles[0]


def test_a_longer_cycle_is_walked_unit_by_unit(tmp_path: Path):
    root = package(tmp_path, {
        "a.py": "import harness.b\n",
        "b.py": "import harness.c\n",
        "c.py": "def f():\n    import harness.a\n",
    })
    assert unit_cycles(import_graph(root)) == [
        "harness.a -> harness.b -> harness.c -> harness.a  (harness/a.py:1: harness.a imports harness.b; "
        "harness/b.py:1: harness.b imports harness.c; harness/c.py:2: harness.c imports harness.a)"]
