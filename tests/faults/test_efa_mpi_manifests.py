"""What efa-saturation sends to the API server, read without a cluster: the MPIJob (kubeflow.org/v2beta1)
under the MPI operator, else the launcher and worker pods; and how it finds the operator by discovery.

The MPIJob path runs against recording stand-ins for the discovery and custom-objects APIs (the twin runs no
MPI operator): create on inject, delete on revert and from the journal alone."""
from __future__ import annotations

import random
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes import client

from harness.faults import FAULTS, RunContext
from harness.faults import efa_saturation as efa
from harness.faults.efa_saturation import EfaSaturationParams
from harness.journal import Journal, owed_reverts
from harness.observe import Timeline


NODES = ["ip-10-0-71.us-east-2.compute.internal", "ip-10-0-72.us-east-2.compute.internal"]


def test_worker_requests_an_efa_device_and_is_pinned_to_its_node():
    pod = efa.worker_pod("w0", "g7chaos", NODES[0], "img", gpus=6, share_gpus=6)
    container = pod["spec"]["containers"][0]
    assert pod["metadata"]["namespace"] == "g7chaos"
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": NODES[0]}
    assert container["resources"]["requests"] == {efa.EFA: "1", efa.GPU: "6"} == container["resources"]["limits"]
    shared = efa.worker_pod("w0", "g7chaos", NODES[0], "img", gpus=0, share_gpus=6)["spec"]["containers"][0]
    assert shared["resources"]["requests"] == {efa.EFA: "1"}
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "0,1,2,3,4,5"} in shared["env"]


def test_launcher_reaches_the_workers_through_the_kubectl_exec_agent():
    command = efa.nccl_command(6, ["w0", "w1"])
    assert command[:2] == ["/bin/sh", "-c"] and command[2].startswith("while :; do mpirun ")
    argv = shlex.split(command[2][len("while :; do "):-len("; done")])
    assert argv[argv.index("plm_rsh_agent") + 1] == efa.KUBEXEC
    assert argv[argv.index("-H") + 1] == "w0:6,w1:6" and argv[argv.index("-np") + 1] == "12"
    assert argv[argv.index(efa.ALL_REDUCE_PERF) + 1:][:12] == ["-b", "8", "-e", "128M", "-f", "2", "-g", "1",
                                                                "-c", "1", "-n", str(efa.RUN_ITERS)]
    launcher = efa.launcher_pod("l", "g7chaos", "img", "kubectl-img", command)
    spec = launcher["spec"]
    assert spec["serviceAccountName"] == efa.LAUNCHER_SA
    install = spec["initContainers"][0]["command"][2]
    assert "kubectl" in install and efa.KUBEXEC in install
    assert 'kubectl exec "$POD_NAME" -- /bin/sh -c "$*"' in efa.KUBEXEC_SCRIPT
    assert "resources" not in spec["containers"][0]          # the launcher holds no GPU and no EFA device


def test_mpijob_has_one_worker_per_node_requesting_efa():
    job = efa.mpijob("j", "g7chaos", NODES, "img", gpus=0, share_gpus=6, ranks_per_node=6)
    assert job["apiVersion"] == "kubeflow.org/v2beta1" and job["kind"] == "MPIJob"
    assert job["spec"]["slotsPerWorker"] == 6 and job["spec"]["runPolicy"]["cleanPodPolicy"] == "All"
    worker = job["spec"]["mpiReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 2
    spec = worker["template"]["spec"]
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": "kubernetes.io/hostname", "operator": "In", "values": NODES}]
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"].items() <= worker["template"]["metadata"]["labels"].items()
    assert spec["containers"][0]["resources"]["requests"][efa.EFA] == "1"
    launcher = job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]["command"][2]
    assert "plm_rsh_agent" not in launcher and "-H" not in launcher     # the operator gives mpirun its hostfile


def _discovery(groups: dict[str, list[str]], resources: list[str]):
    versions = SimpleNamespace(groups=[SimpleNamespace(name=g, versions=[SimpleNamespace(version=v) for v in vs])
                                       for g, vs in groups.items()])
    return (lambda api: SimpleNamespace(get_api_versions=lambda: versions),
            SimpleNamespace(resources=[SimpleNamespace(name=r) for r in resources]))


@pytest.mark.parametrize("groups,resources,installed", [
    ({"kubeflow.org": ["v2beta1"]}, ["mpijobs", "mpijobs/status"], True),
    ({"kubeflow.org": ["v1"]}, ["mpijobs"], False),            # the old operator: another API
    ({"apps": ["v1"]}, [], False),
    ({"kubeflow.org": ["v2beta1"]}, ["pytorchjobs"], False),
])
def test_the_mpi_operator_is_found_by_api_discovery(monkeypatch, groups, resources, installed):
    apis, listed = _discovery(groups, resources)
    monkeypatch.setattr(efa.client, "ApisApi", apis)
    monkeypatch.setattr(efa.client, "CustomObjectsApi", lambda api: SimpleNamespace(get_api_resources=lambda g, v: listed))
    assert efa.mpi_operator_installed(object()) is installed


class _Recorder:
    def __init__(self):
        self.calls: list[tuple] = []

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.calls.append(("create", group, version, namespace, plural, body))

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, body=None):
        self.calls.append(("delete", group, version, namespace, plural, name))


def test_mpijob_path_creates_the_job_and_both_reverts_delete_it(monkeypatch, tmp_path: Path):
    recorder = _Recorder()
    monkeypatch.setattr(efa.client, "CustomObjectsApi", lambda api: recorder)
    target = SimpleNamespace(kube=lambda context: object(), spec=SimpleNamespace(harness_namespace="chaos"))
    ctx = RunContext(target=target, journal=Journal(tmp_path / "j.jsonl"), timeline=Timeline(), rng=random.Random(1))
    fault = FAULTS["efa-saturation"](EfaSaturationParams(load=0.75), ctx)
    # what plan() resolves on a cluster with the operator and a two-node group whose GPUs are all held
    fault.context, fault.group, fault.namespace, fault.use_mpijob = "ctx", "llama-70b-0", "chaos", True
    fault.nodes = [SimpleNamespace(name=n) for n in NODES]
    fault.ranks, fault.gpu_request, fault.job, fault.launcher, fault.workers = 6, 0, "g7chaos-nccl-x", None, []
    fault.inject()
    (kind, group, version, namespace, plural, body), = recorder.calls
    assert (kind, group, version, namespace, plural) == ("create", "kubeflow.org", "v2beta1", "chaos", "mpijobs")
    assert body["metadata"]["name"] == "g7chaos-nccl-x"
    owed = owed_reverts(ctx.journal.path)
    assert owed[0].args["mpijob"] == "g7chaos-nccl-x"
    type(fault).revert_owed(target, owed[0].args)            # `g7chaos recover` after a crash
    fault.revert()
    assert [c[0] for c in recorder.calls] == ["create", "delete", "delete"]
    assert recorder.calls[1][1:] == ("kubeflow.org", "v2beta1", "chaos", "mpijobs", "g7chaos-nccl-x")
    assert owed_reverts(ctx.journal.path) == []


def test_a_deleted_mpijob_is_no_error_for_the_revert(monkeypatch):
    class Gone(_Recorder):
        def delete_namespaced_custom_object(self, *a, **k):
            raise client.ApiException(status=404)
    monkeypatch.setattr(efa.client, "CustomObjectsApi", lambda api: Gone())
    target = SimpleNamespace(kube=lambda context: object())
    efa.EfaSaturation.revert_owed(target, {"context": "c", "namespace": "chaos", "mpijob": "j", "pods": []})


def test_landing_needs_a_bus_bandwidth_line_over_efa_and_counters_parse_per_device():
    assert efa.OFI_EFA_RE.search("NCCL INFO NET/OFI Selected Provider is efa (found 4 nics)")
    assert not efa.OFI_EFA_RE.search("NCCL INFO NET/Socket : Using [0]eth0")
    assert efa.bus_bandwidths("# Avg bus bandwidth    : 41.20 \n") == [41.2]
    assert efa.bus_bandwidths("#  Rank  0 Group  0 Pid 1 on w0\n") == []
    text = ("/sys/class/infiniband/rdmap16s27/ports/1/hw_counters/tx_bytes:100\n"
            "/sys/class/infiniband/rdmap17s27/ports/1/hw_counters/tx_bytes:50\n")
    assert efa.parse_hw_counters(text) == {"tx_bytes": 150}
