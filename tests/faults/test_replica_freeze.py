"""replica-stall's hang against one twin in this process: the kernel's rules, the freeze from the node, and the proof.

`kill -STOP 1` by exec inside the container is dropped by the kernel (the replica keeps serving, `kill` exits 0);
the fault freezes the serving container's cgroup from a privileged helper pod on its node, lands only when the
cgroup reads `frozen 1` and the pod's readiness endpoint gives no answer through the API server's pod proxy, and
its revert (in-process or from the journal alone after a crash) thaws it and leaves no helper behind. A freeze that
did not take (an exec that exits 0 and changes nothing, a helper that is not privileged, a cgroup that is not there)
is never reported as landed.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from faultkit import run_context
from support.polling import wait_for
from kubernetes import client

from harness.faults import FAULTS, FaultError
from harness.faults import replica_stall
from harness.faults.podexec import pod_exec
from harness.faults.replica_stall import ReplicaStallParams
from harness.journal import owed_reverts
from harness.target.target import Target
from harness.twin.fleet import cgroups as twin_cgroups
from harness.twin.kube.store import resource
from harness.twin.server import TwinHandle

pytestmark = pytest.mark.slow

MODEL = "llama-13b-fp8"
HELPERS = "app.kubernetes.io/name=g7chaos-freeze"


def _fault(target: Target, tmp_path: Path, **params):
    ctx = run_context(target, tmp_path)
    fault = FAULTS["replica-stall"](ReplicaStallParams(model=MODEL, zone="us-east-2a", **params), ctx)
    fault.plan()
    return ctx, fault


def _stopped(twin: TwinHandle) -> set[str]:
    return twin.call(lambda: set(twin.twin.serving.stopped_pods))


def _helpers(target: Target, context: str) -> list[str]:
    core = client.CoreV1Api(target.kube(context))
    return [p.metadata.name for p in core.list_namespaced_pod(target.spec.harness_namespace, label_selector=HELPERS).items]


def _probe(target: Target, p: dict, timeout_s: float = 2.0) -> tuple[bool, str]:
    return replica_stall.probe_silent(target, p["context"], p["namespace"], p["pod"], 8000, "v2/health/ready", timeout_s)


def test_kill_stop_1_from_inside_the_container_is_dropped_and_the_replica_keeps_serving(target: Target,
                                                                                       twin: TwinHandle,
                                                                                       tmp_path: Path):
    _ctx, fault = _fault(target, tmp_path)
    p = fault.pods[0]
    api = target.kube(p["context"])
    for sig in ("-STOP", "-KILL", "-CONT"):
        out = pod_exec(api, p["namespace"], p["pod"], ["kill", sig, "1"])
        assert out.exit_code == 0, out          # kill(2) succeeds: the init simply never sees it
    assert _stopped(twin) == set()
    assert _probe(target, p) == (False, "200")  # the server still answers its readiness


def test_the_freeze_lands_silences_the_replica_and_the_thaw_brings_it_back(target: Target, twin: TwinHandle,
                                                                          tmp_path: Path):
    ctx, fault = _fault(target, tmp_path, count=2)
    pods = {p["pod"] for p in fault.pods}
    fault.inject()
    evidence = fault.await_landed(time.time() + 10)
    assert evidence and evidence["source"] == "cgroup-freezer", evidence
    for key, seen in evidence["pods"].items():
        assert seen["cgroup_events"] == "frozen 1" and seen["cgroup"].endswith(".scope"), seen
        assert "answered 200 before the freeze" in seen["readiness"] and "no answer within" in seen["readiness"]
    assert _stopped(twin) == pods
    context = fault.pods[0]["context"]
    helpers = client.CoreV1Api(target.kube(context)).list_namespaced_pod(target.spec.harness_namespace,
                                                                         label_selector=HELPERS).items
    assert helpers and {h.spec.node_name for h in helpers} == {p["node"] for p in fault.pods}
    spec = helpers[0].spec
    assert spec.containers[0].security_context.privileged and spec.volumes[0].host_path.path == "/sys/fs/cgroup"
    assert [o.fault for o in owed_reverts(ctx.journal.path)] == ["replica-stall"]

    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    assert _stopped(twin) == set()
    assert all(_probe(target, p) == (False, "200") for p in fault.pods)
    wait_for(lambda: _helpers(target, context) == [], 5, "every helper pod deleted")
    fault.revert()      # idempotent


def test_an_exec_that_exits_0_and_freezes_nothing_is_not_landed(target: Target, twin: TwinHandle, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    """The old mechanism as the freeze: `kill -STOP 1` in the serving pod exits 0 and the kernel drops it."""
    ctx, fault = _fault(target, tmp_path)
    p = fault.pods[0]

    def stop_from_inside(target_, context, namespace, helper, path, value):
        out = pod_exec(target_.kube(context), p["namespace"], p["pod"], ["kill", "-STOP" if value else "-CONT", "1"])
        assert out.exit_code == 0
    monkeypatch.setattr(replica_stall, "write_freeze", stop_from_inside)
    fault.inject()
    assert fault.await_landed(time.time() + 1.5) is None
    assert _stopped(twin) == set()
    monkeypatch.undo()
    fault.revert()
    assert owed_reverts(ctx.journal.path) == [] and _helpers(target, p["context"]) == []


def test_a_helper_that_is_not_privileged_cannot_freeze_and_nothing_lands(target: Target, twin: TwinHandle,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    ctx, fault = _fault(target, tmp_path)
    manifest = replica_stall.helper_manifest

    def unprivileged(*args, **kwargs):
        pod = manifest(*args, **kwargs)
        pod["spec"]["containers"][0]["securityContext"] = {"privileged": False}
        return pod
    monkeypatch.setattr(replica_stall, "helper_manifest", unprivileged)
    with pytest.raises(FaultError, match="Permission denied"):
        fault.inject()
    assert fault.check_landed() is None and _stopped(twin) == set()
    fault.revert()
    assert owed_reverts(ctx.journal.path) == [] and _helpers(target, fault.pods[0]["context"]) == []


def test_a_cgroup_path_that_is_not_there_is_refused_not_landed(target: Target, twin: TwinHandle, tmp_path: Path):
    ctx, fault = _fault(target, tmp_path)
    fault.pods[0]["cgroups"] = ["kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podnope.slice/"
                                "cri-containerd-0000.scope"]
    with pytest.raises(FaultError, match="no cgroup"):
        fault.inject()
    assert fault.check_landed() is None and _stopped(twin) == set()
    fault.revert()
    assert owed_reverts(ctx.journal.path) == []


def test_recover_thaws_from_the_journal_alone_after_a_crash(target: Target, twin: TwinHandle, tmp_path: Path):
    """The run dies with the replica frozen and its helper gone: the journal's entry makes a new helper and thaws."""
    ctx, fault = _fault(target, tmp_path)
    fault.inject()
    assert fault.await_landed(time.time() + 10)
    context = fault.pods[0]["context"]
    core = client.CoreV1Api(target.kube(context))
    for name in _helpers(target, context):     # the crashed run's helper went (deadline, someone cleaned up)
        core.delete_namespaced_pod(name, target.spec.harness_namespace, grace_period_seconds=0)
    wait_for(lambda: _helpers(target, context) == [], 5, "the old helper gone")
    assert _stopped(twin) == {fault.pods[0]["pod"]}      # the freeze outlives its helper

    owed = owed_reverts(ctx.journal.path)
    assert [o.fault for o in owed] == ["replica-stall"]
    for o in owed:                              # what `g7chaos recover` does, from the journal's arguments alone
        FAULTS[o.fault].revert_owed(target, o.args)
    assert _stopped(twin) == set()
    assert _probe(target, fault.pods[0]) == (False, "200")
    wait_for(lambda: _helpers(target, context) == [], 5, "the recovery helper deleted")


def test_the_harness_names_the_cgroup_the_node_gives_the_container(target: Target, twin: TwinHandle):
    """kubelet (systemd driver) + containerd naming, both QoS layouts: what the harness computes is a cgroup of the
    node's tree, and a Guaranteed pod's slice sits directly under kubepods.slice."""
    store = twin.world.clusters["g7-use2a"].store
    pods = twin.call(lambda: [p for p in store.iter_raw(resource("pods"))
                              if (p["metadata"].get("labels") or {}).get("app") == "triton"
                              and (p.get("status") or {}).get("phase") == "Running"])
    assert pods
    raw = pods[0]
    cs = raw["status"]["containerStatuses"][0]
    for qos in ("Burstable", "BestEffort", "Guaranteed"):
        shaped = {**raw, "status": {**raw["status"], "qosClass": qos}}
        ours = replica_stall.cgroup_candidates(qos, raw["metadata"]["uid"], cs["containerID"])[0]
        assert list(twin_cgroups.container_scopes(shaped)) == [ours]
        uid = raw["metadata"]["uid"].replace("-", "_")
        if qos == "Guaranteed":
            assert ours.startswith(f"kubepods.slice/kubepods-pod{uid}.slice/cri-containerd-")
        else:
            assert ours.startswith(f"kubepods.slice/kubepods-{qos.lower()}.slice/kubepods-{qos.lower()}-pod{uid}.slice/")
    with pytest.raises(FaultError, match="containerd"):
        replica_stall.cgroup_candidates("Burstable", raw["metadata"]["uid"], "docker://abc")


def test_the_node_hierarchy_is_read_only_through_a_read_only_mount(target: Target, twin: TwinHandle, tmp_path: Path):
    """What a helper sees: the container's cgroup.events through the mount, and no write through a read-only one."""
    _ctx, fault = _fault(target, tmp_path)
    p = fault.pods[0]
    namespace = target.spec.harness_namespace
    core = client.CoreV1Api(target.kube(p["context"]))
    manifest = replica_stall.helper_manifest("g7chaos-freeze-readonly", namespace, p["node"], "busybox", "ro-test")
    manifest["spec"]["containers"][0]["volumeMounts"][0]["readOnly"] = True
    core.create_namespaced_pod(namespace, manifest)
    try:
        replica_stall._await_running(core, namespace, "g7chaos-freeze-readonly", time.time() + 10)
        path = replica_stall.find_cgroup(target, p["context"], namespace, "g7chaos-freeze-readonly", p["cgroups"])
        assert path == p["cgroups"][0]          # the systemd layout: EKS AL2023's kubelet
        events = replica_stall.read_events(target, p["context"], namespace, "g7chaos-freeze-readonly", path)
        assert events == {"populated": "1", "frozen": "0"}
        with pytest.raises(FaultError, match="Read-only file system"):
            replica_stall.write_freeze(target, p["context"], namespace, "g7chaos-freeze-readonly", path, 1)
        assert _stopped(twin) == set()
    finally:
        core.delete_namespaced_pod("g7chaos-freeze-readonly", namespace, grace_period_seconds=0)
    wait_for(lambda: _helpers(target, p["context"]) == [], 5, "the read-only helper deleted")


def test_container_is_a_hang_mode_parameter_and_mode_io_refuses_it():
    from pydantic import ValidationError
    assert ReplicaStallParams(mode="mid-stream", container="triton").container == "triton"
    with pytest.raises(ValidationError, match="container applies to the hang modes"):
        ReplicaStallParams(mode="io", container="triton")


def test_frozen_1_alone_is_not_landed_while_the_replica_still_answers(target: Target, twin: TwinHandle,
                                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Both legs are needed: the kernel's `frozen 1` with a readiness endpoint that still answers is no hang."""
    ctx, fault = _fault(target, tmp_path)
    fault.inject()
    monkeypatch.setattr(replica_stall, "probe_silent", lambda *args, **kwargs: (False, "200"))
    assert fault.await_landed(time.time() + 1.0) is None
    assert _stopped(twin) == {fault.pods[0]["pod"]}          # the freeze itself is in place
    monkeypatch.undo()
    assert fault.await_landed(time.time() + 5)
    fault.revert()
    assert owed_reverts(ctx.journal.path) == [] and _stopped(twin) == set()
