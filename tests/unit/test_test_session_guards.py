"""The root conftest's promises hold: loopback only, and a HOME of the session's own."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest


def test_a_connect_beyond_loopback_is_refused_before_any_packet_leaves() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        with pytest.raises(PermissionError, match="loopback only"):
            sock.connect(("192.0.2.1", 80))          # TEST-NET-1: refused by the guard, never tried
        with pytest.raises(PermissionError, match="loopback only"):
            sock.connect_ex(("192.0.2.1", 80))


def test_loopback_connects() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server, socket.create_connection(
            ("127.0.0.1", _listen(server)), timeout=2) as client:
        assert client.getpeername()[0] == "127.0.0.1"


def test_the_session_has_its_own_home() -> None:
    home = Path(os.environ["HOME"])
    assert os.environ["G7CHAOS_TEST_HOME"] == str(home) and home.name.startswith("g7chaos-test-home-")
    assert Path("~").expanduser() == home


def _listen(server: socket.socket) -> int:
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server.getsockname()[1]
