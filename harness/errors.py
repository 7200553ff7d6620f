"""The exit-code contract (docs/CONTRACTS.md section 3) and the exceptions that carry it.

Every error that ends a command carries its own exit code, so the command line maps an escaping exception to
its exit by reading `exit_code` rather than by a list of cases that a new error could miss. Errors that a run
records in its result instead (a fault that did not land becomes an `error` verdict, not a crash) carry the
code the verdict gives them, so both paths agree.

This module imports nothing of the harness: any layer may raise these.
"""
from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """Process exit codes (contract, docs/CONTRACTS.md section 3)."""

    PASS = 0             # every check passed
    CHECK_FAILED = 1     # a check failed
    INVALID_INPUT = 2    # invalid input or usage
    ABORTED = 3          # stop condition or interrupt; faults reverted
    TARGET_ERROR = 4     # target unreachable, a fault could not be injected / did not land, or a revert failed
    INCONCLUSIVE = 5     # nothing failed, but the evidence a pass needs is missing (see `missing_evidence`)


class G7ChaosError(Exception):
    """An error the harness explains in one message: the command prints it without a traceback and exits with
    `exit_code`."""

    exit_code: ClassVar[ExitCode]


class UsageError(G7ChaosError):
    """Invalid input or usage (a bad file, flag or name): nothing was touched (exit 2)."""

    exit_code = ExitCode.INVALID_INPUT


class TargetError(G7ChaosError):
    """The target could not be reached, or a fault could not be injected or reverted on it (exit 4)."""

    exit_code = ExitCode.TARGET_ERROR
