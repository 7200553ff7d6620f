"""`g7chaos twin up` as a user runs it: a foreground process, serving within 5 s, stopped by a signal."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.polling import wait_for

pytestmark = pytest.mark.quiet   # it times the twin's start

G7CHAOS = Path(sys.executable).with_name("g7chaos")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM])
def test_twin_up_serves_and_stops_cleanly(tmp_path, stop_signal):
    """`twin up` serves its endpoints and stops on the signal. How fast it starts is a benchmark's figure
    (`bench/twin_scale.py`, spawn to serving), not this test's: the deadline here only bounds the wait."""
    out = tmp_path / "twin"
    env = {**os.environ, "HOME": str(tmp_path)}
    started = time.monotonic()
    proc = subprocess.Popen([str(G7CHAOS), "twin", "up", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        endpoints_file = out / "endpoints.json"

        def serving() -> dict | None:
            if proc.poll() is not None:
                raise AssertionError(f"twin up exited early: {proc.stderr.read() if proc.stderr else ''}")
            if not endpoints_file.exists():
                return None
            e = json.loads(endpoints_file.read_text())
            server = json.loads(Path(e["kubeconfig"]).read_text())["clusters"][0]["cluster"]["server"]
            try:
                return e if httpx.get(f"{server}/version", timeout=1).status_code == 200 else None
            except httpx.HTTPError:
                return None

        e = wait_for(serving, 30, "twin up serving", interval=0.02)
        print(f"serving after {time.monotonic() - started:.2f}s (load average {os.getloadavg()})")
        assert e["region"] == "us-east-2" and e["time_scale"] == 30.0 and e["profile"] == "article"
        assert e["contexts"] == ["g7-use2a", "g7-use2b"] and e["pid"] == proc.pid
        assert e["aws_endpoint"].startswith("http://127.0.0.1:") and "arc-zonal-shift" in e["aws_endpoints"]
        assert "{node}" in e["imds_url_template"] and e["inference_url"].startswith("http://127.0.0.1:")
        # the fleet it starts with has been serving for long: its NLB targets are in service from the first request
        codes = [httpx.post(f"{e['inference_url']}/v1/completions", timeout=5,
                            json={"model": "llama-13b-fp8", "prompt": "first", "max_tokens": 1}).status_code
                 for _ in range(10)]
        assert codes == [200] * 10, codes

        got = subprocess.run(["kubectl", "--kubeconfig", e["kubeconfig"], "--context", "g7-use2b", "get", "nodes",
                              "-L", "node.kubernetes.io/instance-type"], capture_output=True, text=True, env=env, timeout=30)
        assert got.returncode == 0, got.stderr
        rows = got.stdout.strip().splitlines()[1:]
        assert len(rows) == 2 and all(" Ready " in r and r.rstrip().endswith("g7.48xlarge") for r in rows)
        models = httpx.get(f"{e['inference_url']}/v1/models", timeout=5).json()
        assert "llama-13b-fp8" in {m["id"] for m in models["data"]}
    finally:
        proc.send_signal(stop_signal)
        try:
            stdout, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, stderr
    assert "kubectl --context g7-use2a" in stdout and "--endpoint-url" in stdout and "curl" in stdout
    assert stdout.rstrip().endswith("twin stopped")
