"""Each benchmark once at a tiny size: proves `make bench` still works. No timing is asserted here."""
import json
import subprocess
import sys
from pathlib import Path


def test_bench_runs_tiny_and_writes_json(tmp_path):
    out = tmp_path / "latest.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--out", str(out)], capture_output=True, text=True,
                          timeout=180, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    level = data["benchmarks"]["gateway-capacity"]["levels"][0]
    assert level["completed"] == level["streams"] and level["tokens"] > 0
    assert "tokens/s" in proc.stdout
