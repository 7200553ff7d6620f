"""docs/FIDELITY.md is a ledger the code is held to, so its rows must point at things that exist.

Each row names a real behaviour, its source (or says it is assumed), the harness code that relies on it, where
the twin implements it and the test that shows it. A row whose file moved, whose test was renamed, or whose
source was left blank is a claim nobody checks any more: these tests fail on it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEDGER = ROOT / "docs" / "FIDELITY.md"
COLUMNS = ["ID", "Real behaviour", "Source", "Harness", "Twin", "Test"]
ID_RE = re.compile(r"^[A-Z][A-Z0-9]*-\d+$")
CODE_RE = re.compile(r"`([^`]+)`")
SOURCE_RE = re.compile(r"https?://|`[\w.-]+/[\w.-]+:[^`]+`|^\*{0,2}assumed", re.IGNORECASE)


@dataclass(frozen=True)
class Row:
    line: int
    cells: dict[str, str]

    @property
    def id(self) -> str:
        return self.cells["ID"]


class StrayRow(AssertionError):
    """A line that looks like a ledger row but is not in a ledger table (a blank line cut it off), so it would
    silently escape every check below."""


def ledger_rows(text: str) -> list[Row]:
    """Every data row of every table whose header is the ledger's six columns."""
    rows: list[Row] = []
    header: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            if ID_RE.match(cells[0]):
                raise StrayRow(f"line {number}: row {cells[0]} stands outside a ledger table (a blank line above it?)")
            header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        if header == COLUMNS:
            rows.append(Row(number, dict(zip(COLUMNS, cells))))
    return rows


def _paths(cell: str) -> list[tuple[str, str | None]]:
    """(file, symbol) for each backticked `path` or `path::symbol` in a cell."""
    found = []
    for code in CODE_RE.findall(cell):
        path, _, symbol = code.partition("::")
        if "/" in path and not path.startswith("http") and ":" not in path:
            found.append((path, symbol or None))
    return found


def _defines(path: Path, symbol: str) -> bool:
    text = path.read_text()
    last = symbol.split(".")[-1]
    return re.search(rf"^\s*(?:async\s+def|def|class)\s+{re.escape(last)}\b|^\s*{re.escape(last)}\s*[:=]",
                     text, re.MULTILINE) is not None


ROWS = ledger_rows(LEDGER.read_text())


def test_the_ledger_has_rows_and_unique_ids():
    assert ROWS, "docs/FIDELITY.md has no ledger rows"
    ids = [r.id for r in ROWS]
    bad = [f"line {r.line}: {r.id!r}" for r in ROWS if not ID_RE.match(r.id)]
    assert not bad, f"row IDs must look like AREA-N: {bad}"
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"duplicate row IDs: {dupes}"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_each_row_names_its_source_code_twin_and_test(row: Row):
    problems = []
    if not SOURCE_RE.search(row.cells["Source"]):
        problems.append("Source names no URL, no `owner/repo:path`, and does not say assumed")
    for column in ("Harness", "Twin", "Test"):
        paths = _paths(row.cells[column])
        if column != "Harness" and not paths:
            problems.append(f"{column} names no file")
        for path, symbol in paths:
            file = ROOT / path
            if not file.exists():
                problems.append(f"{column}: {path} does not exist")
            elif symbol and not _defines(file, symbol):
                problems.append(f"{column}: {path} defines no {symbol}")
    if not any(p.startswith("tests/") and s and s.startswith("test") for p, s in _paths(row.cells["Test"])):
        problems.append("Test names no `tests/...py::test_name`")
    assert not problems, f"docs/FIDELITY.md line {row.line} ({row.id}): " + "; ".join(problems)


def test_twin_constants_cite_rows_that_exist():
    """A `# FIDELITY X-N` comment in the twin points at a row of the ledger."""
    ids = {r.id for r in ROWS}
    cited = {}
    for file in (ROOT / "harness").rglob("*.py"):
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            for ref in re.findall(r"FIDELITY ([A-Z][A-Z0-9]*-\d+)", line):
                cited.setdefault(ref, f"{file.relative_to(ROOT)}:{number}")
    missing = {ref: where for ref, where in cited.items() if ref not in ids}
    assert not missing, f"code cites ledger rows that do not exist: {missing}"


def test_the_parser_reads_a_row_and_rejects_a_sourceless_one():
    text = ("| ID | Real behaviour | Source | Harness | Twin | Test |\n|---|---|---|---|---|---|\n"
            "| X-1 | a | https://example.invalid/doc | `harness/journal.py` | `harness/twin/clock.py` |"
            " `tests/docs/test_fidelity_ledger.py::test_the_ledger_has_rows_and_unique_ids` |\n"
            "| X-2 | b | a colleague said so | | `harness/twin/clock.py` | `tests/x.py::test_y` |\n")
    rows = ledger_rows(text)
    assert [r.id for r in rows] == ["X-1", "X-2"]
    with pytest.raises(StrayRow):
        ledger_rows(text.replace("|\n| X-2", "|\n\n| X-2"))
    assert SOURCE_RE.search(rows[0].cells["Source"])
    assert not SOURCE_RE.search(rows[1].cells["Source"])
    assert SOURCE_RE.search("assumed: no source found")
