"""`g7chaos recover` after a SIGKILL of the run that owed a revert and started its own twin."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
ECC = ROOT / "scenarios" / "ecc-double-bit-error.yaml"

pytestmark = pytest.mark.slow


def test_recover_after_sigkill_reverts_and_stops_the_orphaned_twin(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to revert: the journal says what is owed, and the run's twin lives on.
    `g7chaos recover` clears the DBE through that twin, then stops the twin the dead run started."""
    import os
    import signal
    import threading
    import time
    from harness.journal import owed_reverts, read_records

    reports = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(ECC), "--profile", "no-dbe-remediation",
                             "--report-dir", str(reports)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    twin_pid = None
    try:
        deadline, tick = time.time() + 90, threading.Event()
        journal = None
        while time.time() < deadline and proc.poll() is None:
            found = list(reports.glob("*-ecc-double-bit-error/journal.jsonl"))
            if found and any(r.get("event") == "fault-landed" for r in read_records(found[0])):
                journal = found[0]
                break
            tick.wait(0.05)
        assert journal is not None, "the fault never landed"
        twin_pid = next(r for r in read_records(journal) if r["event"] == "run-started")["twin_pid"]
        proc.kill()
        proc.wait(timeout=10)
        assert len(owed_reverts(journal)) == 1
        os.kill(twin_pid, 0)                                  # the twin outlived its run

        out = subprocess.run([sys.executable, "-m", "harness", "recover", "--reports", str(reports)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (out.stdout, out.stderr)
        assert "reverted ecc-double-bit-error" in out.stdout and f"pid {twin_pid}" in out.stdout, out.stdout
        assert owed_reverts(journal) == []
        recovered = [r for r in read_records(journal) if r.get("event") == "reverted"]
        assert recovered and recovered[0]["by"] == "recover"
        from harness.commands.recover import _alive
        wait_for(lambda: not _alive(twin_pid), 20, f"the orphaned twin {twin_pid} to stop", interval=0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        if twin_pid:
            try:
                os.kill(twin_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
