"""Matrix cells of the spot-interruption and cold-start scenarios on the profiles that break their prescriptions.

no-kv-offload loses the KV caches of the interrupted node's conversations: spot-interruption must fail on
session-continuity. cold-start-from-s3 loads replacement weights from S3 for minutes: cold-start must fail on
recovery-time and/or capacity-restored. plugin-before-driver brings the replacement node up with a device plugin
that registered before the driver: cold-start must fail through what that breaks, the node's GPUs (capacity,
recovery), never through an unrelated check. Each fails with numbers, and through no other check.
"""
from __future__ import annotations

import pytest

from cellkit import Ran, assert_reasons_carry_numbers, failing_checks, scenario_run

CELLS = {
    ("spot-interruption", "no-kv-offload"): ({"session-continuity"}, {"session-continuity"}),
    ("cold-start", "cold-start-from-s3"): ({"recovery-time", "capacity-restored"}, set()),
    ("cold-start", "plugin-before-driver"): ({"recovery-time", "capacity-restored"}, set()),
}
"""(scenario, profile) -> (checks allowed to fail, checks that must be among the failures: at least one
of the allowed ones when empty)."""


def ahead_job(test: str, params: dict):
    return scenario_run(params["scenario"], params["profile"])


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "profile"), list(CELLS))
def test_fails_only_the_checks_its_profile_breaks(scenario: str, profile: str, ahead_run: Ran) -> None:
    failed = failing_checks(ahead_run, scenario, profile)
    allowed, required = CELLS[(scenario, profile)]
    reasons = {n: c.get("reason") for n, c in failed.items()}
    assert failed and set(failed) <= allowed, reasons
    assert required <= set(failed), reasons
    assert_reasons_carry_numbers(failed)
    if scenario == "spot-interruption":
        assert "re-prefill" in failed["session-continuity"]["reason"]
