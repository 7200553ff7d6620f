"""replica-stall, gpu-thermal-throttle and efa-saturation against one twin in this process: each lands
through its real mechanism (the cgroup freezer from a node helper pod, dcgmi inject, nccl-tests pods driven by
exec), shows on the fleet, and its revert leaves the twin as it was (no frozen container, no injected field, no competing pod,
no owed revert in the journal)."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from faultkit import run_context, until as _until

from harness.faults import FAULTS
from harness.journal import owed_reverts
from harness.scenario.model import (EfaSaturationParams, GpuThermalThrottleParams, NodeSelector,
                                    ReplicaStallParams)
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
    before = {g.index: (g.fields[DCGM_FI_DEV_GPU_TEMP], g.fields[DCGM_FI_DEV_SM_CLOCK]) for g in node.gpus}

    fault.inject()
    evidence = fault.await_landed(time.time() + 5)
    assert evidence and evidence["temperature"] == 95 and evidence["gpus"] == [3], evidence
    assert node.gpus[3].fields[DCGM_FI_DEV_GPU_TEMP] == 95 and node.gpus[3].throttled
    assert node.gpus[3].fields[DCGM_FI_DEV_SM_CLOCK] <= 1200
    assert [g.index for g in node.gpus if g.throttled] == [3]       # the other GPUs stay cool
    assert [o.fault for o in owed_reverts(ctx.journal.path)] == ["gpu-thermal-throttle"]

    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    _until(lambda: {g.index: (g.fields[DCGM_FI_DEV_GPU_TEMP], g.fields[DCGM_FI_DEV_SM_CLOCK]) for g in node.gpus}
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


def test_efa_saturation_loads_the_pairs_fabric_and_leaves_nothing_behind(target: Target, twin: TwinHandle,
                                                                          tmp_path: Path):
    ctx = _ctx(target, tmp_path)
    fault = FAULTS["efa-saturation"](EfaSaturationParams(load=0.75), ctx)
    plan = fault.plan()
    assert "-g 6" in plan and len(fault.nodes) == 2
    nodes = [twin.world.nodes[n.name] for n in fault.nodes]
    counters = [sum(n.efa_counters.values()) for n in nodes]

    fault.inject()
    evidence = fault.await_landed(time.time() + 10)
    assert evidence and set(evidence["nodes"]) == {n.name for n in nodes}, fault.run_errors
    assert all(0.7 < n.efa_load < 0.95 for n in nodes), [n.efa_load for n in nodes]
    _until(lambda: all(sum(n.efa_counters.values()) > c for n, c in zip(nodes, counters)), 5,
           "EFA error counters growing on both nodes")
    core = client.CoreV1Api(target.kube(fault.context))
    placed = {p.spec.node_name for p in core.list_namespaced_pod("default", label_selector="app.kubernetes.io/name=nccl-tests").items}
    assert placed == {n.name for n in nodes}

    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    _until(lambda: not core.list_namespaced_pod("default", label_selector="app.kubernetes.io/name=nccl-tests").items, 5,
           "the nccl-tests pods deleted")
    _until(lambda: all(n.efa_load == 0.0 for n in nodes), 5, "the fabric idle again")
