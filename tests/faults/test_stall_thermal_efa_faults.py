"""replica-stall, gpu-thermal-throttle and efa-saturation against one twin in this process: each lands
through its real mechanism (the cgroup freezer from a node helper pod, dcgmi inject, nccl-tests pods driven by
exec), shows on the fleet, and its revert leaves the twin as it was (no frozen container, no injected field, no competing pod,
no owed revert in the journal)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client
from faultkit import run_context
from support.polling import wait_for

from harness.faults import FAULTS
from harness.faults.efa_saturation import EfaSaturationParams
from harness.faults.gpu_thermal_throttle import GpuThermalThrottleParams
from harness.faults.replica_stall import ReplicaStallParams
from harness.journal import owed_reverts
from harness.strict.params import NodeSelector
from harness.target.target import Target
from harness.twin.server import TwinHandle
from harness.twin.world import DCGM_FI_DEV_GPU_TEMP, DCGM_FI_DEV_SM_CLOCK

pytestmark = pytest.mark.slow


def _ctx(target: Target, tmp_path: Path, seed: int = 3):
    return run_context(target, tmp_path, seed=seed)


def test_thermal_throttle_injects_heat_and_clock_and_restores_them(target: Target, twin: TwinHandle, tmp_path: Path):
    ctx = _ctx(target, tmp_path)
    params = GpuThermalThrottleParams(node=NodeSelector(zone="us-east-2b", model="llama-13b-fp8"), gpu=3,
                                      temperature=95, sm_clock_mhz=1100)
    fault = FAULTS["gpu-thermal-throttle"](params, ctx)
    assert "-f 150 -v 95" in fault.plan()
    node = twin.world.nodes[fault.nodes[0].name]
    before = {g.index: (g.value(DCGM_FI_DEV_GPU_TEMP), g.value(DCGM_FI_DEV_SM_CLOCK)) for g in node.gpus}

    fault.inject()
    evidence = fault.await_landed(time.time() + 5)
    assert evidence and evidence["temperature"] == 95 and evidence["gpus"] == [3], evidence
    assert node.gpus[3].value(DCGM_FI_DEV_GPU_TEMP) == 95 and node.gpus[3].value(DCGM_FI_DEV_SM_CLOCK) <= 1200
    assert [g.index for g in node.gpus if g.value(DCGM_FI_DEV_GPU_TEMP) > 83] == [3]    # the other GPUs stay cool
    assert not any(g.throttled for g in node.gpus), "an injected temperature heats no real GPU"
    assert [o.fault for o in owed_reverts(ctx.journal.path)] == ["gpu-thermal-throttle"]

    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    wait_for(lambda: {g.index: (g.value(DCGM_FI_DEV_GPU_TEMP), g.value(DCGM_FI_DEV_SM_CLOCK)) for g in node.gpus}
             == before, 5, "every GPU back at its temperature and clock")


def test_replica_stall_freezes_the_chosen_pods_and_thaws_them(target: Target, twin: TwinHandle, tmp_path: Path):
    ctx = _ctx(target, tmp_path)
    fault = FAULTS["replica-stall"](ReplicaStallParams(model="llama-13b-fp8", zone="us-east-2a", count=2), ctx)
    fault.plan()
    pods = {p["pod"] for p in fault.pods}
    assert len(pods) == 2 and all(n.zone == "us-east-2a" for n in fault.nodes)
    serving = twin.twin.serving

    fault.inject()
    assert fault.await_landed(time.time() + 2)["pods"]
    frozen = twin.call(lambda: {p for r in serving.replicas.values() if r.stopped for p in r.pods})
    assert frozen == pods

    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    assert twin.call(lambda: [r.key for r in serving.replicas.values() if r.stopped]) == []
    fault.revert()      # idempotent


def _nccl_pods(core, namespace: str = "g7chaos") -> list:
    return core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=nccl-tests").items


def test_efa_saturation_mpi_job_spans_the_nodes_and_lands_on_busbw_and_counters(target: Target, twin: TwinHandle,
                                                                                tmp_path: Path):
    ctx = _ctx(target, tmp_path)
    fault = FAULTS["efa-saturation"](EfaSaturationParams(load=0.75), ctx)
    plan = fault.plan()
    assert len(fault.nodes) == 2 and not fault.use_mpijob and "sharing GPUs" in plan   # the TP pair holds every GPU
    nodes = [twin.world.nodes[n.name] for n in fault.nodes]
    errors = [sum(n.efa_counters.values()) for n in nodes]

    fault.inject()
    evidence = fault.await_landed(time.time() + 10)
    assert evidence and set(evidence["nodes"]) == {n.name for n in nodes}, evidence
    assert evidence["avg_bus_bandwidth_GBps"] > 0
    assert all(d["tx_bytes"] > 0 and d["rx_bytes"] > 0 for d in evidence["efa_counter_deltas"].values())
    assert all(0.7 < n.efa_load < 0.95 for n in nodes), [n.efa_load for n in nodes]
    wait_for(lambda: all(sum(n.efa_counters.values()) > c for n, c in zip(nodes, errors)), 5,
             "EFA error counters growing on both nodes")
    core = client.CoreV1Api(target.kube(fault.context))
    workers = [p for p in _nccl_pods(core) if p.metadata.name in fault.workers]
    assert sorted(p.spec.node_name for p in workers) == sorted(n.name for n in nodes)   # one worker per node
    log = core.read_namespaced_pod_log(fault.launcher, "g7chaos", container="launcher")
    assert "NET/OFI" in log and "# Avg bus bandwidth" in log

    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    wait_for(lambda: not _nccl_pods(core), 5, "the launcher and workers deleted")
    wait_for(lambda: all(n.efa_load == 0.0 for n in nodes), 5, "the fabric idle again")


def test_efa_saturation_is_not_landed_when_mpirun_cannot_reach_the_workers(target: Target, twin: TwinHandle,
                                                                          tmp_path: Path, monkeypatch):
    """Without the kubectl-exec agent mpirun tries ssh to the worker pods and fails: no bandwidth, not landed."""
    from harness.faults import efa_saturation as efa
    real = efa.nccl_command
    monkeypatch.setattr(efa, "nccl_command", lambda ranks, workers: [
        a for a in real(ranks, workers)[:2]] + [real(ranks, workers)[2].replace(f"--mca plm_rsh_agent {efa.KUBEXEC} ", "")])
    ctx = _ctx(target, tmp_path)
    fault = FAULTS["efa-saturation"](EfaSaturationParams(load=0.75), ctx)
    fault.plan()
    fault.inject()
    try:
        assert fault.await_landed(time.time() + 1.5) is None
        core = client.CoreV1Api(target.kube(fault.context))
        assert "ssh: Could not resolve hostname" in core.read_namespaced_pod_log(fault.launcher, "g7chaos")
    finally:
        fault.revert()


def test_efa_saturation_is_not_landed_when_the_efa_counters_do_not_move(target: Target, twin: TwinHandle,
                                                                       tmp_path: Path, monkeypatch):
    """Workers without an EFA device: NCCL runs over TCP sockets and reports a bandwidth, but the fabric's
    counters stay still, so the fault has not landed."""
    from harness.faults import efa_saturation as efa
    real = efa._worker_container

    def no_efa(image, gpus, share):
        container = real(image, gpus, share)
        for key in ("requests", "limits"):
            container["resources"][key].pop(efa.EFA)
        return container
    monkeypatch.setattr(efa, "_worker_container", no_efa)
    ctx = _ctx(target, tmp_path)
    fault = FAULTS["efa-saturation"](EfaSaturationParams(load=0.75), ctx)
    fault.plan()
    fault.inject()
    try:
        core = client.CoreV1Api(target.kube(fault.context))
        wait_for(lambda: "# Avg bus bandwidth" in core.read_namespaced_pod_log(fault.launcher, "g7chaos"), 5,
                 "the socket run reporting its bandwidth")
        assert fault.await_landed(time.time() + 1.0) is None
        assert all(twin.world.nodes[n.name].efa_load == 0.0 for n in fault.nodes)
    finally:
        fault.revert()


def test_efa_saturation_recover_from_the_journal_alone_deletes_the_job(target: Target, twin: TwinHandle,
                                                                      tmp_path: Path):
    ctx = _ctx(target, tmp_path)
    fault = FAULTS["efa-saturation"](EfaSaturationParams(load=0.75), ctx)
    fault.plan()
    fault.inject()
    core = client.CoreV1Api(target.kube(fault.context))
    wait_for(lambda: len(_nccl_pods(core)) == 3, 5, "the launcher and two workers created")
    owed = owed_reverts(ctx.journal.path)
    assert [o.fault for o in owed] == ["efa-saturation"]
    type(fault).revert_owed(target, owed[0].args)     # what `g7chaos recover` runs after a crash
    wait_for(lambda: not _nccl_pods(core), 5, "every pod of the job deleted")
    wait_for(lambda: all(twin.world.nodes[n.name].efa_load == 0.0 for n in fault.nodes), 5, "the fabric idle again")
