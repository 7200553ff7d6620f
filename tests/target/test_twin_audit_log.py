"""The twin's audit log names calls as the authorizers would: Kubernetes RequestInfo, IAM actions.

Unit level (no twin): the request descriptions, the mutating/read split, the log's bounds and marks, and
the marking of the twin's own boto3 clients (checked on the wire, before anything is sent).
"""
from __future__ import annotations

import asyncio
import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from harness.twin.aws.auditlog import INTERNAL_HEADER, AwsAuditWsgi, describe_aws, mark_internal
from harness.twin.kube.auditlog import AUDIT_PATH, AuditLog, KubeAuditApp, describe_kube


@pytest.mark.parametrize("method, path, query, expected", [
    ("GET", "/api/v1/nodes", "", {"verb": "list", "resource": "nodes"}),
    ("GET", "/api/v1/nodes", "watch=true&resourceVersion=5", {"verb": "watch", "resource": "nodes"}),
    ("GET", "/api/v1/nodes/ip-1", "", {"verb": "get", "resource": "nodes", "name": "ip-1"}),
    ("PATCH", "/api/v1/nodes/ip-1", "", {"verb": "patch", "resource": "nodes", "name": "ip-1"}),
    ("GET", "/api/v1/namespaces/kube-system/pods/dcgm-0/exec", "command=dcgmi",
     {"verb": "get", "resource": "pods", "subresource": "exec", "namespace": "kube-system", "name": "dcgm-0"}),
    ("POST", "/api/v1/namespaces/ns/pods/p/eviction", "",
     {"verb": "create", "resource": "pods", "subresource": "eviction", "namespace": "ns", "name": "p"}),
    ("DELETE", "/api/v1/namespaces/ns/pods", "", {"verb": "deletecollection", "resource": "pods", "namespace": "ns"}),
    ("GET", "/api/v1/namespaces/ns", "", {"verb": "get", "resource": "namespaces", "name": "ns", "namespace": "ns"}),
    ("GET", "/apis/events.k8s.io/v1/events", "", {"verb": "list", "group": "events.k8s.io", "resource": "events"}),
    ("GET", "/apis/events.k8s.io/v1", "", {"verb": "get", "group": "events.k8s.io"}),
])
def test_kube_requests_are_described_as_the_authorizer_sees_them(method, path, query, expected) -> None:
    described = describe_kube(method, path, query)
    assert {k: v for k, v in described.items() if v} == expected


def test_mutating_means_writes_and_exec_not_reads_or_discovery() -> None:
    log = AuditLog()
    read = log.record(api="kube", endpoint="c", path="/api/v1/nodes", **describe_kube("GET", "/api/v1/nodes", ""))
    exec_ = log.record(api="kube", endpoint="c", path="/x",
                       **describe_kube("GET", "/api/v1/namespaces/n/pods/p/exec", ""))
    proxy = log.record(api="kube", endpoint="c", path="/x",
                       **describe_kube("GET", "/api/v1/namespaces/n/pods/p:9400/proxy/metrics", ""))
    discovery = log.record(api="kube", endpoint="c", path="/api", **describe_kube("GET", "/api", ""))
    start = log.record(api="aws", endpoint="fis", verb="StartExperiment", path="/experiments")
    describe = log.record(api="aws", endpoint="ec2", verb="DescribeInstances", path="/")
    assert [c.mutating for c in (read, exec_, proxy, discovery, start, describe)] == [False, True, False, False, True,
                                                                                      False]
    assert (exec_.action, start.action) == ("get pods/exec", "fis:StartExperiment")
    mark = log.mark()
    log.record(api="aws", endpoint="ec2", verb="RunInstances", path="/", internal=True)
    assert log.calls(since=mark) == [] and [c.verb for c in log.calls(since=mark, internal=None)] == ["RunInstances"]
    small = AuditLog(max_calls=3)
    for _ in range(5):
        small.record(api="aws", endpoint="sts", verb="GetCallerIdentity", path="/")
    assert [c.seq for c in small.calls()] == [3, 4, 5]


def signed(service: str) -> dict[str, str]:
    return {"authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-2/{service}/aws4_request, "
                             "SignedHeaders=host, Signature=0"}


def test_aws_actions_are_read_from_each_protocol() -> None:
    form = {**signed("ec2"), "content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    assert describe_aws("POST", "/", "", form, b"Action=DescribeInstances&Version=2016-11-15") == \
        ("ec2", "DescribeInstances")
    assert describe_aws("POST", "/", "", {**signed("elasticloadbalancing"), "content-type": form["content-type"]},
                        b"Action=DescribeTargetHealth") == ("elasticloadbalancing", "DescribeTargetHealth")
    assert describe_aws("POST", "/service/GraniteServiceVersion20100801/operation/DescribeAlarms", "",
                        signed("monitoring"), b"") == ("cloudwatch", "DescribeAlarms")
    assert describe_aws("POST", "/", "", {**signed("monitoring"), "x-amz-target": "GraniteServiceVersion20100801.PutMetricData"},
                        b"{}") == ("cloudwatch", "PutMetricData")
    assert describe_aws("POST", "/experiments", "", signed("fis"), b"{}") == ("fis", "StartExperiment")
    assert describe_aws("DELETE", "/experiments/EXP1", "", signed("fis"), b"") == ("fis", "StopExperiment")
    assert describe_aws("GET", "/experiments/EXP1", "", signed("fis"), b"") == ("fis", "GetExperiment")
    assert describe_aws("POST", "/zonalshifts", "", {}, b"{}", signing_name="arc-zonal-shift") == \
        ("arc-zonal-shift", "StartZonalShift")


def test_the_twins_own_clients_are_marked_on_the_wire() -> None:
    sent: list[dict[str, str]] = []

    def capture(request, **_):
        sent.append(dict(request.headers))
        return AWSResponse(request.url, 200, {}, None)

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-2")
    for marked in (False, True):
        client = session.client("sts", endpoint_url="http://127.0.0.1:9")
        if marked:
            mark_internal(mark_internal(client))            # idempotent
        client.meta.events.register("before-send", capture)
        try:
            client.get_caller_identity()
        except Exception:
            pass   # the empty reply does not parse; the request is what this test reads
    values = [h.get(INTERNAL_HEADER) for h in sent]
    assert [v.decode() if isinstance(v, bytes) else v for v in values] == [None, "twin"]


def test_wsgi_recorder_passes_the_body_on_and_records_the_status() -> None:
    log = AuditLog()
    seen: list[bytes] = []

    def app(environ, start_response):
        seen.append(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        start_response("400 Bad Request", [])
        return [b""]

    import io
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    environ = {"PATH_INFO": "/", "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": "application/x-www-form-urlencoded", "wsgi.input": io.BytesIO(body),
               "HTTP_AUTHORIZATION": signed("sts")["authorization"], "HTTP_USER_AGENT": "Boto3/1"}
    AwsAuditWsgi(app, log)(environ, lambda status, headers, exc_info=None: None)
    assert seen == [body]
    (call,) = log.calls()
    assert (call.action, call.status, call.user_agent, call.internal) == ("sts:GetCallerIdentity", 400, "Boto3/1", False)


def test_kube_recorder_serves_the_log_and_skips_its_own_endpoint() -> None:
    log = AuditLog()

    async def api(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app = KubeAuditApp(api, "g7-use2a", log)
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    def scope(path: str, query: bytes = b"") -> dict:
        return {"type": "http", "method": "GET", "path": path, "query_string": query,
                "headers": [(b"user-agent", b"kubectl/v1.31")]}

    asyncio.run(app(scope("/api/v1/nodes"), receive, send))
    asyncio.run(app(scope(AUDIT_PATH, b"since=0"), receive, send))
    served = json.loads(sent[-1]["body"])
    assert [c["action"] for c in served["calls"]] == ["list nodes"] and served["mark"] == 1
    assert served["calls"][0]["user_agent"] == "kubectl/v1.31" and served["calls"][0]["status"] == 200
