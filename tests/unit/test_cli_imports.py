"""`g7chaos twin up` imports the twin and nothing of the harness's commands: it starts once per run on the
built-in target, and every command's module together costs about two seconds of CPU (harness/cli.py)."""
from __future__ import annotations

import subprocess
import sys

PROBE = ("import sys; from harness.cli import build_parser, _chosen; build_parser(only=_chosen(sys.argv[1:])); "
         "print(sorted(m for m in ('harness.commands.run', 'harness.twin.up') if m in sys.modules))")


def _imported(*argv: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def test_twin_up_imports_only_the_twin_command():
    assert _imported("twin", "up") == "['harness.twin.up']"


def test_usage_without_a_subcommand_still_knows_every_command():
    assert _imported("--help") == "['harness.commands.run', 'harness.twin.up']"
    out = subprocess.run([sys.executable, "-m", "harness", "twin", "up", "--nodes-per-az", "0"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "--nodes-per-az must be >= 1" in out.stderr
