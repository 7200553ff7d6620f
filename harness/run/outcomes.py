"""How a run can end before it has gone its course, besides a guardrail's refusal (GuardrailError) and a fault
that could not be injected or did not land (harness.faults.FaultError): each is raised where it is found and
turned into its verdict in one place, `Runner.run` (harness/run/runner.py), after the reverts."""
from __future__ import annotations

from harness.report.model import StopRecord


class Aborted(Exception):
    """A stop condition fired (exit 3; faults reverted): `stop` says which, what was seen and for how long."""

    def __init__(self, why: str, stop: StopRecord | None = None):
        super().__init__(why)
        self.stop = stop


class TargetUnreachable(Exception):
    """The deployment, or the run's own load, could not be read: the run cannot be judged (exit 4)."""
