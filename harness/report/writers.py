"""Writing a run's (or a game day's) report folder: result.json, junit.xml, report.html.

Every file goes through the same redaction twice: the data is redacted field by field before serialisation
(so a secret is caught before JSON/XML/HTML escaping changes its spelling), and the final text is redacted
again before it reaches disk (so a secret hidden in free text a pattern only recognises in context is caught
too). Files are written atomically (temp file + rename): a CI job that reads the folder after a crash sees
either the old file or the whole new one, never half of one.

A failing plot never loses the report: plots are decoration, the checks table is the verdict.
"""
from __future__ import annotations

import json
import logging
import math
import re
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from pydantic import BaseModel

from harness.redact import Redactor, default_redactor
from harness.report import plots
from harness.report.junit import junit_document
from harness.report.model import GamedayResult, RunResult
from harness.report.templates import GAMEDAY_TEMPLATE, RUN_TEMPLATE, environment
from harness.report.timeline import RunTimeline

log = logging.getLogger(__name__)

RESULT_JSON = "result.json"
JUNIT_XML = "junit.xml"
REPORT_HTML = "report.html"
MAX_MARK_ROWS = 2000           # the cluster marks table; the lane draws them all


def run_dir(base: str | Path, scenario: str, started_at: datetime | None = None) -> Path:
    """`<base>/<UTC time>-<scenario>/` (docs/CONTRACTS.md section 4): sortable by time, safe as a path component."""
    when = (started_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", scenario).strip(".-")[:80] or "scenario"
    return Path(base) / f"{when.strftime('%Y%m%dT%H%M%SZ')}-{safe}"


class RunArtifacts(BaseModel):
    """Paths of the files a writer produced."""

    result_json: Path
    junit_xml: Path
    report_html: Path | None = None


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite(value: Any) -> Any:
    """NaN/Infinity are not JSON (jq and most CI parsers reject them): a figure that could not be computed is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _json_text(data: Any, redactor: Redactor) -> str:
    text = redactor.text(json.dumps(_finite(redactor.data(data)), indent=2, sort_keys=False, default=str,
                                    allow_nan=False))
    json.loads(text)   # the final pass must never produce invalid JSON; fail loudly here rather than in CI
    return text + "\n"


def _slo_limits(result: RunResult) -> tuple[float | None, float | None]:
    """SLO lines for the latency plot, if the slo check reported its limits (evidence `limits`)."""
    for check in result.checks:
        if check.name == "slo":
            limits = check.evidence.get("limits") or {}
            if isinstance(limits, dict):
                ttft, tbt = limits.get("ttft_p99_ms"), limits.get("tbt_p99_ms")
                return (float(ttft) if isinstance(ttft, (int, float)) else None,
                        float(tbt) if isinstance(tbt, (int, float)) else None)
    return None, None


def render_html(result: RunResult, records: str | Path | Iterable[str | Path] | None = None,
                redactor: Redactor | None = None, timeline: RunTimeline | None = None) -> str:
    """report.html text for one run: verdict and score, milestones, the run's timeline (client, traffic and
    cluster lanes), checks, faults, per-window metrics and the cluster's marks."""
    redactor = redactor or default_redactor()
    safe = RunResult.model_validate(redactor.data(result.model_dump(mode="json")))
    figures: list[tuple[str, str]] = []
    slo_ttft, slo_tbt = safe.slo_ttft_ms, safe.slo_tbt_ms
    if slo_ttft is None and slo_tbt is None:      # a result.json written before the run recorded its lines
        slo_ttft, slo_tbt = _slo_limits(safe)
    drawable = timeline is not None and (not timeline.load.empty or bool(timeline.marks))
    for title, make in (("Timeline", lambda: plots.timeline(timeline) if drawable else None),
                        ("TTFT and TBT per window",
                         lambda: plots.latency_per_window(safe.metrics.windows, slo_ttft, slo_tbt))):
        try:
            png = make()
        except Exception as exc:   # noqa: BLE001 - a broken plot must not cost the report
            log.warning("plot %r failed: %s", title, exc)
            continue
        if png:
            figures.append((title, png))
    marks = [] if timeline is None else [
        {"t": timeline.deployment_s(m.at), "wall": m.at - timeline.origin, "kind": m.kind, "label": m.label,
         "detail": m.detail} for m in timeline.marks if m.kind != "pod-placed"][:MAX_MARK_ROWS]
    figures_of_ttft = timeline.ttft_figures() if timeline is not None else None
    html = environment().from_string(RUN_TEMPLATE).render(r=safe, plots=figures, marks=marks,
                                                          ttft=figures_of_ttft, scale=safe.time_scale or 1.0)
    return redactor.text(html)


def with_timeline(result: RunResult, directory: str | Path,
                  records: str | Path | Iterable[str | Path] | None = None) -> tuple[RunResult, RunTimeline | None]:
    """The run's timeline from its folder, and the result with the milestones and score it yields. A timeline
    that cannot be built costs the report its timeline, never the verdict: the result comes back as it was."""
    try:
        timeline = RunTimeline.build(result, directory, records if isinstance(records, (str, Path)) else None)
    except Exception as exc:   # noqa: BLE001 - the verdict and checks are written whatever the timeline does
        log.warning("the run's timeline could not be built: %s", exc)
        return result, None
    return result.model_copy(update={"milestones": timeline.milestones, "score": timeline.score}), timeline


def write_run(result: RunResult, directory: str | Path, records: str | Path | Iterable[str | Path] | None = None,
              *, redactor: Redactor | None = None, html: bool = True,
              timeline: RunTimeline | None = None) -> RunArtifacts:
    """Write result.json, junit.xml and report.html for one run into `directory` (created if missing).

    `records`: the load's per-request JSONL file (default: the folder's load/records.jsonl). `timeline`: the
    one `with_timeline` built for this result; without it, it is built here and its milestones and score added.
    """
    directory = Path(directory)
    redactor = redactor or default_redactor()
    if result.report_dir is None:
        result = result.model_copy(update={"report_dir": str(directory)})
    if timeline is None:
        result, timeline = with_timeline(result, directory, records)
    page = (lambda: render_html(result, records, redactor, timeline)) if html else None
    return _write_folder(directory, "run", result, [result], result.scenario, redactor, page)


def rebuild_run(directory: str | Path, *, redactor: Redactor | None = None) -> RunArtifacts:
    """Write a run folder's result.json, junit.xml and report.html again from its own files (result.json, the
    load's records, cluster.jsonl): milestones and score are recomputed, the verdict is kept as judged."""
    directory = Path(directory)
    result = read_result(directory / RESULT_JSON)
    if not isinstance(result, RunResult):
        raise ValueError(f"{directory}: a game day's folder, not a run's")
    return write_run(result, directory, records=directory / "load" / "records.jsonl", redactor=redactor)


def _write_folder(directory: Path, kind: str, result: RunResult | GamedayResult, runs: list[RunResult], name: str,
                  redactor: Redactor, page: Callable[[], str] | None) -> RunArtifacts:
    """The files of a run and of a game day alike: result.json (tagged with `kind`, which `read_result` reads
    back), junit.xml with a testsuite per run, and report.html unless `page` is None."""
    artifacts = RunArtifacts(result_json=directory / RESULT_JSON, junit_xml=directory / JUNIT_XML)
    _atomic_write(artifacts.result_json, _json_text({"kind": kind, **result.model_dump(mode="json")}, redactor))
    _atomic_write(artifacts.junit_xml, redactor.text(junit_document(runs, redactor, name=name)))
    if page is not None:
        artifacts.report_html = directory / REPORT_HTML
        _atomic_write(artifacts.report_html, page())
    return artifacts


def _relative_link(target_dir: str | None, from_dir: Path) -> str | None:
    if not target_dir:
        return None
    report = Path(target_dir) / REPORT_HTML
    if not report.exists():
        return None
    try:
        return os.path.relpath(report, from_dir)
    except ValueError:   # another drive (Windows)
        return report.as_uri()


def render_gameday_html(gameday: GamedayResult, directory: Path, redactor: Redactor) -> str:
    safe = GamedayResult.model_validate(redactor.data(gameday.model_dump(mode="json")))
    runs = [(run, _relative_link(run.report_dir, directory)) for run in safe.runs]
    return redactor.text(environment().from_string(GAMEDAY_TEMPLATE).render(g=safe, runs=runs))


def write_gameday(gameday: GamedayResult, directory: str | Path, *, redactor: Redactor | None = None,
                  html: bool = True) -> RunArtifacts:
    """Write the combined result.json, junit.xml (one testsuite per scenario) and report.html (a summary table
    linking each run's own report) of a game day."""
    directory = Path(directory)
    redactor = redactor or default_redactor()
    if gameday.report_dir is None:
        gameday = gameday.model_copy(update={"report_dir": str(directory)})
    page = (lambda: render_gameday_html(gameday, directory, redactor)) if html else None
    return _write_folder(directory, "gameday", gameday, gameday.runs, gameday.name, redactor, page)


def read_result(path: str | Path) -> RunResult | GamedayResult:
    """Read a result.json back (e.g. for the verdict matrix, or `g7chaos recover` summaries)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    kind = data.pop("kind", "run")
    return GamedayResult.model_validate(data) if kind == "gameday" else RunResult.model_validate(data)
