"""The twin with `--rbac deploy/rbac.yaml` answers like an API server holding those Roles: what the file allows
works, anything else is 403 Forbidden with the authorizer's message, and the audit log records the refusal.

Shown with the harness's own exec (pod_exec, WebSocket) and the official client: exec in the DCGM namespace
works, exec into the inference pods and pod creation outside the harness namespace are refused; a Role that
grants exec with `create` alone refuses the WebSocket exec, which is authorized as `get` (and `create` since
Kubernetes 1.35, FIDELITY RBAC-1).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client as kclient
from kubernetes import config as kconfig

from harness.faults.podexec import pod_exec
from harness.twin.kube.auditlog import audit_of
from harness.twin.kube.rbac import KubeRbacApp, RbacPolicy
from harness.twin.server import TwinHandle, TwinServer

ROOT = Path(__file__).resolve().parents[3]
RBAC = ROOT / "deploy" / "rbac.yaml"


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinHandle]:
    handle = TwinServer.start_in_thread(profile="article", nodes_per_az=1, time_scale=30.0, rbac=str(RBAC),
                                        out_dir=tmp_path_factory.mktemp("rbac-twin") / "twin")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def api(twin: TwinHandle) -> kclient.ApiClient:
    endpoints = twin.endpoints
    return kconfig.new_client_from_config(config_file=endpoints["kubeconfig"], context=endpoints["contexts"][0])


def first_pod(api: kclient.ApiClient, namespace: str, selector: str) -> str:
    pods = kclient.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
    assert pods, (namespace, selector)
    return pods[0].metadata.name


def test_exec_in_the_dcgm_namespace_is_allowed(api: kclient.ApiClient) -> None:
    pod = first_pod(api, "kube-system", "k8s-app=dcgm-server")
    out = pod_exec(api, "kube-system", pod, ["dcgmi", "discovery", "-l"])
    assert out.exit_code == 0, out


def test_exec_into_the_inference_pods_is_forbidden(twin: TwinHandle, api: kclient.ApiClient) -> None:
    pod = first_pod(api, "inference", "app=triton")          # reads are cluster-wide: listing works
    mark = audit_of(twin).mark()
    with pytest.raises(kclient.ApiException) as refused:
        pod_exec(api, "inference", pod, ["kill", "-STOP", "1"])
    assert refused.value.status == 403, refused.value          # not retried as if it were a network error
    assert 'cannot get resource \\"pods/exec\\"' in str(refused.value.reason)
    exec_calls = [c for c in audit_of(twin).calls(since=mark) if c.subresource == "exec"]
    assert len(exec_calls) == 1 and exec_calls[0].status == 403 and exec_calls[0].namespace == "inference"


def test_creating_a_pod_outside_the_harness_namespace_is_forbidden(api: kclient.ApiClient) -> None:
    core = kclient.CoreV1Api(api)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    with pytest.raises(kclient.ApiException) as refused:
        core.create_namespaced_pod("kube-system", pod)
    status = json.loads(refused.value.body)
    assert refused.value.status == 403 and status["reason"] == "Forbidden" and status["code"] == 403
    assert status["message"] == ('pods is forbidden: User "system:serviceaccount:g7chaos:g7chaos" cannot create '
                                 'resource "pods" in API group "" in the namespace "kube-system"')
    with pytest.raises(kclient.ApiException) as patched:
        core.patch_node(core.list_node().items[0].metadata.name, {"spec": {"unschedulable": True}})
    assert patched.value.status == 403 and "at the cluster scope" in json.loads(patched.value.body)["message"]


def test_a_role_granting_exec_with_create_alone_refuses_websocket_exec() -> None:
    """The twin's authorizer, asked about the handshake pod_exec sends (a GET on pods/exec)."""
    path, query = "/api/v1/namespaces/kube-system/pods/dcgm-x/exec", "command=dcgmi&stdout=true"
    shipped = KubeRbacApp(None, RbacPolicy.from_yaml(RBAC.read_text()))
    assert shipped.denied("GET", path, query) is None
    text = RBAC.read_text().replace("resources: [pods/exec]\n    verbs: [create, get]",
                                    "resources: [pods/exec]\n    verbs: [create]")
    assert text != RBAC.read_text()
    refused = KubeRbacApp(None, RbacPolicy.from_yaml(text)).denied("GET", path, query)
    assert refused is not None and refused["code"] == 403
    assert 'cannot get resource "pods/exec" in API group "" in the namespace "kube-system"' in refused["message"]


def test_twin_up_refuses_an_rbac_file_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main
    assert main(["twin", "up", "--rbac", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "twin")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "twin").exists()


def test_a_refused_upgrade_is_told_from_a_broken_connection() -> None:
    """The client reports both as status 0; only the reason says the server answered (and how)."""
    from harness.faults.podexec import TRANSIENT_STATUSES, _handshake_status
    refused = kclient.ApiException(status=0, reason="Handshake status 403 Forbidden -+-+- {...}")
    broken = kclient.ApiException(status=0, reason="[Errno 111] Connection refused")
    busy = kclient.ApiException(status=0, reason="Handshake status 503 Service Unavailable")
    assert _handshake_status(refused) == 403 and 403 not in TRANSIENT_STATUSES
    assert _handshake_status(broken) == 0 and 0 in TRANSIENT_STATUSES        # still retried
    assert _handshake_status(busy) == 503 and 503 in TRANSIENT_STATUSES      # still retried
