"""A small hand-built cluster served by the real Kubernetes API app on loopback.

Two g7.48xlarge nodes, the kube-system DaemonSets with one pod per node, and a Triton Deployment
(ReplicaSet, four pods, two per node) under a PodDisruptionBudget of maxUnavailable 1, so that draining
one node can only proceed one pod at a time.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import kubernetes
import pytest

from harness.twin.kube import objects as o
from harness.twin.kube.api import build_kube_app
from harness.twin.kube.exec import ExecResult
from harness.twin.kube.kubeconfig import write_kubeconfig
from harness.twin.kube.store import ObjectStore, resource
from harness.twin.kube.testing import serve_in_thread

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
NODE_A = o.node_name_for_ip("10.0.1.10")
NODE_B = o.node_name_for_ip("10.0.2.20")


@dataclass
class Fleet:
    store: ObjectStore
    url: str
    kubeconfig: Path
    home: Path
    exec_calls: list[tuple[str, str, str | None, list[str]]] = field(default_factory=list)
    proxy_calls: list[tuple[str, str, int | None, str]] = field(default_factory=list)

    def kubectl(self, *args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "KUBECONFIG": str(self.kubeconfig)}
        proc = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen:
        env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "KUBECONFIG": str(self.kubeconfig)}
        return subprocess.Popen([KUBECTL, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def client(self) -> kubernetes.client.ApiClient:
        cfg = kubernetes.client.Configuration()
        cfg.host = self.url
        cfg.api_key = {"authorization": "Bearer test"}
        return kubernetes.client.ApiClient(cfg)


def populate(store: ObjectStore) -> None:
    """Create the small fleet straight in the store (what the twin's assembly does for the real fleet)."""
    for ns in ("default", "kube-system", "inference"):
        store.create(resource("namespaces"), o.namespace(ns))
    nodes = []
    for name, ip, zone in ((NODE_A, "10.0.1.10", "us-east-2a"), (NODE_B, "10.0.2.20", "us-east-2b")):
        n = o.node(name, instance_id=f"i-0{ip.replace('.', '')}abc", instance_type="g7.48xlarge", zone=zone,
                   region="us-east-2", nodegroup="g7-use2a-13b", capacity_type="SPOT", private_ip=ip, gpus=8, efa=4,
                   cluster="g7-use2a")
        nodes.append(store.create(resource("nodes"), n))
    for ds_name, selector in (("dcgm-server", {"k8s-app": "dcgm-server"}),
                              ("nvidia-device-plugin", {"name": "nvidia-device-plugin-ds"})):
        ds = o.daemonset(ds_name, "kube-system", selector=selector, desired=2,
                         containers=[o.container(ds_name, f"public.ecr.aws/eks/{ds_name}:v1")])
        ds = store.create(resource("daemonsets.apps"), ds)
        for n in nodes:
            ip = n["status"]["addresses"][0]["address"]
            store.create(resource("pods"), o.pod_for(ds, o.generated_pod_name(ds_name), node_name=n["metadata"]["name"],
                                                     pod_ip=ip, host_ip=ip))
    dep = o.deployment("triton-13b", "inference", selector={"app": "triton", "model": "llama-13b-fp8"}, replicas=4,
                       containers=[o.container("triton", o.TRITON_IMAGE, gpus=1, ports=[("http", 8000)])])
    dep = store.create(resource("deployments.apps"), dep)
    rs = store.create(resource("replicasets.apps"), o.replicaset(dep))
    i = 0
    for n in nodes:
        for gpu in (0, 1):
            i += 1
            store.create(resource("pods"), o.pod_for(rs, f"triton-13b-{i}", node_name=n["metadata"]["name"],
                                                     pod_ip=f"10.0.9.{i}", host_ip=n["status"]["addresses"][0]["address"],
                                                     annotations={"twin.g7chaos.io/gpus": str(gpu)}))
    store.create(resource("poddisruptionbudgets.policy"),
                 o.poddisruptionbudget("triton-13b", "inference", selector={"app": "triton"}, max_unavailable=1))


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    store = ObjectStore("g7-use2a")
    populate(store)
    calls: list = []
    proxied: list = []

    async def exec_handler(namespace: str, pod: str, container: str | None, command: list[str]) -> ExecResult:
        calls.append((namespace, pod, container, command))
        if command[:1] == ["dcgmi"]:
            return ExecResult(0, b"Successfully injected field info.\n", b"")
        if command[:1] == ["fail"]:
            return ExecResult(3, b"partial\n", b"boom\n")
        return ExecResult(127, b"", f"{command[0]}: command not found\n".encode())

    async def proxy_handler(namespace: str, pod: str, port: int | None, path: str) -> tuple[int, str, bytes]:
        proxied.append((namespace, pod, port, path))
        return 200, "text/plain; version=0.0.4", b'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{gpu="0"} 0\n'

    app = build_kube_app(store, exec_handler=exec_handler, proxy_handler=proxy_handler, deletion_grace_seconds=0.2)
    url, stop = serve_in_thread(app)
    home = tmp_path / "home"
    home.mkdir()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"g7-use2a": url})
    f = Fleet(store, url, kubeconfig, home, calls, proxied)
    try:
        yield f
    finally:
        stop()
