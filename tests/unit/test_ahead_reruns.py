"""A background run whose own measurement was degraded is run once more before its test is failed, and only then.

The session's real conftest and tests/ahead.py drive a pytest of their own over three jobs that write the result.json
a scenario run writes: one that asks for reruns and is degraded on its first run only, one that asks but is never
degraded, and one that is degraded but does not ask.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

MODULE = textwrap.dedent('''
    import json, sys
    from ahead import Job

    WRITE = """
    import json, pathlib, sys
    report, seen, degraded_once = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3] == "1"
    first = not seen.exists()
    seen.write_text("ran")
    degraded = degraded_once and first
    report.joinpath("run").mkdir(parents=True)
    report.joinpath("run", "result.json").write_text(json.dumps({
        "scenario": "s", "verdict": "inconclusive" if degraded else "pass", "measurement_degraded": degraded,
        "measurement_degraded_reason": "steady: load generator event-loop lag p99 61.5 ms > 5 ms" if degraded
        else None}))
    """

    JOBS = {"test_degraded_once": (True, "1"), "test_never_degraded": (True, "0"), "test_not_asked": (False, "1")}

    def ahead_job(test, params):
        rerun, degraded_once = JOBS[test]
        seen = f"{test}.seen"
        return Job(test.replace("_", "-"), lambda report: [sys.executable, "-c", WRITE, str(report), seen,
                                                           degraded_once], timeout_s=30, rerun_when_degraded=rerun)

    def _verdict(ran):
        (path,) = ran.report_dir.rglob("result.json")
        return json.loads(path.read_text())["verdict"]

    def test_degraded_once(ahead_run):
        assert _verdict(ahead_run) == "pass"

    def test_never_degraded(ahead_run):
        assert _verdict(ahead_run) == "inconclusive"      # fails, on a run that was not degraded

    def test_not_asked(ahead_run):
        assert _verdict(ahead_run) == "pass"
''')


def test_only_a_failure_on_a_degraded_run_of_a_job_that_asks_is_run_again(tmp_path: Path) -> None:
    tree = tmp_path / "tests"
    tree.mkdir()
    for name in ("ahead.py", "conftest.py"):
        shutil.copy(TESTS / name, tree / name)
    (tree / "test_jobs.py").write_text(MODULE)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", str(tree)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert "2 failed, 1 passed" in text, text[-3000:]
    assert "FAILED tests/test_jobs.py::test_never_degraded" in text
    assert "FAILED tests/test_jobs.py::test_not_asked" in text
    reruns = [line for line in text.splitlines() if line.startswith("run again:")]
    assert reruns == ["run again: test-degraded-once: its first run's measurement was degraded "
                      "(s: steady: load generator event-loop lag p99 61.5 ms > 5 ms)"], text[-3000:]
    assert (tmp_path / "test_degraded_once.seen").exists() and (tmp_path / "test_not_asked.seen").exists()
