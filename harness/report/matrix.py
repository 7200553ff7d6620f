"""The verdict matrix: every scenario against every profile, one cell per run.

This is how the harness proves it can tell a good deployment from each anti-pattern: the `article` column
should be all pass, and each anti-pattern profile should fail exactly the scenarios it breaks, naming the
failing checks. Rows are scenarios, columns are profiles (in the order given); a scenario that was not run
under a profile shows as "-". Rendered as a rich table for people and as JSON for machines.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, Field
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.errors import ExitCode
from harness.redact import Redactor, default_redactor
from harness.report.console import VERDICT_STYLE
from harness.report.model import GamedayResult, RunResult, Verdict


# (label, check, evidence field): the counts a cell shows, so a pass is seen to rest on evidence and not on none
EVIDENCE_COUNTS = (("canaries after fault", "no-corrupted-responses", "checked_after_knowing"),
                   ("retried keys", "idempotent-retries", "retried_keys"),
                   ("pods drained", "node-drained", "pods_seen"),
                   ("failover requests", "traffic-failover", "failover_requests"),
                   ("moved conversations", "session-continuity", "judged"))


def _sum_field(value: Any, name: str) -> int:
    """Every `name` in a check's evidence, however nested (per fault, per node)."""
    if isinstance(value, dict):
        return sum(_sum_field(v, name) if k != name else int(v or 0) for k, v in value.items()
                   if k == name or isinstance(v, (dict, list)))
    if isinstance(value, list):
        return sum(_sum_field(v, name) for v in value)
    return 0


def evidence_counts(run: RunResult) -> dict[str, int]:
    """The evidence counts of a run's judged checks (requests always)."""
    counts = {"requests": run.metrics.requests}
    for label, check, name in EVIDENCE_COUNTS:
        for result in run.checks:
            if result.name == check and result.status in ("pass", "fail", "inconclusive"):
                # a per-fault check's judgements hold its evidence (the top level repeats or nests it)
                source = [j.evidence for j in result.judgements] if result.judgements else result.evidence
                counts[label] = counts.get(label, 0) + _sum_field(source, name)
    return counts


class MatrixCell(BaseModel):
    verdict: Verdict
    exit_code: int
    failed_checks: list[str] = Field(default_factory=list)
    reason: str | None = None                 # for error/aborted: why; for fail: the failing checks' reasons
    evidence: dict[str, int] = Field(default_factory=dict)   # what the verdict rests on (see EVIDENCE_COUNTS)
    # an error only because a fault never showed to the detectors it trusts (fault-landed failed, every revert
    # held): the profile hid the fault, and the harness said so rather than judge a deployment that never saw it
    fault_hidden: bool = False

    @classmethod
    def of(cls, run: RunResult) -> "MatrixCell":
        failed = run.failed_checks
        if run.verdict == "fail":
            reason = "; ".join(f"{c.name}: {c.reason}" for c in failed)
        elif run.verdict in ("error", "aborted", "inconclusive"):
            reason = run.summary()
        else:
            reason = None
        names = [c.name for c in failed]
        hidden = (run.verdict == "error" and names == ["fault-landed"] and bool(run.faults)
                  and all(f.injected_at is not None and not f.revert_error for f in run.faults))
        return cls(verdict=run.verdict, exit_code=run.exit_code, failed_checks=names, reason=reason,
                   evidence=evidence_counts(run), fault_hidden=hidden)

    def label(self) -> str:
        if self.verdict in ("fail", "error") and self.failed_checks:
            return f"{self.verdict}: " + ", ".join(self.failed_checks)
        return self.verdict

    def counts(self) -> str:
        """The evidence the verdict rests on, one short line ("requests 812, canaries after fault 21")."""
        return ", ".join(f"{label} {n}" for label, n in self.evidence.items())


class VerdictMatrix(BaseModel):
    profiles: list[str] = Field(default_factory=list)
    scenarios: list[str] = Field(default_factory=list)
    cells: dict[str, dict[str, MatrixCell]] = Field(default_factory=dict)   # scenario -> profile -> cell

    @classmethod
    def from_gamedays(cls, results: Iterable[tuple[str, GamedayResult]]) -> "VerdictMatrix":
        matrix = cls()
        for profile, gameday in results:
            if profile not in matrix.profiles:
                matrix.profiles.append(profile)
            for run in gameday.runs:
                if run.scenario not in matrix.scenarios:
                    matrix.scenarios.append(run.scenario)
                matrix.cells.setdefault(run.scenario, {})[profile] = MatrixCell.of(run)
        return matrix

    def cell(self, scenario: str, profile: str) -> MatrixCell | None:
        return self.cells.get(scenario, {}).get(profile)

    def column(self, profile: str) -> list[MatrixCell]:
        """One profile's cells, in scenario order."""
        return [c for c in (self.cell(s, profile) for s in self.scenarios) if c is not None]

    def exit_code(self) -> int:
        """3 when a run was aborted, 4 when one could not be judged for a reason other than a fault its
        profile hid from the detectors (that cell is the harness telling, as designed), else 0: failed checks
        are the matrix's content, not its failure (docs/CONTRACTS.md)."""
        cells = [c for row in self.cells.values() for c in row.values()]
        if any(c.verdict == "aborted" for c in cells):
            return ExitCode.ABORTED
        if any(c.verdict == "error" and not c.fault_hidden for c in cells):
            return ExitCode.TARGET_ERROR
        return ExitCode.PASS

    def to_json(self, redactor: Redactor | None = None) -> dict[str, Any]:
        redactor = redactor or default_redactor()
        return redactor.data(self.model_dump(mode="json"))

    def to_table(self, *, ascii_only: bool = False) -> Table:
        table = Table(title="verdict matrix", box=box.ASCII if ascii_only else box.ROUNDED, show_lines=True)
        table.add_column("scenario", style="bold")
        for profile in self.profiles:
            table.add_column(profile, overflow="fold")
        for scenario in self.scenarios:
            row: list[Any] = [scenario]
            for profile in self.profiles:
                cell = self.cell(scenario, profile)
                if cell is None:
                    row.append(Text("-", style="dim"))
                else:
                    text = Text(cell.label(), style=VERDICT_STYLE[cell.verdict])
                    if cell.evidence:
                        text.append("\n" + cell.counts(), style="dim")
                    row.append(text)
            table.add_row(*row)
        return table

    def render(self, console: Console) -> None:
        console.print(self.to_table(ascii_only=not console.is_terminal))


def write_matrix(matrix: VerdictMatrix, directory: str | Path, *, redactor: Redactor | None = None) -> Path:
    """matrix.json (machine-readable) and matrix.txt (the table as plain text) into `directory`."""
    from harness.report.writers import _atomic_write   # one atomic writer for every report file

    redactor = redactor or default_redactor()
    directory = Path(directory)
    path = directory / "matrix.json"
    _atomic_write(path, redactor.text(json.dumps(matrix.to_json(redactor), indent=2)) + "\n")
    console = Console(file=io.StringIO(), width=200, force_terminal=False, no_color=True, color_system=None,
                      markup=False)
    console.print(matrix.to_table(ascii_only=True))
    _atomic_write(directory / "matrix.txt", redactor.text(console.file.getvalue()))
    return path
