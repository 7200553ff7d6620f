"""The twin's EFA fabric: which nccl-tests runs load it, and the counters a real node would show.

Stepped by hand on a seeded fleet (the Rig of test_fleet): pods are written into the store as the API
would hold them, the launcher's mpirun runs under the mpi-launcher controller, and one-process runs go
through the same exec handler the API server calls.
"""
from __future__ import annotations

import asyncio

import pytest
from test_fleet import Rig

from harness.faults.efa_saturation import (HW_COUNTERS, TRAFFIC_COUNTERS, bus_bandwidths, launcher_pod,
                                           nccl_command, parse_hw_counters, worker_pod)
from harness.twin import hardware
from harness.twin.fleet.handlers import FleetHandlers
from harness.twin.fleet.nccl import SATURATING_LOAD
from harness.twin.fleet.runtime import PODS
from harness.twin.serving.latency import EFA_NO_PLACEMENT_GROUP_BW_SHARE
from harness.twin.world import EFA_COUNTERS

A = "g7-use2a"
NS = "g7chaos"


def _tp_nodes(rig: Rig) -> list:
    return sorted((n for n in rig.world.nodes.values() if n.nodegroup == f"{A}-70b-tp"), key=lambda n: n.name)


def _create(rig: Rig, manifest: dict, node: str | None = None) -> None:
    """What the API server and the scheduler leave in the store: the pod bound to its node."""
    if node is None:
        node = manifest["spec"].get("nodeSelector", {}).get("kubernetes.io/hostname") or _tp_nodes(rig)[0].name
    manifest["spec"]["nodeName"] = node
    manifest.setdefault("status", {})["phase"] = "Pending"
    rig.store(A).create(PODS, manifest, actor="test")


def _job(rig: Rig, ranks: int, on: list[str], efa: bool = True) -> str:
    workers = [f"w{i}" for i in range(len(on))]
    for name, node in zip(workers, on):
        manifest = worker_pod(name, NS, node, "nccl-tests", 0, ranks)
        if not efa:
            manifest["spec"]["containers"][0]["resources"] = {}
        _create(rig, manifest)
    _create(rig, launcher_pod("launcher", NS, "nccl-tests", "kubectl", nccl_command(ranks, workers)))
    return "launcher"


def _exec(rig: Rig, pod: str, argv: list[str]) -> tuple[int, str]:
    result = asyncio.run(FleetHandlers(rig.fleet, A).exec(NS, pod, None, argv))
    return result.exit_code, result.stdout.decode()


def _log(rig: Rig, pod: str) -> str:
    return FleetHandlers(rig.fleet, A).log(NS, pod)


def parse_busbw(log: str) -> float:
    return bus_bandwidths(log)[-1]


def test_one_process_all_reduce_perf_stays_on_its_node_and_moves_no_efa_counter():
    rig = Rig()
    node = _tp_nodes(rig)[0]
    _create(rig, worker_pod("solo", NS, node.name, "nccl-tests", 0, 8))
    rig.run(0.2)
    before = ({**node.efa_counters}, {**node.efa_traffic})
    code, out = _exec(rig, "solo", ["all_reduce_perf", "-b", "8", "-e", "128M", "-f", "2", "-g", "8", "-n", "20"])
    rig.run(1.0)
    assert code == 0 and "# Avg bus bandwidth" in out
    assert node.efa_load == 0.0 and (node.efa_counters, node.efa_traffic) == before
    # a process that can open no GPU fails as CUDA does
    bare = worker_pod("bare", NS, node.name, "nccl-tests", 0, 8)
    bare["spec"]["containers"][0]["env"] = []
    _create(rig, bare)
    rig.run(0.2)
    code, _ = _exec(rig, "bare", ["all_reduce_perf", "-g", "1", "-n", "1"])
    assert code == 1


def test_mpirun_across_the_tp_nodes_loads_each_fabric_in_proportion_to_its_ranks():
    rig = Rig()
    nodes = _tp_nodes(rig)
    launcher = _job(rig, 3, [n.name for n in nodes])
    rig.run(0.5)
    assert [n.efa_load for n in nodes] == [SATURATING_LOAD * 3 / 8] * 2
    assert all(n.efa_traffic["tx_bytes"] > 0 and n.efa_traffic["rx_bytes"] > 0 for n in nodes)
    assert all(sum(n.efa_counters.values()) == 0 for n in nodes)     # below the congestion point: no errors
    rig.run(1.5)
    assert "# Avg bus bandwidth" in _log(rig, launcher) and "NET/OFI" in _log(rig, launcher)
    rig.store(A).delete(PODS, NS, launcher, actor="test")
    rig.run(0.2)
    assert [n.efa_load for n in nodes] == [0.0, 0.0]


def test_six_ranks_per_node_congest_the_fabric_and_the_error_counters_climb():
    rig = Rig()
    nodes = _tp_nodes(rig)
    _job(rig, 6, [n.name for n in nodes])
    rig.run(1.0)
    assert all(n.efa_load > 0.7 for n in nodes)
    assert all(n.efa_counters["retrans_pkts"] > 0 for n in nodes)


def test_mpirun_with_every_rank_on_one_node_or_without_efa_devices_leaves_the_fabric_idle():
    rig = Rig()
    nodes = _tp_nodes(rig)
    launcher = _job(rig, 3, [nodes[0].name, nodes[0].name])
    rig.run(1.5)
    assert "# Avg bus bandwidth" in _log(rig, launcher)
    assert all(n.efa_load == 0.0 and n.efa_traffic["tx_bytes"] == 0 for n in nodes)

    rig = Rig()
    nodes = _tp_nodes(rig)
    launcher = _job(rig, 6, [n.name for n in nodes], efa=False)
    rig.run(1.5)
    assert "NET/Socket" in _log(rig, launcher) and "# Avg bus bandwidth" in _log(rig, launcher)
    assert all(n.efa_load == 0.0 and n.efa_traffic["tx_bytes"] == 0 for n in nodes)


def test_hw_counters_read_as_the_kernel_names_them_on_every_efa_device():
    rig = Rig()
    nodes = _tp_nodes(rig)
    _job(rig, 6, [n.name for n in nodes])
    rig.run(1.0)
    code, out = _exec(rig, "w0", ["/bin/sh", "-c", f"grep -H . {HW_COUNTERS}"])
    assert code == 0
    devices = {line.split("/")[4] for line in out.splitlines()}
    assert len(devices) == hardware.INSTANCE_TYPES["g7.48xlarge"].efa_interfaces
    totals = parse_hw_counters(out)
    assert set(totals) == {*EFA_COUNTERS, *TRAFFIC_COUNTERS, "tx_pkts", "rx_pkts"}
    assert "rdma_read_resp_err" not in totals and {"rdma_read_wr_err", "rdma_write_wr_err"} <= set(totals)
    assert totals["tx_bytes"] == nodes[0].efa_traffic["tx_bytes"]


def test_outside_a_cluster_placement_group_the_same_job_reports_half_the_bus_bandwidth():
    def busbw(profile: str) -> float:
        rig = Rig(profile)
        launcher = _job(rig, 6, [n.name for n in _tp_nodes(rig)])
        rig.run(1.5)
        assert all(n.efa_load > 0.7 for n in _tp_nodes(rig))     # the fabric is loaded either way
        return parse_busbw(_log(rig, launcher))

    inside, spread = busbw("article"), busbw("no-placement-group")
    assert spread == pytest.approx(inside * EFA_NO_PLACEMENT_GROUP_BW_SHARE, rel=0.01) and spread < inside


def test_mpirun_without_a_delivered_rsh_agent_starts_no_rank():
    """The kubectl-exec agent is not in the nccl-tests image: a launcher that mounts no volume holding it fails
    like mpirun whose agent is missing, and no fabric is loaded."""
    rig = Rig()
    nodes = _tp_nodes(rig)
    workers = ["w0", "w1"]
    for name, node in zip(workers, nodes):
        _create(rig, worker_pod(name, NS, node.name, "nccl-tests", 0, 6))
    launcher = launcher_pod("launcher", NS, "nccl-tests", "kubectl", nccl_command(6, workers))
    launcher["spec"]["containers"][0].pop("volumeMounts")
    _create(rig, launcher)
    rig.run(1.5)
    assert "kubexec.sh: not found" in _log(rig, "launcher") and "# Avg bus bandwidth" not in _log(rig, "launcher")
    assert all(n.efa_load == 0.0 for n in nodes)
