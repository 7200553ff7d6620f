"""Target clients against real loopback servers: a Kubernetes-shaped HTTP API and moto's AWS server."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kubernetes import client as kube_client
from moto.server import ThreadedMotoServer

from harness.target.endpoints import EndpointsError, TwinEndpoints
from harness.target.guardrails import GuardrailError
from harness.target.target import Target, resolve_target

SECRET_TOKEN = "kube-token-7f3a9c1e5b2d4a6f"


class _KubeHandler(BaseHTTPRequestHandler):
    """Answers GET /api/v1/nodes with one node, and records the Authorization header it received."""

    seen_auth: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        type(self).seen_auth.append(self.headers.get("Authorization", ""))
        if self.path.startswith("/api/v1/nodes"):
            body = json.dumps({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
                               "items": [{"metadata": {"name": "ip-10-0-1-5.us-east-2.compute.internal"}}]})
            self.send_response(200)
        else:
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def kube_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KubeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def endpoints_file(tmp_path: Path, kube_server: str, moto_server: str) -> Path:
    kubeconfig = tmp_path / "kubeconfig"
    contexts = ["g7-use2a", "g7-use2b"]
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
        "clusters": [{"name": c, "cluster": {"server": kube_server}} for c in contexts],
        "contexts": [{"name": c, "context": {"cluster": c, "user": "harness"}} for c in contexts],
        "users": [{"name": "harness", "user": {"token": SECRET_TOKEN}}],
    }))
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps({
        "region": "us-east-2", "time_scale": 30.0, "profile": "article", "kubeconfig": str(kubeconfig),
        "contexts": contexts, "aws_endpoint": moto_server, "aws_endpoints": {"arc-zonal-shift": "http://127.0.0.1:9"},
        "inference_url": "http://127.0.0.1:8/", "imds_url_template": "http://127.0.0.1:7/nodes/{node}", "pid": 1,
    }))
    return path


def test_twin_target_from_endpoints_file(endpoints_file: Path):
    target = resolve_target("twin", twin_endpoints=endpoints_file)
    assert (target.name, target.environment, target.contexts) == ("twin", "dev", ["g7-use2a", "g7-use2b"])
    assert target.inference_url == "http://127.0.0.1:8" and target.time_scale == 30.0
    assert target.wall_seconds(120.0) == 4.0
    assert target.endpoint_for("arc-zonal-shift") == "http://127.0.0.1:9"
    assert target.served_by_headers == ["x-served-by-pod", "x-served-by-node", "x-served-by-az"]


def test_kube_client_per_context_talks_to_the_server(endpoints_file: Path):
    target = Target.from_twin_endpoints(endpoints_file)
    api = kube_client.CoreV1Api(target.kube("g7-use2b"))
    nodes = api.list_node(_request_timeout=5)
    assert [n.metadata.name for n in nodes.items] == ["ip-10-0-1-5.us-east-2.compute.internal"]
    assert _KubeHandler.seen_auth[-1] == f"Bearer {SECRET_TOKEN}"
    assert target.kube("g7-use2b") is target.kube("g7-use2b")   # cached per context


def test_kube_refuses_contexts_the_target_does_not_name(endpoints_file: Path):
    target = Target.from_twin_endpoints(endpoints_file)
    with pytest.raises(GuardrailError, match="'prod-east' is not one of target 'twin'"):
        target.kube("prod-east")


def test_aws_clients_use_the_endpoint_region_and_twin_account(endpoints_file: Path, moto_server: str):
    target = Target.from_twin_endpoints(endpoints_file)
    ec2 = target.aws("ec2")
    assert ec2.meta.region_name == "us-east-2" and ec2.meta.endpoint_url == moto_server
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    assert "us-east-2a" in zones
    account = target.caller_account()
    assert account == "123456789012"
    target.check_allowlist(aws_account=account)          # the twin's own account passes
    with pytest.raises(GuardrailError, match="AWS account 999999999999 is not allowlisted"):
        target.check_allowlist(aws_account="999999999999")


def test_describe_never_contains_credentials(endpoints_file: Path, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "hunter2-hunter2")
    target = Target.from_twin_endpoints(endpoints_file)
    report = json.dumps(target.redact({"target": target.describe(),
                                       "error": f"401 for token {SECRET_TOKEN}; pw hunter2-hunter2",
                                       "headers": {"Authorization": f"Bearer {SECRET_TOKEN}"}}))
    assert SECRET_TOKEN not in report and "hunter2-hunter2" not in report
    assert "g7-use2a" in report and "REDACTED" in report
    assert SECRET_TOKEN not in repr(target)


def test_broken_endpoints_file_is_an_unreachable_target(tmp_path: Path):
    with pytest.raises(EndpointsError, match="cannot read twin endpoints file") as info:
        TwinEndpoints.read(tmp_path / "missing.json")
    assert info.value.exit_code == 4
    bad = tmp_path / "bad.json"
    bad.write_text('{"region": "us-east-2"}')
    with pytest.raises(EndpointsError, match="is not valid"):
        TwinEndpoints.read(bad)
