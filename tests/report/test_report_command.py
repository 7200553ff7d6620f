"""`g7chaos report [REPORTS_DIR]` rebuilds index.html from history.jsonl; `run` and `gameday` end by naming it."""
from __future__ import annotations

import io

from harness.cli import main
from harness.report.console import ConsoleView
from harness.report.history import HISTORY_JSONL, INDEX_HTML, record_run

from report_factory import make_run


def test_report_rebuilds_the_index_and_prints_its_path(tmp_path, capsys):
    root = tmp_path / "reports"
    record_run(root, make_run())
    (root / INDEX_HTML).unlink()
    assert main(["report", str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(root / INDEX_HTML)
    assert "ecc-double-bit-error" in (root / INDEX_HTML).read_text()


def test_report_on_a_missing_folder_or_one_without_history_is_a_usage_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: no such reports folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path}: no {HISTORY_JSONL} here" in capsys.readouterr().err
    assert not (tmp_path / INDEX_HTML).exists()


def test_the_index_path_is_the_last_line(tmp_path):
    out = io.StringIO()
    view = ConsoleView(out, live=False)
    view.final(make_run())
    view.index(tmp_path / "reports" / INDEX_HTML)
    assert out.getvalue().splitlines()[-1] == f"index: {tmp_path / 'reports' / INDEX_HTML}"
