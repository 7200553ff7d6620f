"""Background commands (tests/ahead.py) that more than one test module reads: one run serves them all.

A job is run once per name, so each is built here, once, rather than spelled again in each module.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ahead import Job

ROOT = Path(__file__).resolve().parents[1]
ECC = ROOT / "scenarios" / "ecc-double-bit-error.yaml"


def article_column() -> Job:
    """`g7chaos matrix scenarios --profiles article`: every shipped scenario as one game day on an article twin,
    which is also what `make demo` runs."""
    return Job("article-column", lambda report: [sys.executable, "-m", "harness", "matrix", str(ROOT / "scenarios"),
                                                 "--profiles", "article", "--report-dir", str(report)],
               timeout_s=600, cwd=ROOT, rerun_when_degraded=True)


def pytest_chaos_ecc(profile: str | None = None) -> Job:
    """`pytest -m chaos` on the ECC scenario (on a twin of `profile`), its run folder written into the job's."""
    extra = ["--chaos-profile", profile] if profile else []
    return Job("-".join(["pytest-chaos", *([profile] if profile else [])]),
               lambda report: [sys.executable, "-m", "pytest", "-m", "chaos", "-p", "no:cacheprovider", "-q",
                               "--chaos-report-dir", str(report), str(ECC), *extra],
               timeout_s=240, cwd=ROOT, rerun_when_degraded=True)
