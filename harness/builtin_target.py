"""Starting the built-in `twin` target: `g7chaos twin up` in a child process, then only its endpoints file.

The twin runs in its own process so that the harness reaches it exactly as it would reach a cluster:
through the kubeconfig, the AWS endpoint and the inference URL it writes, nothing shared in memory (and no
import of the twin package outside harness/twin/ and harness/cli.py). A session (harness/session.py) that
needs a twin starts one here and stops it when it closes; the benchmarks use it directly.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


class TwinStartError(Exception):
    pass


class TwinProcess:
    def __init__(self, profile: str = "article", time_scale: float = 30.0, nodes_per_az: int = 2, seed: int = 7,
                 out_dir: Path | None = None, flaky_api: float = 0.0):
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="g7chaos-twin-"))
        self.args = [sys.executable, "-m", "harness", "twin", "up", "--profile", profile,
                     "--time-scale", str(time_scale), "--nodes-per-az", str(nodes_per_az), "--seed", str(seed),
                     "--out", str(self.out_dir)]
        if flaky_api:     # the twin's control plane fails this fraction of calls (TargetSpec.twin_flaky_api)
            self.args += ["--flaky-api", str(flaky_api)]
        self.proc: subprocess.Popen | None = None

    @property
    def endpoints_path(self) -> Path:
        return self.out_dir / "endpoints.json"

    def start(self, timeout_s: float = 60.0) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.endpoints_path.exists():
            self.endpoints_path.unlink()
        log = open(self.out_dir / "twin.log", "wb")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.time() + timeout_s
        wait = threading.Event()
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise TwinStartError(f"twin exited with {self.proc.returncode}; see {self.out_dir / 'twin.log'}")
            if self._serving():
                return self.endpoints_path
            wait.wait(0.1)
        self.stop()
        raise TwinStartError(f"twin not serving after {timeout_s:.0f} s; see {self.out_dir / 'twin.log'}")

    def _serving(self) -> bool:
        try:
            endpoints = json.loads(self.endpoints_path.read_text())
        except (OSError, ValueError):
            return False
        if endpoints.get("pid") != self.proc.pid:
            return False
        try:
            return httpx.get(endpoints["inference_url"].rstrip("/") + "/health/ready", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def __enter__(self) -> "TwinProcess":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
