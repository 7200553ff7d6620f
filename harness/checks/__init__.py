"""Checks by name (contract); importing this package registers every check module."""
from harness.checks import (alarm_fired, fault_landed, idempotent_retries, no_corrupted_responses,  # noqa: F401
                            node_drained, slo)
from harness.checks.base import CHECKS, Check, Evidence

__all__ = ["CHECKS", "Check", "Evidence"]
