"""Faults by name (contract); importing this package registers every fault module."""
from harness.faults import ecc_double_bit_error  # noqa: F401
from harness.faults.base import FAULTS, Fault, FaultError, NodeRef, RunContext

__all__ = ["FAULTS", "Fault", "FaultError", "NodeRef", "RunContext"]
