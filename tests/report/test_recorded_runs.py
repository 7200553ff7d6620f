"""Reports built from recorded runs: each milestone is the record it names, goodput counts misses, open-loop TTFT
runs from the scheduled arrival, a corrupted answer gates the score.

The folders under tests/report/recorded/ are real runs on the twin (recorded/README.md says how each was made),
kept to the files a report reads: result.json (milestones and score removed), journal.jsonl, cluster.jsonl,
load/records.jsonl and load/dropped.jsonl. Every test rebuilds the report from a copy, as `g7chaos report RUN_DIR`
does, and checks it against the raw files with code of its own.
"""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from harness.report.history import build_index, record_run
from harness.report.model import RunResult
from harness.report.timeline import RunTimeline
from harness.report.writers import read_result, rebuild_run

RECORDED = Path(__file__).parent / "recorded"


def _copy(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(RECORDED / name, folder)
    return folder


def _rebuilt(name: str, tmp_path: Path) -> tuple[Path, dict]:
    folder = _copy(name, tmp_path)
    rebuild_run(folder)
    return folder, json.loads((folder / "result.json").read_text())


def _article_fault(tmp_path: Path):
    """A copy of the ECC run to alter: its folder, result, clean timeline, the fault's span, and its records."""
    folder = _copy("ecc-article", tmp_path)
    result = read_result(folder / "result.json")
    fault = result.faults[0]
    path = folder / "load" / "records.jsonl"
    return (folder, result, RunTimeline.build(result, folder),
            (fault.injection_started_at.timestamp(), fault.reverted_at.timestamp()), path, _lines(path))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _milestones(result: dict) -> dict[str, dict]:
    return {m["name"]: m for m in result["milestones"]}


def test_each_milestone_is_the_mark_it_names_and_what_the_live_view_said(tmp_path):
    folder, result = _rebuilt("ecc-article", tmp_path)
    fault = result["faults"][0]
    start, node, scale = _t(fault["injection_started_at"]), fault["nodes"][0], result["time_scale"]
    marks = _lines(folder / "cluster.jsonl")
    got = _milestones(result)

    detect = min(m["at"] for m in marks if m["at"] >= start and (
        m["kind"] in ("node-condition", "node-not-ready", "event") and m.get("node") == node
        or m["kind"] == "alarm" and m["label"].endswith("ALARM")))
    isolate = min(m["at"] for m in marks if m["at"] >= start and m["kind"] in ("cordon", "pod-not-ready")
                  and m.get("node") == node)
    on_node = {m["subject"] for m in marks if m["kind"] == "pod-placed" and m.get("node") == node and m["at"] <= start}
    drain = max(min(m["at"] for m in marks if m["subject"] == pod and m["kind"] in ("pod-evicted", "pod-deleted")
                    and m["at"] >= start) for pod in on_node)
    before = {m["subject"] for m in marks if m["kind"].startswith("node") and m["at"] < start}
    before |= {m["node"] for m in marks if m["kind"] == "pod-placed" and m["at"] < start}
    replace = min(m["at"] for m in marks if m["kind"] == "node-ready" and m["at"] >= start
                  and m["subject"] not in before)
    assert len(on_node) == 8
    for name, at in (("detect", detect), ("isolate", isolate), ("drain", drain), ("replace", replace)):
        assert _t(got[name]["at"]) == pytest.approx(at, abs=1e-5), name
        assert got[name]["after_s"] == pytest.approx((at - start) * scale, abs=2e-3), name
        assert got[name]["wall_after_s"] == pytest.approx(at - start, abs=2e-3), name
    assert got["drain"]["limit_s"] == 180.0 and got["replace"]["limit_s"] == 360.0     # the scenario's `within`
    assert got["detect"]["after_s"] < got["isolate"]["after_s"] < got["drain"]["after_s"] < got["replace"]["after_s"]

    # the live view found the same moments while the run went on (the journal's milestone records)
    live = {j["milestone"]: j for j in _lines(folder / "journal.jsonl") if j.get("event") == "milestone"}
    for name in ("detect", "isolate", "drain", "replace"):
        assert live[name]["after_s"] == pytest.approx(got[name]["after_s"], abs=0.01), name

    # nothing went wrong for a client: no impact, so nothing to restore
    records = _lines(folder / "load" / "records.jsonl")
    assert not any(r["error"] for r in records if r["t_end"] >= start)
    assert got["impact"]["at"] is None and got["slo-restored"]["absent"].startswith("service never suffered")


def test_a_failed_request_is_the_impact_and_lowers_goodput(tmp_path):
    folder, result, clean, (start, end), path, records = _article_fault(tmp_path)
    victim = next(r for r in records if start < r["t_start"] < end and not r["error"] and r["canary"] is None
                  and r["t_end"] < end)
    victim.update(error="5xx", status=500, detail="HTTP 500")
    path.write_text("".join(json.dumps(r) + "\n" for r in records))

    broken = RunTimeline.build(result, folder)
    during = sum(1 for r in records if start <= r["t_start"] < end)
    assert broken.score.goodput_fault == pytest.approx(clean.score.goodput_fault - 1 / during)
    assert sum(broken.series.goodput) == pytest.approx(sum(clean.series.goodput) - 1 / clean.series.bin_s)
    impact = next(m for m in broken.milestones if m.name == "impact")
    assert impact.at.timestamp() == pytest.approx(victim["t_end"], abs=1e-6)
    assert victim["key"] in impact.source and "failed" in impact.source
    assert broken.score.value < clean.score.value


def test_open_loop_ttft_runs_from_the_scheduled_arrival_and_drops_are_misses(tmp_path):
    folder = _copy("poisson-queue", tmp_path)
    result = read_result(folder / "result.json")
    tl = RunTimeline.build(result, folder)
    figures = tl.ttft_figures()
    assert figures["arrival_p50_ms"] > figures["send_p50_ms"] and figures["arrival_p99_ms"] > figures["send_p99_ms"]

    records = _lines(folder / "load" / "records.jsonl")
    dropped = _lines(folder / "load" / "dropped.jsonl")
    assert figures["dropped_arrivals"] == len(dropped) > 0
    # the scheduled-arrival TTFT of a request that waited is its wait plus its send-based TTFT
    first = {}
    for r in records:
        first.setdefault(r["key"], r)
    waited = max((r for r in first.values() if r["ttft_ms"] is not None), key=lambda r: r["t_start"] - r["t_arrival"])
    row = tl.load.r_keys.index(waited["key"])
    assert tl.load.r_sched_ttft_ms[row] == pytest.approx(
        (waited["t_start"] - waited["t_arrival"]) * 1000 + waited["ttft_ms"], abs=0.01)

    # steady-state goodput: every arrival due in the window counts, the dropped ones as misses
    steady = next(w for w in result.metrics.windows if w.window == "steady")
    lo, hi = steady.started_at.timestamp(), steady.ended_at.timestamp()
    answers: dict[str, dict] = {}
    for r in records:
        if not r["error"]:
            answers[r["key"]] = r

    def good(key: str) -> bool:
        a = answers.get(key)
        if a is None:
            return False
        ttft = (a["t_start"] - first[key]["t_arrival"]) * 1000 + a["ttft_ms"]
        tpot = ((a["t_end"] - a["t_start"]) * 1000 - a["ttft_ms"]) / (a["tokens"] - 1) if a["tokens"] > 1 else 0
        return ttft <= result.slo_ttft_ms and tpot <= result.slo_tbt_ms

    due = [k for k, r in first.items() if lo <= min(r["t_start"], r["t_arrival"]) < hi]
    missed = sum(1 for d in dropped if lo <= d["t_arrival"] < hi)
    assert missed > 0
    assert tl.score.goodput_steady == pytest.approx(sum(map(good, due)) / (len(due) + missed))
    impact = next(m for m in tl.milestones if m.name == "impact")
    assert impact.at is not None and impact.source


def test_a_corrupted_answer_gates_the_score(tmp_path):
    folder, result = _rebuilt("ecc-no-dbe-remediation", tmp_path)
    assert result["verdict"] == "fail"
    assert result["score"]["value"] == 0.0 and result["score"]["gated_by"] == ["no-corrupted-responses"]
    impact = _milestones(result)["impact"]
    assert "corrupted" in impact["source"]

    # the gate, not the figures, is what zeroed it: the same run without the failed check scores above 0
    run = read_result(folder / "result.json")
    cleared = run.model_copy(update={"checks": [c for c in run.checks if c.name != "no-corrupted-responses"]})
    assert RunTimeline.build(cleared, folder).score.value > 0


def test_the_same_folder_gives_the_same_milestones_and_score(tmp_path):
    first_folder, first = _rebuilt("poisson-queue", tmp_path / "one")
    _, again = _rebuilt("poisson-queue", tmp_path / "two")
    assert first["milestones"] == again["milestones"] and first["score"] == again["score"]


def test_the_page_and_the_junit_carry_the_timeline_milestones_and_score(tmp_path):
    folder, result = _rebuilt("ecc-article", tmp_path)
    html = (folder / "report.html").read_text()
    assert len(html.encode()) < 5 * 1024 * 1024
    assert 'id="timeline"' in html and 'id="milestones"' in html and 'id="marks"' in html
    for m in result["milestones"]:
        if m["after_s"] is not None:
            assert f"{m['after_s']:.2f} s" in html and m["source"] in html
    shown = [m for m in _lines(folder / "cluster.jsonl") if m["kind"] != "pod-placed"]
    assert html.count("<tr><td>", html.index('id="marks"')) == len(shown)
    properties = {p.get("name"): p.get("value") for p in ET.parse(folder / "junit.xml").iter("property")}
    assert properties["score"] == str(result["score"]["value"])
    drain = _milestones(result)["drain"]
    assert properties["milestone.0.ecc-double-bit-error.drain"].startswith(f"{drain['after_s']:.3f}")
    assert properties["milestone.0.ecc-double-bit-error.impact"].startswith("absent: ")
    assert isinstance(read_result(folder / "result.json"), RunResult)


def test_corrupted_answers_are_misses_and_service_is_not_restored_while_they_last(tmp_path):
    folder, result, clean, (start, end), path, records = _article_fault(tmp_path)
    # the canaries answered in the first half of the fault come back different from their golden answers
    bad = [r for r in records if r["canary"] is not None and not r["error"] and start <= r["t_end"] < (start + end) / 2]
    for r in bad:
        r["digest"] = "0000000000000000"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))

    tl = RunTimeline.build(result, folder)
    during = sum(1 for r in records if start <= r["t_start"] < end)
    in_span = sum(1 for r in bad if start <= r["t_start"] < end)
    assert len(bad) >= 3
    assert tl.score.goodput_fault == pytest.approx(clean.score.goodput_fault - in_span / during)
    got = {m.name: m for m in tl.milestones}
    assert got["impact"].at.timestamp() == pytest.approx(min(r["t_end"] for r in bad), abs=1e-6)
    assert "corrupted" in got["impact"].source
    restored = got["slo-restored"].at
    assert restored is not None and restored.timestamp() > max(r["t_start"] for r in bad)


def test_the_traffic_lane_shows_the_drained_node_answering_nothing(tmp_path):
    folder = _copy("ecc-article", tmp_path)
    tl = RunTimeline.build(read_result(folder / "result.json"), folder)
    node = tl.result.faults[0].nodes[0]
    drain = next(m for m in tl.milestones if m.name == "drain").at.timestamp()
    share = tl.series.node_share[node]
    before = share[: int((tl.result.faults[0].injection_started_at.timestamp() - tl.origin) // tl.series.bin_s)]
    after = share[int((drain - tl.origin) // tl.series.bin_s) + 1:]
    assert set(tl.series.zone_share) == {"us-east-2a", "us-east-2b"}
    assert (before[~np.isnan(before)] > 0).any()          # it served before the fault
    assert (after[~np.isnan(after)] == 0).all() and (~np.isnan(after)).any()   # and nothing once drained


def test_the_index_lists_the_recorded_runs_with_their_scores_and_survives_a_deleted_folder(tmp_path):
    root = tmp_path / "reports"
    scores = {}
    for name in ("ecc-article", "ecc-no-dbe-remediation", "poisson-queue"):
        folder = _copy(name, root)
        rebuild_run(folder)
        result = read_result(folder / "result.json")
        scores[name] = f"{result.score.value:.1f}"
        assert record_run(root, result) == root / "index.html"
    history = _lines(root / "history.jsonl")
    assert [h["report"] for h in history] == list(scores)
    assert [f"{h['score']:.1f}" for h in history] == list(scores.values())
    page = (root / "index.html").read_text()
    for name, score in scores.items():
        assert f'href="{name}/report.html"' in page and score in page
    shutil.rmtree(root / "ecc-article")
    build_index(root)
    page = (root / "index.html").read_text()
    assert 'href="ecc-article/report.html"' not in page and page.count("report folder deleted") == 1
    assert scores["ecc-article"] in page        # the history still holds its score
