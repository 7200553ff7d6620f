"""Pod exec over the websocket channel protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`).

This is how `kubectl exec` and `kubernetes.stream.stream` reach `dcgmi` inside the DCGM pod. Measured
wire facts: kubectl offers only v5; frames must be binary (a text frame fails kubectl with "unexpected
message type: 1"); each frame is one channel byte (1 stdout, 2 stderr, 3 status) then the raw payload;
the session ends with one metav1.Status on channel 3, whose ExitCode cause becomes the client's exit code.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Awaitable, Callable

from starlette.websockets import WebSocket

SUBPROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDOUT, STDERR, STATUS = 1, 2, 3
# A process in a container takes milliseconds to start and print; the twin's commands answer at once. kubectl's
# websocket executor reads frames before it has registered its streams, and a frame that comes in that gap is
# dropped ("websocket.go: Unknown stream id 1, discarding message", seen on a busy machine: the command's whole
# output lost, exit 0). Output waits this long after the upgrade, as a real process's would (assumed figure).
PROCESS_START_S = 0.02


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


ExecHandler = Callable[[str, str, "str | None", list[str]], Awaitable[ExecResult]]


def status_payload(exit_code: int) -> bytes:
    if exit_code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps({
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": f"command terminated with non-zero exit code: error executing command, exit status {exit_code}",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }).encode()


def choose_subprotocol(offered: str | None) -> str | None:
    names = [p.strip() for p in (offered or "").split(",") if p.strip()]
    return next((p for p in SUBPROTOCOLS if p in names), None)


async def serve_exec(ws: WebSocket, run: Callable[[], Awaitable[ExecResult]]) -> None:
    """Accept, run the command once, stream its output and status, close.

    stdin is not forwarded: the commands the twin runs (dcgmi, kill) read none.
    """
    subprotocol = choose_subprotocol(ws.headers.get("sec-websocket-protocol"))
    await ws.accept(subprotocol=subprotocol)
    started = asyncio.get_running_loop().time()
    try:
        result = await run()
    except Exception as exc:   # the handler's failure is the command's failure, not a dropped socket
        result = ExecResult(1, b"", f"{type(exc).__name__}: {exc}\n".encode())
    ready = started + PROCESS_START_S - asyncio.get_running_loop().time()
    if ready > 0:
        await asyncio.sleep(ready)      # the process's own start-up time, not a wait on cluster state
    if result.stdout:
        await ws.send_bytes(bytes([STDOUT]) + result.stdout)
    if result.stderr:
        await ws.send_bytes(bytes([STDERR]) + result.stderr)
    await ws.send_bytes(bytes([STATUS]) + status_payload(result.exit_code))
    await ws.close()
