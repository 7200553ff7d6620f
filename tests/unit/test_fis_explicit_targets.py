"""FIS targets the harness builds always name their resources and how many: ALL of explicit ARNs becomes
COUNT(len), a chosen COUNT/PERCENT is kept, and a target that would let FIS choose by tags alone is refused."""
from __future__ import annotations

import pytest

from harness.faults import FaultError
from harness.faults.node_reboot import explicit_targets

ARNS = [f"arn:aws:ec2:us-east-2:123456789012:instance/i-{n:017x}" for n in range(3)]


@pytest.mark.parametrize("mode, expected", [(None, "COUNT(3)"), ("ALL", "COUNT(3)"), ("all", "COUNT(3)"),
                                            ("COUNT(1)", "COUNT(1)"), ("PERCENT(50)", "PERCENT(50)")])
def test_selection_is_counted(mode: str | None, expected: str) -> None:
    spec = {"resourceType": "aws:ec2:instance", "resourceArns": ARNS, **({"selectionMode": mode} if mode else {})}
    out = explicit_targets({"nodes": spec})
    assert out["nodes"]["selectionMode"] == expected and out["nodes"]["resourceArns"] == ARNS


@pytest.mark.parametrize("spec", [
    {"resourceType": "aws:ec2:instance", "resourceTags": {"role": "gpu"}, "selectionMode": "ALL"},
    {"resourceType": "aws:ec2:instance", "resourceTags": {"role": "gpu"}, "selectionMode": "COUNT(1)"},
    {"resourceType": "aws:ec2:instance", "resourceArns": ARNS, "selectionMode": "SOME(2)"},
])
def test_targets_fis_would_widen_are_refused(spec: dict) -> None:
    with pytest.raises(FaultError):
        explicit_targets({"nodes": spec})
