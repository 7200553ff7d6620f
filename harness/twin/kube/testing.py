"""Serve an ASGI app on a free loopback port in a background thread, for tests and tools.

Each twin part (Kubernetes API, gateway, IMDS...) is a Starlette app; tests drive them with real
clients (kubectl, the kubernetes client, httpx) over real sockets, never through in-process mocks.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Callable

import uvicorn

# Settings every twin server should run with. kubectl drain retries a refused eviction every 5 s, the
# same as uvicorn's default keep-alive timeout: the server closing the idle connection races the POST
# and kubectl fails with EOF (Go does not retry a POST). Real API servers keep connections far longer.
UVICORN_SETTINGS: dict = {"timeout_keep_alive": 75, "ws_ping_interval": None, "log_level": "warning",
                          "access_log": False}


def serve_in_thread(app, *, host: str = "127.0.0.1", start_timeout_s: float = 10.0,
                    graceful_shutdown_s: float = 1.0) -> tuple[str, Callable[[], None]]:
    """Start `app` under uvicorn on host:0 in a daemon thread; returns (base_url, stop).

    The socket is bound before the thread starts so the port is known at once; `stop()` asks uvicorn
    to exit and waits for the thread, cutting long-lived streams (watches) after `graceful_shutdown_s`.
    """
    # proto IPPROTO_TCP, not the default 0: accepted sockets inherit it, and asyncio turns Nagle off only on
    # sockets whose proto says TCP; with Nagle on, a response's body waited ~40 ms for the ACK of its headers
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", timeout_graceful_shutdown=graceful_shutdown_s, **UVICORN_SETTINGS)
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # surfaced by the start-up wait below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if errors or not thread.is_alive():
            raise RuntimeError(f"server failed to start: {errors[0] if errors else 'thread exited'}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"server on port {port} did not start within {start_timeout_s}s")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=graceful_shutdown_s + 5.0)
        sock.close()

    return f"http://{host}:{port}", stop
