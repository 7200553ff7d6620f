"""Running a command in a pod through the Kubernetes exec API (the websocket channel protocol).

The API server can refuse the handshake (500, 429), and a stream can end without the Status frame that
carries the exit code (the connection was cut). Both are retried, bounded in attempts and time: every
command the harness execs is idempotent (`dcgmi test --inject ... -v 1` sets a value, `echo 1 > cgroup.freeze` of a
frozen cgroup freezes it again), so running one twice is safe where not running it is not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.stream import stream
from tenacity import retry, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential

EXEC_ATTEMPTS = 6
EXEC_DEADLINE_S = 60.0
TRANSIENT_STATUSES = (0, 429, 500, 502, 503, 504)   # 0: the websocket handshake or connection failed


@dataclass
class ExecOutput:
    exit_code: int
    stdout: str
    stderr: str


class TransientExecError(Exception):
    pass


@retry(retry=retry_if_exception_type(TransientExecError),
       stop=stop_after_attempt(EXEC_ATTEMPTS) | stop_after_delay(EXEC_DEADLINE_S),
       wait=wait_exponential(multiplier=0.1, max=2.0), reraise=True)
def pod_exec(api_client: Any, namespace: str, pod: str, command: list[str], container: str | None = None,
             timeout_s: float = 20.0) -> ExecOutput:
    # stream() swaps the request function of the client it is handed: an exec on a shared client would turn
    # other threads' API calls (watches, checks) into websocket handshakes. Each exec gets its own client.
    exec_client = client.ApiClient(configuration=api_client.configuration)
    core = client.CoreV1Api(exec_client)
    kwargs = {"container": container} if container else {}
    try:
        ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, command=command, stderr=True,
                    stdin=False, stdout=True, tty=False, _preload_content=False, **kwargs)
    except client.ApiException as exc:
        exec_client.close()
        exc.status = exc.status or _handshake_status(exc)
        if exc.status in TRANSIENT_STATUSES:
            raise TransientExecError(str(exc)) from exc
        raise
    try:
        try:
            ws.run_forever(timeout=timeout_s)
        except Exception as exc:   # websocket cut mid-stream (connection reset, closed)
            raise TransientExecError(f"exec stream in {namespace}/{pod} broke: {type(exc).__name__}: {exc}") from exc
        stdout, stderr = ws.read_stdout() or "", ws.read_stderr() or ""
        code = _exit_code(ws)
    finally:
        ws.close()
        exec_client.close()
    return ExecOutput(exit_code=code, stdout=stdout, stderr=stderr)


def pod_gone(api_client: Any, namespace: str, pod: str) -> bool:
    """Whether the pod no longer exists: a node replaced since the injection took its DaemonSet pods, and
    with them everything the fault had set there."""
    try:
        client.CoreV1Api(api_client).read_namespaced_pod(pod, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _handshake_status(exc: client.ApiException) -> int:
    """The HTTP status the API server refused the WebSocket upgrade with (the client reports status 0 and
    names it only in the reason): a 403 is RBAC saying no, which no retry changes; 0 when it is not there."""
    match = re.search(r"Handshake status (\d{3})", str(exc.reason or ""))
    return int(match.group(1)) if match else 0


def _exit_code(ws: Any) -> int:
    """The command's exit code from the Status frame; -1 when it is still running at the timeout."""
    if ws.is_open():
        return -1
    try:
        code = ws.returncode
    except (TypeError, KeyError, IndexError, ValueError, AttributeError) as exc:
        # the stream closed without a (readable) Status: the connection was cut, the outcome is unknown
        raise TransientExecError(f"exec stream ended without a status: {type(exc).__name__}") from exc
    return code if code is not None else -1
