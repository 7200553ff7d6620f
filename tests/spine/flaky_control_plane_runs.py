"""Same verdicts on a flaky control plane: the twin fails 10% of Kubernetes and AWS API calls and cuts watches.

`g7chaos run` runs as a child attached to a twin in this process (`--twin-endpoints`), so the test reads how
many failures the twin really injected. Each profile gets its own twin (moto is process-wide: one at a time);
`article` runs the ECC scenario, and one twin with both anti-patterns runs each scenario whose prescription one
of them breaks. The
expected verdicts are the ones the matrix asserts on a reliable twin (tests/matrix/test_ecc.py,
test_spot_coldstart.py): `article` passes, an anti-pattern fails through exactly the checks it breaks.

Scenarios are trimmed copies (shorter tail after the checks' limits) to keep the three runs cheap.

The runs take a minute and a half of mostly waiting, and their twin lives in the process that runs them, so each
profile's test runs in a pytest of its own in the background (tests/ahead.py) while the suite goes on:
tests/spine/test_flaky_control_plane.py reads how it ended.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.twin.server import TwinServer

ROOT = Path(__file__).resolve().parents[2]
FLAKY_RATE = 0.1

EXPECTED: dict[str, dict[str, set[str]]] = {
    # profile -> scenario -> checks that fail without a flaky control plane. The two anti-patterns compose into
    # one twin: each breaks its own scenario's prescription, and every other check of that run must still pass.
    "article": {"ecc-double-bit-error": set()},
    "no-dbe-remediation,no-kv-offload": {"ecc-double-bit-error": {"node-drained", "node-replaced",
                                                                  "no-corrupted-responses"},
                                         "spot-interruption": {"session-continuity"}},
}
# past the last limit: node-replaced's 6m after a landing at about 2m06s
TRIMMED_DURATION = {"ecc-double-bit-error": "510s", "spot-interruption": "7m"}



def trimmed(scenario: str, folder: Path) -> Path:
    text = (ROOT / "scenarios" / f"{scenario}.yaml").read_text()
    text, n = re.subn(r"(?m)^duration: .*$", f"duration: {TRIMMED_DURATION[scenario]}", text)
    assert n == 1
    path = folder / f"{scenario}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("profile", list(EXPECTED))
def test_verdicts_hold_when_the_control_plane_fails_a_tenth_of_calls(profile: str, tmp_path: Path) -> None:
    scenarios = EXPECTED[profile]
    files = [trimmed(name, tmp_path) for name in scenarios]
    twin = TwinServer.start_in_thread(profile=profile, out_dir=tmp_path / "twin", flaky_api=FLAKY_RATE)
    try:
        out = subprocess.run([sys.executable, "-m", "harness", "run", *map(str, files),
                              "--twin-endpoints", str(tmp_path / "twin" / "endpoints.json"),
                              "--report-dir", str(tmp_path / "reports")],
                             cwd=ROOT, capture_output=True, text=True, timeout=240)
        injected = twin.call(lambda: twin.twin.flaky.summary())
        kube_failures = twin.call(lambda: twin.twin.flaky.injected("kube:"))
        watch_drops = twin.call(lambda: twin.twin.flaky.injected("kube:", "drop"))
        aws_failures = twin.call(lambda: twin.twin.flaky.injected("aws:"))
    finally:
        twin.stop()
    assert out.returncode in (0, 1), out.stdout[-3000:] + out.stderr[-2000:]
    # the control plane really misbehaved, and the harness met it: watches cut, calls failed
    assert kube_failures > 0 and watch_drops > 0, injected
    if "ecc-double-bit-error" in scenarios:     # dozens of CloudWatch reads: some of them failed
        assert aws_failures > 0, injected
    for scenario, failing in scenarios.items():
        (result_path,) = (tmp_path / "reports").glob(f"*-{scenario}/result.json")
        result = json.loads(result_path.read_text())
        failed = {c["name"]: c.get("reason") for c in result["checks"] if c["status"] == "fail"}
        assert result["verdict"] == ("fail" if failing else "pass"), (scenario, failed, injected)
        assert set(failed) == failing, (scenario, failed, injected)
        journal = (result_path.parent / "journal.jsonl").read_text().splitlines()
        assert any(json.loads(line)["event"] == "watch-error" for line in journal), \
            f"{scenario}: the harness never saw a watch break"
