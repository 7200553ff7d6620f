"""The history of runs (history.jsonl) and the index page built from it alone (index.html)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.report.history import (HISTORY_JSONL, INDEX_HTML, INDEX_TEMPLATE, build_index, read_history,
                                    record_gameday, record_run, scenario_provenance)
from harness.report.model import GamedayResult, Milestone, RunResult, Score
from harness.report.templates import RUN_TEMPLATE
from harness.report.writers import run_dir

from report_factory import make_run


def scored_run(root: Path, scenario: str, minute: int, score: float | None, *, failed: tuple[str, ...] = (),
               milestones: tuple[Milestone, ...] = (), scenario_file: Path | None = None) -> RunResult:
    """A run as the runner leaves it: its folder exists (empty: the index never reads it), its score and
    milestones set."""
    run = make_run(scenario=scenario, failed=failed)
    started = run.started_at + timedelta(minutes=minute)
    folder = run_dir(root, scenario, started)
    folder.mkdir(parents=True)
    return run.model_copy(update={
        "started_at": started, "ended_at": started + timedelta(minutes=4), "report_dir": str(folder),
        "score": None if score is None else Score(value=score, gated_by=list(failed)),
        "milestones": list(milestones), "scenario_file": str(scenario_file) if scenario_file else None})


def milestone(name: str, after_s: float | None, limit_s: float | None = None, absent: str | None = None,
              fault: str = "ecc-double-bit-error", index: int = 0) -> Milestone:
    return Milestone(fault=fault, index=index, name=name, after_s=after_s, limit_s=limit_s, absent=absent,
                     source="test")


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, list[RunResult], GamedayResult]:
    """Three runs of one scenario (one of them gated), one of another without a score, and their game day."""
    root = tmp_path / "reports"
    runs = [
        scored_run(root, "ecc-double-bit-error", 0, 80.0,
                   milestones=(milestone("detect", 31.5, 60), milestone("drain", None, 300, "target cannot show it"))),
        scored_run(root, "ecc-double-bit-error", 10, 0.0, failed=("no-corrupted-responses",),
                   milestones=(milestone("detect", 75.4, 60), milestone("isolate", 90.0))),
        scored_run(root, "spot-interruption", 20, None),
        scored_run(root, "ecc-double-bit-error", 30, 92.4, milestones=(milestone("detect", 12.0, 60),)),
    ]
    for run in runs:
        assert record_run(root, run) == root / INDEX_HTML
    gameday = GamedayResult.from_runs(runs, name="gameday-scenarios", target="twin", profile="article",
                                      report_dir=str(root / "20260921T140000Z-gameday-scenarios"))
    (root / "20260921T140000Z-gameday-scenarios").mkdir()
    assert record_gameday(root, gameday) == root / INDEX_HTML
    return root, runs, gameday


class Page(HTMLParser):
    """The tables of index.html as rows of cells: each cell's text, classes, link and titles."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[tuple[dict[str, str], list[list[dict]]]] = []
        self._cell: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.tables.append((attr, []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = {"text": "", "class": attr.get("class", "").split(), "href": None, "titles": []}
            self.tables[-1][1][-1].append(self._cell)
        elif self._cell is not None:
            if tag == "a":
                self._cell["href"] = attr.get("href")
            if "title" in attr:
                self._cell["titles"].append(attr["title"])
            self._cell["class"] += attr.get("class", "").split()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data

    def table(self, key: str, value: str) -> list[list[dict]]:
        return [rows for attr, rows in self.tables if attr.get(key) == value][0]


def text(cell: dict) -> str:
    return " ".join(cell["text"].split())


def test_one_line_per_run_and_game_day_with_the_fields(history):
    root, runs, gameday = history
    lines = [json.loads(line) for line in (root / HISTORY_JSONL).read_text().splitlines()]
    assert [(line["kind"], line["name"]) for line in lines] == \
        [("run", r.scenario) for r in runs] + [("gameday", "gameday-scenarios")]
    first, gated, unscored = lines[0], lines[1], lines[2]
    assert (first["target"], first["profile"], first["seed"], first["verdict"], first["exit_code"]) == \
        ("twin", "article", 7, "pass", 0)
    assert first["report"] == Path(runs[0].report_dir).name       # relative to the reports root, POSIX
    assert first["started_at"].startswith("2026-") and first["ended_at"]
    assert first["milestones"] == [
        {"fault": "ecc-double-bit-error", "index": 0, "name": "detect", "after_s": 31.5, "limit_s": 60.0,
         "absent": None},
        {"fault": "ecc-double-bit-error", "index": 0, "name": "drain", "after_s": None, "limit_s": 300.0,
         "absent": "target cannot show it"}]
    assert (gated["score"], gated["gated_by"], gated["verdict"]) == (0.0, ["no-corrupted-responses"], "fail")
    assert unscored["score"] is None and unscored["milestones"] == []
    day = lines[-1]
    assert day["runs"] == [Path(r.report_dir).name for r in runs]
    assert day["score"] == pytest.approx((80.0 + 0.0 + 92.4) / 3) == gameday.score   # the unscored run left out
    assert day["gated_by"] == ["no-corrupted-responses"] and day["verdict"] == gameday.verdict
    assert [e.name for e in read_history(root)] == [line["name"] for line in lines]


def test_gameday_score_is_the_mean_of_the_scored_runs():
    runs = [make_run().model_copy(update={"score": Score(value=v)}) for v in (90.0, 60.0)] + [make_run()]
    assert GamedayResult.from_runs(runs).score == 75.0
    assert GamedayResult.from_runs([make_run()]).score is None


def test_index_lists_every_entry_of_the_history_newest_first(history):
    root, runs, _ = history
    rows = Page((root / INDEX_HTML).read_text()).table("id", "history")[1:]
    entries = sorted(read_history(root), key=lambda e: e.started_at, reverse=True)
    assert len(rows) == len(entries) == len(runs) + 1
    shown = [(text(r[1]), text(r[2]).split(" (")[0], text(r[4]), text(r[5]).split()[0], r[6]["href"])
             for r in rows]
    expected = [("game day" if e.kind == "gameday" else "run", e.name, e.verdict,
                 "-" if e.score is None else f"{e.score:.1f}", f"{e.report}/report.html") for e in entries]
    assert sorted(shown) == sorted(expected)
    runs_only = [row for row in shown if row[0] == "run"]
    assert [row[3] for row in runs_only] == ["92.4", "-", "0.0", "80.0"]          # newest first
    assert all(text(r[0]).endswith(" UTC") and text(r[3]) == "twin / article" for r in rows)


def test_a_deleted_run_folder_is_marked_and_the_index_still_builds(history):
    root, runs, _ = history
    shutil.rmtree(runs[1].report_dir)
    build_index(root)
    rows = Page((root / INDEX_HTML).read_text()).table("id", "history")[1:]
    gone = Path(runs[1].report_dir).name
    by_report = {r[6]["href"] or text(r[6]): r for r in rows}
    assert "report folder deleted" in by_report
    assert all(gone not in (r[6]["href"] or "") for r in rows)
    assert sum(1 for r in rows if text(r[6]) == "report folder deleted") == 1
    assert sum(1 for r in rows if r[6]["href"]) == len(rows) - 1


def test_trend_and_milestones_per_scenario(history):
    root, _, _ = history
    page = (root / INDEX_HTML).read_text()
    section = page.split("<h2>ecc-double-bit-error</h2>")[1].split("</section>")[0]
    labels = re.findall(r'<text [^>]*class="val">([^<]+)</text>', section)
    assert labels == ["80", "0", "92"]                               # oldest first, every point labelled
    assert len(re.findall(r"<circle ", section)) == 3
    table = Page(section).table("class", "milestones")
    assert [text(c) for c in table[0]] == ["run", "verdict", "impact", "detect", "isolate", "drain", "replace",
                                           "slo-restored"]
    newest, gated, oldest = table[1:]
    assert text(newest[3]) == "12.0 s / 60 s" and "late" not in newest[3]["class"]
    assert text(gated[3]) == "75.4 s / 60 s" and "late" in gated[3]["class"]   # over its limit
    assert text(gated[4]) == "90.0 s" and text(gated[5]) == "-"
    assert text(oldest[5]) == "absent / 300 s" and oldest[5]["titles"] == ["target cannot show it"]
    spot = page.split("<h2>spot-interruption</h2>")[1].split("</section>")[0]
    assert "No run of it has a score." in spot and "No milestones recorded" in spot


def test_index_is_self_contained_printable_and_uses_report_html_colours(history):
    root, _, _ = history
    page = (root / INDEX_HTML).read_text()
    assert not re.search(r"<script|<link|<img|@import|url\(", page)
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"] * page.count("<svg ")
    assert "@media print" in page

    def colours(template: str) -> dict[str, str]:
        return dict(re.findall(r"\.v-(\w+) \{ background: (#[0-9a-f]{6}); \}", template))

    assert colours(INDEX_TEMPLATE) == colours(RUN_TEMPLATE) and len(colours(RUN_TEMPLATE)) == 5


def test_a_torn_last_line_is_skipped_and_the_next_line_starts_clean(history):
    root, runs, _ = history
    path = root / HISTORY_JSONL
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"kind": "run", "name": "torn-by-a-crash", "verd')
    assert len(read_history(root)) == len(runs) + 1
    build_index(root)
    assert "torn-by-a-crash" not in (root / INDEX_HTML).read_text()
    record_run(root, scored_run(root, "after-the-crash", 40, 50.0))
    assert [e.name for e in read_history(root)][-1] == "after-the-crash"   # not glued to the torn line
    assert "after-the-crash" in (root / INDEX_HTML).read_text()


def test_secrets_reach_neither_the_history_nor_the_index(tmp_path):
    root = tmp_path / "reports"
    secret = "Bearer abcdefghijklmnop0123456789"
    run = scored_run(root, "ecc-double-bit-error", 0, 10.0).model_copy(update={"target": f"twin {secret}"})
    record_run(root, run)
    for name in (HISTORY_JSONL, INDEX_HTML):
        content = (root / name).read_text()
        assert "abcdefghijklmnop0123456789" not in content and "[REDACTED]" in content


def test_a_history_that_cannot_be_written_never_raises(tmp_path, caplog):
    blocked = tmp_path / "reports"
    blocked.write_text("a file where the reports folder should be")
    run = make_run()
    assert record_run(blocked, run) is None
    assert record_gameday(blocked, GamedayResult.from_runs([run])) is None
    assert "history of run ecc-double-bit-error not written" in caplog.text
    assert run.verdict == "pass" and run.exit_code == 0


def test_an_index_that_cannot_be_written_keeps_the_history_line(tmp_path, caplog):
    root = tmp_path / "reports"
    (root / INDEX_HTML).mkdir(parents=True)                 # a folder where the page should go
    assert record_run(root, scored_run(root, "ecc-double-bit-error", 0, 10.0)) is None
    assert [e.name for e in read_history(root)] == ["ecc-double-bit-error"]
    assert "index of" in caplog.text


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True, timeout=30).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_scenario_commit_and_modified_from_git(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))   # tmp_path itself is in no repository
    repo = tmp_path / "repo"
    (repo / "scenarios").mkdir(parents=True)
    scenario = repo / "scenarios" / "ecc.yaml"
    scenario.write_text("name: ecc\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "a scenario")
    head = git(repo, "rev-parse", "HEAD")
    (repo / "other.txt").write_text("a later commit that does not touch the scenario\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "another file")

    root = tmp_path / "reports"
    detected = (milestone("detect", 9.0),)
    record_run(root, scored_run(root, "ecc", 0, 50.0, scenario_file=scenario, milestones=detected))
    scenario.write_text("name: ecc\ndescription: edited after the commit\n")
    record_run(root, scored_run(root, "ecc", 10, 50.0, scenario_file=scenario, milestones=detected))
    clean, edited = read_history(root)
    assert (clean.scenario_commit, clean.scenario_modified) == (head, False)
    assert (edited.scenario_commit, edited.scenario_modified) == (head, True)
    assert clean.scenario_file == str(scenario)
    assert clean.scenario_sha256 != edited.scenario_sha256 and len(clean.scenario_sha256) == 64
    page = (root / INDEX_HTML).read_text()                 # the milestone rows say which text each run ran
    assert f">@{head[:7]}*</span>" in page and f">@{head[:7]}</span>" in page

    untracked = repo / "scenarios" / "new.yaml"
    untracked.write_text("name: new\n")
    loose = tmp_path / "loose.yaml"                        # in no work tree at all
    loose.write_text("name: loose\n")
    for path in (untracked, loose):
        provenance = scenario_provenance(path)
        assert (provenance.commit, provenance.modified) == (None, None) and provenance.sha256
    assert scenario_provenance(tmp_path / "missing.yaml").sha256 is None


def test_no_git_leaves_the_commit_unknown(tmp_path, monkeypatch):
    scenario = tmp_path / "ecc.yaml"
    scenario.write_text("name: ecc\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries-here"))
    provenance = scenario_provenance(scenario)
    assert provenance.commit is None and provenance.modified is None and provenance.sha256
