"""`g7chaos matrix` starts its columns longest first, by what each took the last time it ran into the folder."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from harness.commands.matrix import longest_first
from harness.report.model import GamedayResult

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def _ran(report_dir: Path, profile: str, seconds: float, at: datetime = T0) -> None:
    folder = report_dir / profile / f"{at.strftime('%Y%m%dT%H%M%SZ')}-gameday"
    folder.mkdir(parents=True)
    gameday = GamedayResult.from_runs([], name=f"matrix-{profile}", target="twin", profile=profile,
                                      started_at=at, ended_at=at + timedelta(seconds=seconds))
    (folder / "result.json").write_text(gameday.model_dump_json())


def test_longest_last_time_first_and_new_columns_before_all(tmp_path: Path) -> None:
    _ran(tmp_path, "article", 160)
    _ran(tmp_path, "plugin-before-driver", 295)
    _ran(tmp_path, "cold-start-from-s3", 206)
    _ran(tmp_path, "no-idempotency", 158)
    _ran(tmp_path, "no-idempotency", 400, at=T0 - timedelta(days=1))     # an older run: the newest counts
    (tmp_path / "no-kv-offload").mkdir()
    (tmp_path / "no-kv-offload" / "20261206T120000Z-gameday").mkdir()     # a column cut off before its result
    order = longest_first(["article", "no-idempotency", "no-kv-offload", "plugin-before-driver",
                           "cold-start-from-s3", "embedded-dcgm-exporter"], tmp_path)
    assert order == ["no-kv-offload", "embedded-dcgm-exporter", "plugin-before-driver", "cold-start-from-s3",
                     "article", "no-idempotency"]


def test_a_folder_never_written_keeps_the_profiles_order(tmp_path: Path) -> None:
    assert longest_first(["article", "no-dbe-alarm"], tmp_path / "none") == ["article", "no-dbe-alarm"]
