"""Root conftest: keeps the test process on loopback and gives each test session its own HOME.

- Loopback only. Every `connect` of an internet socket in the test process is checked: its address must be
  loopback (127.0.0.0/8, ::1), or the test fails at that line with the address it tried. A test that builds
  its own network namespace (and reaches addresses inside it) asks for that with the `own_netns` marker. The
  guard covers this process; the child processes tests start (load generators, `g7chaos` runs) are pointed
  at the twin's loopback URLs by the tests themselves.
- Own HOME. kubectl keeps a discovery cache under ~/.kube/cache and boto3 reads ~/.aws: a session with its own
  HOME reads no operator's cluster or credentials and leaves nothing in theirs. Set before any test and any
  background run starts, so child processes inherit it.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_allow_any = False          # set while a test marked `own_netns` runs
_OWN_HOME = pytest.StashKey[Path]()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:      # a name: every address it resolves to must be loopback
        try:
            infos = socket.getaddrinfo(host, None)
        except socket.gaierror:
            return True     # resolves to nothing: the connect fails on its own, nothing leaves the machine
        return all(ipaddress.ip_address(info[4][0].split("%", 1)[0]).is_loopback for info in infos)


def _check(sock: socket.socket, address) -> None:
    if _allow_any or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0] if isinstance(address, tuple) else str(address)
    if not _is_loopback(host):
        # an OSError, as a refused connection is: libraries probing for something (botocore's instance metadata
        # lookup) carry on as they would offline; a test that needs the address fails with this message
        raise PermissionError(f"refused connect to {address!r}: tests may reach loopback only "
                              "(127.0.0.0/8, ::1), or a network namespace the test made (marker `own_netns`)")


def _guarded_connect(self: socket.socket, address) -> None:
    _check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "own_netns: the test reaches addresses inside a network namespace it creates")
    socket.socket.connect = _guarded_connect          # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex    # type: ignore[method-assign]
    if not os.environ.get("G7CHAOS_TEST_HOME"):      # (a pytest started by a test keeps its session's HOME)
        home = Path(tempfile.mkdtemp(prefix="g7chaos-test-home-"))
        os.environ["G7CHAOS_TEST_HOME"] = os.environ["HOME"] = str(home)
        config.stash[_OWN_HOME] = home


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_OWN_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_netns_allows_its_addresses(request: pytest.FixtureRequest):
    global _allow_any
    _allow_any = request.node.get_closest_marker("own_netns") is not None
    try:
        yield
    finally:
        _allow_any = False
