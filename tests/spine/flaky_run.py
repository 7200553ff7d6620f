"""One flaky-control-plane run, as a background job (tests/ahead.py): a twin of PROFILE in this process failing
a tenth of Kubernetes and AWS API calls and cutting watches, `g7chaos run` on SCENARIO files as a child attached
to it, then what the twin really injected, written to REPORT_DIR/flaky.json for the reading test
(tests/spine/test_flaky_control_plane.py).

    python tests/spine/flaky_run.py PROFILE RATE REPORT_DIR SCENARIO.yaml...
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.twin.server import TwinServer

ROOT = Path(__file__).resolve().parents[2]


def main(profile: str, rate: float, report_dir: Path, scenarios: list[str]) -> int:
    twin = TwinServer.start_in_thread(profile=profile, out_dir=report_dir / "twin", flaky_api=rate)
    try:
        out = subprocess.run([sys.executable, "-m", "harness", "run", *scenarios,
                              "--twin-endpoints", str(report_dir / "twin" / "endpoints.json"),
                              "--report-dir", str(report_dir / "reports")],
                             cwd=ROOT, capture_output=True, text=True, timeout=240)
        injected = {"summary": twin.call(lambda: twin.twin.flaky.summary()),
                    "kube_failures": twin.call(lambda: twin.twin.flaky.injected("kube:")),
                    "watch_drops": twin.call(lambda: twin.twin.flaky.injected("kube:", "drop")),
                    "aws_failures": twin.call(lambda: twin.twin.flaky.injected("aws:"))}
    finally:
        twin.stop()
    (report_dir / "flaky.json").write_text(json.dumps(
        {"returncode": out.returncode, "stdout": out.stdout[-3000:], "stderr": out.stderr[-2000:], **injected},
        default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]))
