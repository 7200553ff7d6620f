"""The history of runs in a reports folder (`history.jsonl`) and the page built from it (`index.html`).

A run folder answers "what happened in this run"; the history answers "is this deployment getting better":
which scenarios were run, with what verdict and score, and how long each fault took to be detected, isolated
and drained, run after run. Every run and every game day appends one line to `<root>/history.jsonl`, and
`<root>/index.html` is rebuilt from those lines alone, never from the run folders: run folders are large and get
pruned, and the history must outlive them (a pruned run keeps its line; the index says its folder is gone).

The history is a by-product of a run, never a judge of it: a line that cannot be written is logged and the run
keeps its verdict and exit code. Lines are appended with one write and fsynced, so a crash leaves at most one
torn last line, which the reader (harness/jsonl.py) skips.

The line format and the page are described in docs/REPORTS.md, "History and the index".
"""
from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.jsonl import iter_records
from harness.redact import Redactor, default_redactor
from harness.report.model import MILESTONES, GamedayResult, MilestoneName, RunResult, Verdict, gameday_score
from harness.report.templates import PAGE_CSS, environment
from harness.report.writers import REPORT_HTML, _atomic_write, _finite

log = logging.getLogger(__name__)

HISTORY_JSONL = "history.jsonl"
INDEX_HTML = "index.html"

# git answers in milliseconds; a hung one (a network file system, a credential prompt) must not hold the run
GIT_TIMEOUT_S = 10.0

EntryKind = Literal["run", "gameday"]


class MilestoneMark(BaseModel):
    """One milestone of a run as the history keeps it: when it came (deployment seconds after its fault was
    injected) against its limit, or why it is absent. The full record (wall time, source) stays in result.json."""

    model_config = ConfigDict(extra="allow")

    fault: str
    index: int
    name: MilestoneName
    after_s: float | None = None
    limit_s: float | None = None
    absent: str | None = None

    @property
    def late(self) -> bool:
        return self.after_s is not None and self.limit_s is not None and self.after_s > self.limit_s


class HistoryEntry(BaseModel):
    """One line of history.jsonl: a run or a game day, with what the index shows of it.

    `report` is the run folder relative to the reports root (POSIX), so the history stays valid when the folder
    is moved or mounted elsewhere. `scenario_commit` is the git commit that last touched the scenario file, and
    `scenario_modified` says whether the file differed from it when the run ended: a trend is only comparable
    between runs of the same scenario text. Unknown fields are kept, so an older reader round-trips a newer line.
    """

    model_config = ConfigDict(extra="allow")

    kind: EntryKind
    name: str                                # the scenario's name, or the game day's
    target: str = ""
    profile: str | None = None
    seed: int | None = None
    verdict: Verdict
    exit_code: int
    score: float | None = None
    gated_by: list[str] = Field(default_factory=list)
    milestones: list[MilestoneMark] = Field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    report: str | None = None
    runs: list[str] = Field(default_factory=list)        # game day only: the report folders of its runs
    scenario_file: str | None = None
    scenario_commit: str | None = None
    scenario_modified: bool | None = None
    scenario_sha256: str | None = None


class ScenarioProvenance(BaseModel):
    """Which text of a scenario file a run ran: its hash, and its place in git when it is tracked."""

    sha256: str | None = None
    commit: str | None = None
    modified: bool | None = None


def history_path(root: str | Path) -> Path:
    return Path(root) / HISTORY_JSONL


def index_path(root: str | Path) -> Path:
    return Path(root) / INDEX_HTML


# -------------------------------------------------------------------------------------------- building entries
def scenario_provenance(path: str | Path | None) -> ScenarioProvenance:
    """The file's sha256 and, when git tracks it, the last commit that touched it and whether the file differs
    from that commit. Every failure (no file, no git, not a work tree, untracked) leaves a field None: provenance
    is a label on a run, never a reason for one to fail."""
    if path is None:
        return ScenarioProvenance()
    file = Path(path)
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        return ScenarioProvenance()
    commit = _git(file, "log", "-1", "--format=%H", "--", file.name)
    if not commit:
        return ScenarioProvenance(sha256=digest)
    diff = _git_returncode(file, "diff", "--no-ext-diff", "--quiet", commit, "--", file.name)
    return ScenarioProvenance(sha256=digest, commit=commit, modified=None if diff not in (0, 1) else diff == 1)


def _run_git(file: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    """git run in the file's own folder (the file may live in another repository than the current one)."""
    try:
        return subprocess.run(["git", *args], cwd=file.parent, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.SubprocessError):
        return None


def _git(file: Path, *args: str) -> str | None:
    done = _run_git(file, *args)
    if done is None or done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _git_returncode(file: Path, *args: str) -> int | None:
    done = _run_git(file, *args)
    return None if done is None else done.returncode


def _relative_report(report_dir: str | None, root: Path) -> str | None:
    """The run folder relative to the reports root, as POSIX (absolute when the two share no base)."""
    if not report_dir:
        return None
    folder = Path(report_dir).absolute()
    try:
        return Path(os.path.relpath(folder, root.absolute())).as_posix()
    except ValueError:   # another drive (Windows)
        return folder.as_posix()


def run_entry(root: str | Path, result: RunResult) -> HistoryEntry:
    """The history line of one run."""
    root = Path(root)
    provenance = scenario_provenance(result.scenario_file)
    return HistoryEntry(
        kind="run", name=result.scenario, target=result.target, profile=result.profile, seed=result.seed,
        verdict=result.verdict, exit_code=result.exit_code,
        score=result.score.value if result.score is not None else None,
        gated_by=list(result.score.gated_by) if result.score is not None else [],
        milestones=[MilestoneMark(fault=m.fault, index=m.index, name=m.name, after_s=m.after_s, limit_s=m.limit_s,
                                  absent=m.absent) for m in result.milestones],
        started_at=result.started_at, ended_at=result.ended_at, report=_relative_report(result.report_dir, root),
        scenario_file=result.scenario_file, scenario_commit=provenance.commit,
        scenario_modified=provenance.modified, scenario_sha256=provenance.sha256)


def gameday_entry(root: str | Path, gameday: GamedayResult) -> HistoryEntry:
    """The history line of a game day; its runs have lines of their own, this one links them."""
    root = Path(root)
    seeds = {run.seed for run in gameday.runs}
    gated: list[str] = []
    for run in gameday.runs:
        for name in run.score.gated_by if run.score is not None else []:
            if name not in gated:
                gated.append(name)
    runs = [_relative_report(run.report_dir, root) for run in gameday.runs]
    return HistoryEntry(
        kind="gameday", name=gameday.name, target=gameday.target, profile=gameday.profile,
        seed=seeds.pop() if len(seeds) == 1 else None, verdict=gameday.verdict, exit_code=gameday.exit_code,
        score=gameday.score if gameday.score is not None else gameday_score(gameday.runs), gated_by=gated,
        started_at=gameday.started_at, ended_at=gameday.ended_at, report=_relative_report(gameday.report_dir, root),
        runs=[r for r in runs if r is not None])


# ------------------------------------------------------------------------------------------------ recording
def append_entry(root: str | Path, entry: HistoryEntry, *, redactor: Redactor | None = None) -> Path:
    """Append one redacted line to history.jsonl with a single write, then fsync it.

    A line left torn by an earlier crash has no newline at its end; the new line starts on a line of its own so
    the torn one costs only itself."""
    redactor = redactor or default_redactor()
    path = history_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = redactor.text(json.dumps(_finite(redactor.data(entry.model_dump(mode="json"))), separators=(",", ":"),
                                    allow_nan=False, default=str))
    json.loads(line)   # redaction must never leave a line the reader would skip
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)   # read: the last byte
    try:
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        data = (("\n" if torn else "") + line + "\n").encode("utf-8")
        written = os.write(fd, data)
        while written < len(data):      # a regular file takes a whole write; a short one is finished, not lost
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def record_run(root: str | Path, result: RunResult, *, redactor: Redactor | None = None) -> Path | None:
    """Add a run to the history and rebuild the index. Returns the index's path, None when the history could not
    be written (logged: the run's verdict and exit code stand whatever happens here)."""
    return _record(root, lambda: run_entry(root, result), f"run {result.scenario}", redactor)


def record_gameday(root: str | Path, gameday: GamedayResult, *, redactor: Redactor | None = None) -> Path | None:
    """Add a game day to the history and rebuild the index (see `record_run`)."""
    return _record(root, lambda: gameday_entry(root, gameday), f"game day {gameday.name}", redactor)


def _record(root: str | Path, entry: Callable[[], HistoryEntry], what: str,
            redactor: Redactor | None) -> Path | None:
    """The entry is built inside the guard too: reading the scenario file or asking git must not fail a run."""
    try:
        redactor = redactor or default_redactor()
        append_entry(root, entry(), redactor=redactor)
    except Exception as exc:   # noqa: BLE001 - the history never costs a run its verdict
        log.warning("history of %s not written to %s: %s", what, history_path(root), exc)
        return None
    try:
        return build_index(root, redactor=redactor)
    except Exception as exc:   # noqa: BLE001
        log.warning("index of %s not rebuilt: %s", root, exc)
        return None


def read_history(root: str | Path) -> list[HistoryEntry]:
    """The entries of history.jsonl in file order; a torn line, or one that is not an entry, is skipped."""
    entries = []
    for number, record in enumerate(iter_records(history_path(root)), 1):
        try:
            entries.append(HistoryEntry.model_validate(record))
        except ValidationError as exc:
            log.warning("%s: record %d skipped: %s", history_path(root), number, exc.errors()[0].get("msg"))
    return entries


# ------------------------------------------------------------------------------------------------ the index
class TrendPoint(BaseModel):
    """One scored run on a scenario's trend."""

    label: str
    score: float
    verdict: Verdict


def score_trend_svg(points: Sequence[TrendPoint], *, height: int = 180, max_width: int = 1160) -> Markup:
    """An inline SVG line chart of scores (0-100) in run order, each point titled with its run and labelled with
    its score (every k-th one when the points are too close for their labels, the last always), the first and
    last runs' dates under the axis. Drawn in code: the index stays one small file that needs nothing to display
    or print, and fits a 1280 px screen however many runs there are."""
    if not points:
        return Markup("")
    left, right, top, bottom, pad = 34, 24, 22, 28, 16
    span = max(0, len(points) - 1)
    step = min(56.0, (max_width - left - right - 2 * pad) / span) if span else 0.0
    width = max(320, round(left + right + 2 * pad + step * span))
    plot_h = height - top - bottom
    every = max(1, round(24 / step)) if step else 1

    def x(i: int) -> float:
        return left + pad + step * i if span else (width + left - right) / 2

    def y(score: float) -> float:
        return top + plot_h * (1 - max(0.0, min(100.0, score)) / 100)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="score per run, oldest first">']
    for grid in (0, 50, 100):
        parts.append(f'<line x1="{left}" y1="{y(grid):.1f}" x2="{width - right}" y2="{y(grid):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y(grid) + 4:.1f}" class="axis">{grid}</text>')
    if span:
        line = " ".join(f"{x(i):.1f},{y(p.score):.1f}" for i, p in enumerate(points))
        parts.append(f'<polyline points="{line}" class="line"/>')
    for i, p in enumerate(points):
        title = html.escape(f"{p.label}: {p.score:.1f} ({p.verdict})")
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(p.score):.1f}" r="4" class="pt v-{p.verdict}">'
                     f'<title>{title}</title></circle>')
        if i % every == 0 or i == span:
            parts.append(f'<text x="{x(i):.1f}" y="{y(p.score) - 8:.1f}" class="val">{p.score:.0f}</text>')
    for i in sorted({0, span}):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" class="date">{html.escape(points[i].label[:10])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


class MilestoneCell(BaseModel):
    """What one cell of the milestone table shows: one fault's milestone of one run."""

    text: str
    late: bool = False
    absent: str | None = None


def milestone_cells(entry: HistoryEntry) -> dict[str, list[MilestoneCell]]:
    """Per milestone name, the run's marks as cells: `after_s` in deployment seconds with its limit; a run with
    several faults names the fault in each cell."""
    faults = {(m.fault, m.index) for m in entry.milestones}
    cells: dict[str, list[MilestoneCell]] = {name: [] for name in MILESTONES}
    for mark in entry.milestones:
        prefix = f"{mark.fault}#{mark.index}: " if len(faults) > 1 else ""
        limit = f" / {mark.limit_s:g} s" if mark.limit_s is not None else ""
        if mark.after_s is not None:
            cell = MilestoneCell(text=f"{prefix}{mark.after_s:.1f} s{limit}", late=mark.late)
        else:
            cell = MilestoneCell(text=f"{prefix}absent{limit}", absent=mark.absent or "not reached")
        cells.setdefault(mark.name, []).append(cell)
    return cells


class ScenarioSection(BaseModel):
    """A scenario's (or a game day's) runs, oldest first for the trend, newest first for the table."""

    kind: EntryKind
    name: str
    entries: list[HistoryEntry]              # newest first
    trend: str                               # SVG markup (score_trend_svg), empty without scored runs
    unscored: int

    @property
    def has_milestones(self) -> bool:
        return any(e.milestones for e in self.entries)


def _newest_first(entries: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """Newest first by start time; equal or unknown times keep the file's order, later lines first."""
    floor = datetime.min.replace(tzinfo=timezone.utc)
    indexed = list(enumerate(entries))
    indexed.sort(key=lambda item: (item[1].started_at or floor, item[0]), reverse=True)
    return [entry for _, entry in indexed]


def _sections(entries: list[HistoryEntry]) -> list[ScenarioSection]:
    groups: dict[tuple[str, str], list[HistoryEntry]] = {}
    for entry in entries:                    # newest first already
        groups.setdefault((entry.kind, entry.name), []).append(entry)
    sections = []
    for (kind, name), group in sorted(groups.items(), key=lambda item: (item[0][0] != "run", item[0][1])):
        oldest_first = list(reversed(group))
        points = [TrendPoint(label=_ts(e.started_at), score=e.score, verdict=e.verdict)
                  for e in oldest_first if e.score is not None]
        sections.append(ScenarioSection(kind=kind, name=name, entries=group, trend=str(score_trend_svg(points)),
                                        unscored=sum(1 for e in group if e.score is None)))
    return sections


def _ts(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _report_link(root: Path, report: str | None) -> str | None:
    """The link to a run's report.html while its folder exists; None once it was deleted."""
    if not report or not (root / report).is_dir():
        return None
    return f"{report.rstrip('/')}/{REPORT_HTML}"


def render_index(root: str | Path, entries: list[HistoryEntry], *, redactor: Redactor | None = None) -> str:
    """index.html text for these entries (read from history.jsonl by `build_index`)."""
    root = Path(root)
    redactor = redactor or default_redactor()
    safe = _newest_first(HistoryEntry.model_validate(redactor.data(e.model_dump(mode="json"))) for e in entries)
    rows = [(e, _report_link(root, e.report)) for e in safe]
    page = environment().from_string(INDEX_TEMPLATE).render(
        rows=rows, sections=_sections(safe), milestones=MILESTONES, cells=milestone_cells, when=_ts)
    return redactor.text(page)


def build_index(root: str | Path, *, redactor: Redactor | None = None) -> Path:
    """Write `<root>/index.html` from `<root>/history.jsonl` alone (atomically) and return its path."""
    root = Path(root)
    path = index_path(root)
    _atomic_write(path, render_index(root, read_history(root), redactor=redactor))
    return path


# The shared look and verdict colours are templates.PAGE_CSS, report.html's too.
INDEX_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>g7chaos · history of runs</title>
<style>
""" + PAGE_CSS + """ body { max-width: 1200px; } h3 { margin-bottom: 0.3em; }
 .verdict { padding: 0.1em 0.6em; } .num { text-align: right; white-space: nowrap; }
 td.late, span.late { background: #fdecea; color: #c62828; font-weight: bold; }
 span.absent { color: #757575; border-bottom: 1px dotted #757575; cursor: help; }
 svg.trend .grid { stroke: #e0e0e0; stroke-width: 1; } svg.trend .axis { font-size: 10px; fill: #777; text-anchor: end; }
 svg.trend .line { fill: none; stroke: #1565c0; stroke-width: 2; }
 svg.trend .pt { stroke: #fff; stroke-width: 1; } svg.trend .pt.v-pass { fill: #2e7d32; } svg.trend .pt.v-fail { fill: #c62828; }
 svg.trend .pt.v-aborted { fill: #ef6c00; } svg.trend .pt.v-error { fill: #6a1b9a; } svg.trend .pt.v-inconclusive { fill: #b26a00; }
 svg.trend .val { font-size: 11px; fill: #222; text-anchor: middle; }
 svg.trend .date { font-size: 10px; fill: #777; text-anchor: middle; }
 @media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  a { color: inherit; text-decoration: none; }
  .verdict, td.late, span.late, svg.trend { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  section { break-inside: avoid; } tr { break-inside: avoid; }
 }
</style>
</head>
<body>
<h1>History of runs</h1>
<p class="muted">{{ rows | length }} {{ "entry" if rows | length == 1 else "entries" }} from history.jsonl, newest first. Scores are 0-100; milestone times are
 deployment seconds after the fault was injected, with their limit.</p>

<table id="history">
 <tr><th>started</th><th>kind</th><th>name</th><th>target / profile</th><th>verdict</th><th>score</th><th>report</th></tr>
 {% for e, link in rows %}
 <tr class="entry">
  <td>{{ when(e.started_at) }}</td>
  <td>{{ "game day" if e.kind == "gameday" else "run" }}</td>
  <td>{{ e.name }}{% if e.kind == "gameday" %} <span class="muted">({{ e.runs | length }} runs)</span>{% endif %}</td>
  <td>{{ e.target or "-" }} / {{ e.profile or "-" }}</td>
  <td><span class="verdict v-{{ e.verdict }}">{{ e.verdict }}</span></td>
  <td class="num">{% if e.score is not none %}{{ "%.1f" | format(e.score) }}{% if e.gated_by %} <span class="muted" title="gated by {{ e.gated_by | join(', ') }}">gated</span>{% endif %}{% else %}-{% endif %}</td>
  <td>{% if link %}<a href="{{ link }}">{{ e.report }}</a>{% elif e.report %}<span class="muted">report folder deleted</span>{% else %}-{% endif %}</td>
 </tr>
 {% endfor %}
</table>

{% for s in sections %}
<section class="scenario">
<h2>{{ "Game day " if s.kind == "gameday" else "" }}{{ s.name }}</h2>
<h3>Score per {{ "game day" if s.kind == "gameday" else "run" }}</h3>
{% if s.trend %}{{ s.trend | safe }}{% else %}<p class="muted">No run of it has a score.</p>{% endif %}
{% if s.unscored and s.trend %}<p class="muted">{{ s.unscored }} run(s) without a score are not on the chart.</p>{% endif %}
{% if s.kind == "run" %}
<h3>Milestones</h3>
{% if s.has_milestones %}
<table class="milestones">
 <tr><th>run</th><th>verdict</th>{% for m in milestones %}<th>{{ m }}</th>{% endfor %}</tr>
 {% for e in s.entries %}
 {% set by_name = cells(e) %}
 <tr>
  <td>{{ when(e.started_at) }}{% if e.scenario_commit %} <span class="muted" title="scenario file at commit {{ e.scenario_commit }}{{ ', modified since' if e.scenario_modified else '' }}">@{{ e.scenario_commit[:7] }}{{ "*" if e.scenario_modified else "" }}</span>{% endif %}</td>
  <td><span class="verdict v-{{ e.verdict }}">{{ e.verdict }}</span></td>
  {% for m in milestones %}
  <td class="num{{ ' late' if by_name[m] | selectattr('late') | list else '' }}">
   {%- for c in by_name[m] %}{% if not loop.first %}<br>{% endif %}
   {%- if c.absent is not none %}<span class="absent" title="{{ c.absent }}">{{ c.text }}</span>
   {%- elif c.late %}<span class="late" title="late: over its limit">{{ c.text }}</span>
   {%- else %}{{ c.text }}{% endif %}
   {%- else %}-{% endfor -%}
  </td>
  {% endfor %}
 </tr>
 {% endfor %}
</table>
{% else %}<p class="muted">No milestones recorded for its runs.</p>{% endif %}
{% endif %}
</section>
{% endfor %}

<p class="muted">g7chaos · built from history.jsonl alone; <code>g7chaos report</code> rebuilds it.</p>
</body>
</html>
"""
