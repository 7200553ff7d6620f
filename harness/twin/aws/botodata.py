"""botocore's data files (endpoints, partitions, service models), parsed once per twin process.

botocore keeps what it parses per Session, and Sessions are made freely: moto makes one to validate each EKS role
ARN and to list a service's regions when its modules are imported, and the twin makes one per boto3 client. Each
new Session parsed the same JSON files again: about 1.3 s of a twin's 4.7-6.3 s of CPU to start (measured on
`g7chaos twin up` until its endpoints file appears: 4.7-6.3 s before, 3.3-4.0 s after). Every twin start of a test
session or a game day paid it.

The files are botocore's own, shipped with it and never written: one parsed copy per path serves every Session,
as botocore already serves one parsed copy to every client of a Session. Only the twin's process does this: the
harness makes one Session per target and keeps it.
"""
from __future__ import annotations

import functools
from typing import Any

_INSTALLED = False


def share_parsed_data_files() -> None:
    """From now on, every botocore Session in this process reads each data file through one cache (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from botocore import loaders

    read = loaders.JSONFileLoader.load_file
    reader = loaders.JSONFileLoader()

    @functools.lru_cache(maxsize=None)
    def parsed(file_path: str) -> Any:
        return read(reader, file_path)

    def load_file(self: loaders.JSONFileLoader, file_path: str) -> Any:
        return parsed(file_path)

    loaders.JSONFileLoader.load_file = load_file  # type: ignore[method-assign]
    _INSTALLED = True
