"""The twin's flaky control plane: what it injects, and that real clients read each failure as AWS's or the API
server's own (botocore classifies the error codes as retryable; the kubernetes client gets Status bodies).

The Kubernetes side runs the real API app behind the middleware on loopback; the AWS side is checked through
botocore's own parsers and retry rules, protocol by protocol.
"""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from botocore.awsrequest import AWSResponse
from botocore.parsers import create_parser
from botocore.retries.standard import RetryContext, StandardRetryConditions
from botocore.session import get_session

from harness.faults.podexec import pod_exec
from harness.target.model import AwsSpec, TargetSpec
from harness.target.target import Target
from harness.twin.aws.flaky import error_response
from harness.twin.flaky import FlakyApi, FlakyConfig
from harness.twin.kube import objects as o
from harness.twin.kube.api import build_kube_app
from harness.twin.kube.exec import ExecResult
from harness.twin.kube.flaky import FlakyKubeApp
from harness.twin.kube.kubeconfig import write_kubeconfig
from harness.twin.kube.store import ObjectStore, resource
from harness.twin.kube.testing import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------ the injector

def test_rate_zero_never_fails_and_a_rate_fails_about_that_share() -> None:
    off = FlakyApi(FlakyConfig(rate=0.0))
    assert all(off.decide("kube:a") is None for _ in range(500)) and off.injected() == 0
    flaky = FlakyApi(FlakyConfig(rate=0.2, seed=3))
    outcomes = Counter(flaky.decide("aws:ec2") for _ in range(4000))
    failed = 4000 - outcomes[None]
    assert 600 < failed < 1000, outcomes                      # 20% of 4000, with room for the draw
    assert {"error", "throttle", "timeout"} == set(outcomes) - {None}
    assert flaky.injected("aws:") == failed and flaky.injected("kube:") == 0
    assert flaky.summary()["aws:ec2"]["calls"] == 4000


def test_same_seed_same_decisions() -> None:
    first, second = FlakyApi(FlakyConfig(rate=0.3, seed=11)), FlakyApi(FlakyConfig(rate=0.3, seed=11))
    assert [first.decide("s") for _ in range(300)] == [second.decide("s") for _ in range(300)]
    other = FlakyApi(FlakyConfig(rate=0.3, seed=12))
    assert [first.decide("s") for _ in range(300)] != [other.decide("s") for _ in range(300)]


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2.0])
def test_rate_outside_zero_one_is_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        FlakyConfig(rate=bad)


def test_twin_up_refuses_a_rate_outside_zero_one_with_exit_2(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "harness", "twin", "up", "--flaky-api", "1.5", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--flaky-api" in out.stderr, out.stderr
    assert not (tmp_path / "endpoints.json").exists()


# ------------------------------------------------------------------------------------------------- AWS

def _parse(service: str, operation: str, failure: str) -> tuple[dict, AWSResponse, object]:
    model = get_session().get_service_model(service)
    op = model.operation_model(operation)
    headers = {"authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-2/{model.signing_name}/"
                                "aws4_request, SignedHeaders=host, Signature=0"}
    if model.protocol == "smithy-rpc-v2-cbor":
        headers["smithy-protocol"] = "rpc-v2-cbor"
    elif model.protocol in ("query", "ec2"):
        headers["content-type"] = "application/x-www-form-urlencoded; charset=utf-8"
    status, out_headers, body = error_response(failure, headers)  # type: ignore[arg-type]
    parsed = create_parser(model.protocol).parse({"status_code": status, "headers": dict(out_headers),
                                                  "body": body}, op.output_shape)
    return parsed, AWSResponse("http://127.0.0.1", status, dict(out_headers), None), op


@pytest.mark.parametrize(("service", "operation"), [
    ("ec2", "DescribeInstances"), ("autoscaling", "DescribeAutoScalingGroups"), ("cloudwatch", "DescribeAlarms"),
    ("elbv2", "DescribeTargetHealth"), ("fis", "StartExperiment"), ("arc-zonal-shift", "StartZonalShift")])
@pytest.mark.parametrize("failure", ["error", "throttle", "timeout"])
def test_each_aws_failure_is_parsed_by_botocore_and_retried_in_standard_mode(service: str, operation: str,
                                                                             failure: str) -> None:
    parsed, http, op = _parse(service, operation, failure)
    code = parsed["Error"]["Code"]
    expected = {"error": {"InternalError", "InternalFailure"},
                "throttle": {"RequestLimitExceeded", "Throttling", "ThrottlingException"},
                "timeout": {"RequestTimeout"}}[failure]
    assert code in expected, parsed
    context = RetryContext(attempt_number=1, operation_model=op, parsed_response=parsed, http_response=http)
    assert StandardRetryConditions().is_retryable(context), (service, failure, code)


# ------------------------------------------------------------------------------------------ Kubernetes

class ScriptedFlaky(FlakyApi):
    """Fails the calls it is told to, in order (None: served normally); random beyond the script."""

    def __init__(self, config: FlakyConfig, script: list[str | None]) -> None:
        super().__init__(config)
        self.script = list(script)

    def decide(self, surface, kinds=None):  # type: ignore[override]
        if self.script:
            failure = self.script.pop(0)
            self.calls[surface] += 1
            if failure is not None:
                self.counts[(surface, failure)] += 1
            return failure
        return super().decide(surface) if kinds is None else super().decide(surface, kinds)


FAST = dict(hold_s=0.05, retry_after_s=0, watch_lifetime_s=(0.2, 0.5))


@pytest.fixture
def serve_kube(tmp_path: Path) -> Iterator:
    stops = []

    def start(flaky: FlakyApi) -> tuple[str, ObjectStore, Target]:
        store = ObjectStore("c1")
        for ns in ("default", "kube-system"):
            store.create(resource("namespaces"), o.namespace(ns))
        ds = store.create(resource("daemonsets.apps"), o.daemonset(
            "dcgm-server", "kube-system", selector={"k8s-app": "dcgm-server"}, desired=1,
            containers=[o.container("dcgm", "public.ecr.aws/eks/dcgm:v1")]))
        store.create(resource("pods"), o.pod_for(ds, "dcgm-server-a", node_name=None))

        async def exec_handler(namespace: str, pod: str, container: str | None, command: list[str]) -> ExecResult:
            return ExecResult(0, b"Successfully injected field info.\n", b"")

        url, stop = serve_in_thread(FlakyKubeApp(build_kube_app(store, exec_handler=exec_handler), flaky, "kube:c1"))
        stops.append(stop)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"c1": url})
        target = Target(TargetSpec(name="flaky", environment="dev", kubeconfig=str(kubeconfig), contexts=["c1"],
                                   aws=AwsSpec(region="us-east-2"), inference_url="http://127.0.0.1:9"))
        return url, store, target
    yield start
    for stop in stops:
        stop()


def test_kube_failures_are_status_bodies_with_retry_after_on_429(serve_kube) -> None:
    flaky = ScriptedFlaky(FlakyConfig(rate=0.5, **FAST), ["error", "throttle", "timeout", None])
    url, _, _ = serve_kube(flaky)
    with httpx.Client(base_url=url, timeout=5) as http:
        answers = [http.get("/api/v1/namespaces") for _ in range(4)]
        assert all(http.get("/version").status_code == 200 for _ in range(10))   # only the API paths fail
    assert [a.status_code for a in answers] == [500, 429, 504, 200]
    for answer in answers[:3]:
        assert answer.json()["kind"] == "Status" and answer.json()["code"] == answer.status_code
    assert answers[1].headers["retry-after"] == "0"
    assert flaky.injected("kube:c1") == 3


def test_reads_and_exec_ride_out_a_flaky_api_server(serve_kube) -> None:
    from kubernetes import client
    flaky = FlakyApi(FlakyConfig(rate=0.3, seed=5, **FAST))
    _, _, target = serve_kube(flaky)
    core = client.CoreV1Api(target.kube("c1"))
    for _ in range(10):
        assert {n.metadata.name for n in core.list_namespace().items} == {"default", "kube-system"}
    for _ in range(5):
        out = pod_exec(target.kube("c1"), "kube-system", "dcgm-server-a", ["dcgmi", "test", "--inject"])
        assert out.exit_code == 0 and "injected" in out.stdout
    assert flaky.injected("kube:c1") > 0


def test_a_create_applied_before_its_answer_was_lost_is_ours_on_retry(serve_kube) -> None:
    """The first POST is applied and answered 504 (held past the deadline); the retry meets 409 AlreadyExists
    on the object we sent, which is success. A 409 on an object someone else made stays a 409."""
    from kubernetes import client
    flaky = ScriptedFlaky(FlakyConfig(rate=0.0, **FAST), ["timeout", "throttle", None, None, "timeout", None])
    _, store, target = serve_kube(flaky)
    core = client.CoreV1Api(target.kube("c1"))
    pod = o.pod("probe", "default", containers=[o.container("c", "busybox")], labels={"owner": "g7chaos"})
    assert core.create_namespaced_pod("default", pod).metadata.labels == {"owner": "g7chaos"}
    assert [p["metadata"]["name"] for p in store.list(resource("pods"), "default")[0]] == ["probe"]
    theirs = o.pod("probe", "default", containers=[o.container("c", "busybox")], labels={"owner": "someone-else"})
    with pytest.raises(client.ApiException) as raised:
        core.create_namespaced_pod("default", theirs)
    assert raised.value.status == 409
    assert flaky.injected("kube:c1", "timeout") == 2
