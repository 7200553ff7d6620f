"""Fixtures of the load tests: one paced SSE server for the module, reset before each test."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from .sse_server import SSEServer


@pytest.fixture(scope="module")
def sse_server() -> Iterator[SSEServer]:
    server = SSEServer(tokens=10, gap_s=0.02, ttft_s=0.05).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(sse_server: SSEServer) -> SSEServer:
    sse_server.reset()
    return sse_server
