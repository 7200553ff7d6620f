"""Running a command in a pod through the Kubernetes exec API (the websocket channel protocol)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.stream import stream
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential


@dataclass
class ExecOutput:
    exit_code: int
    stdout: str
    stderr: str


class TransientExecError(Exception):
    pass


@retry(retry=retry_if_exception_type(TransientExecError), stop=stop_after_attempt(4),
       wait=wait_exponential(multiplier=0.1, max=1.0), reraise=True)
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
        if exc.status in (429, 500, 502, 503, 504) or exc.status == 0:
            raise TransientExecError(str(exc)) from exc
        raise
    try:
        ws.run_forever(timeout=timeout_s)
        stdout, stderr = ws.read_stdout() or "", ws.read_stderr() or ""
        code = ws.returncode
    finally:
        ws.close()
        exec_client.close()
    return ExecOutput(exit_code=code if code is not None else -1, stdout=stdout, stderr=stderr)
