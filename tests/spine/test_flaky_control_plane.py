"""Same verdicts on a flaky control plane: the twin fails 10% of Kubernetes and AWS API calls and cuts watches.

Each profile's run is a background job (tests/ahead.py, tests/spine/flaky_run.py): a twin of the profile in the
job's own process (moto is process-wide: one twin per process), `g7chaos run` as a child attached to it
(`--twin-endpoints`), and how many failures the twin really injected, written beside the reports. `article` runs
the ECC scenario, and one twin with both anti-patterns runs each scenario whose prescription one of them breaks.
The expected verdicts are the ones the matrix asserts on a reliable twin (tests/matrix/test_ecc.py,
test_spot_coldstart.py): `article` passes, an anti-pattern fails through exactly the checks it breaks.

Scenarios are trimmed copies (shorter tail after the checks' limits) to keep the three runs cheap.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from ahead import Job, Ran

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(__file__).with_name("flaky_run.py")
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

pytestmark = pytest.mark.slow


def trimmed(scenario: str, folder: Path) -> Path:
    text = (ROOT / "scenarios" / f"{scenario}.yaml").read_text()
    text, n = re.subn(r"(?m)^duration: .*$", f"duration: {TRIMMED_DURATION[scenario]}", text)
    assert n == 1
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{scenario}.yaml"
    path.write_text(text)
    return path


def ahead_job(test: str, params: dict) -> Job:
    profile = params["profile"]

    def argv(report: Path) -> list[str]:
        files = [str(trimmed(name, report / "scenarios")) for name in EXPECTED[profile]]
        return [sys.executable, str(RUN), profile, str(FLAKY_RATE), str(report), *files]
    return Job(f"flaky-control-plane-{profile}", argv, timeout_s=300, cwd=ROOT)


@pytest.mark.parametrize("profile", list(EXPECTED))
def test_verdicts_hold_when_the_control_plane_fails_a_tenth_of_calls(profile: str, ahead_run: Ran) -> None:
    scenarios = EXPECTED[profile]
    job = ahead_run.out
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-2000:]
    out = json.loads((ahead_run.report_dir / "flaky.json").read_text())
    injected, kube_failures, watch_drops, aws_failures = (out[k] for k in ("summary", "kube_failures", "watch_drops",
                                                                          "aws_failures"))
    assert out["returncode"] in (0, 1), out["stdout"] + out["stderr"]
    # the control plane really misbehaved, and the harness met it: watches cut, calls failed
    assert kube_failures > 0 and watch_drops > 0, injected
    if "ecc-double-bit-error" in scenarios:     # dozens of CloudWatch reads: some of them failed
        assert aws_failures > 0, injected
    for scenario, failing in scenarios.items():
        (result_path,) = (ahead_run.report_dir / "reports").glob(f"*-{scenario}/result.json")
        result = json.loads(result_path.read_text())
        failed = {c["name"]: c.get("reason") for c in result["checks"] if c["status"] == "fail"}
        assert result["verdict"] == ("fail" if failing else "pass"), (scenario, failed, injected)
        assert set(failed) == failing, (scenario, failed, injected)
        journal = (result_path.parent / "journal.jsonl").read_text().splitlines()
        assert any(json.loads(line)["event"] == "watch-error" for line in journal), \
            f"{scenario}: the harness never saw a watch break"
