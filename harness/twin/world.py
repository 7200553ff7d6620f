"""The physical and logical state of the twin: the one place every part of the twin reads and writes.

Kubernetes-visible state lives in each cluster's ObjectStore (what the API serves); AWS records live
in moto's backends; everything that neither API shows directly lives here: GPUs with their DCGM
field caches, the driver and device-plugin start-up, EFA fabric load and counters, power and network
reachability, and the links node <-> instance <-> replicas.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from harness.twin import hardware
from harness.twin.clock import TwinClock
from harness.twin.kube.store import ObjectStore
from harness.twin.profiles import Behaviour

# DCGM field ids (dcgm_fields.h)
DCGM_FI_DEV_SM_CLOCK = 100
DCGM_FI_DEV_GPU_TEMP = 150
DCGM_FI_DEV_POWER_USAGE = 155
DCGM_FI_DEV_GPU_UTIL = 203
DCGM_FI_DEV_XID_ERRORS = 230
DCGM_FI_DEV_ECC_SBE_VOL_TOTAL = 310
DCGM_FI_DEV_ECC_DBE_VOL_TOTAL = 311
DCGM_FI_DEV_ECC_DBE_AGG_TOTAL = 319   # trips DCGM's double-bit policy; `dcgmi test --inject -f 319`

DCGM_FIELD_NAMES = {
    DCGM_FI_DEV_SM_CLOCK: "DCGM_FI_DEV_SM_CLOCK",
    DCGM_FI_DEV_GPU_TEMP: "DCGM_FI_DEV_GPU_TEMP",
    DCGM_FI_DEV_POWER_USAGE: "DCGM_FI_DEV_POWER_USAGE",
    DCGM_FI_DEV_GPU_UTIL: "DCGM_FI_DEV_GPU_UTIL",
    DCGM_FI_DEV_XID_ERRORS: "DCGM_FI_DEV_XID_ERRORS",
    DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    DCGM_FI_DEV_ECC_DBE_AGG_TOTAL: "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
}

# FIDELITY EFA-2: counters of the kernel EFA driver's hw_counters (no `rdma_read_resp_err`: errors are *_wr_err)
EFA_COUNTERS = ("rx_drops", "rdma_read_wr_err", "rdma_write_wr_err", "retrans_pkts", "retrans_timeout_events",
                "unresponsive_remote_events", "impaired_remote_conn_events")
EFA_TRAFFIC_COUNTERS = ("tx_bytes", "rx_bytes", "tx_pkts", "rx_pkts")


@dataclass
class Gpu:
    index: int
    uuid: str
    fields: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fields.setdefault(DCGM_FI_DEV_SM_CLOCK, hardware.GPU_SM_CLOCK_MHZ)
        self.fields.setdefault(DCGM_FI_DEV_GPU_TEMP, hardware.GPU_IDLE_TEMP_C)
        self.fields.setdefault(DCGM_FI_DEV_POWER_USAGE, 60.0)
        self.fields.setdefault(DCGM_FI_DEV_GPU_UTIL, 0.0)
        for fid in (DCGM_FI_DEV_XID_ERRORS, DCGM_FI_DEV_ECC_SBE_VOL_TOTAL,
                    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_ECC_DBE_AGG_TOTAL):
            self.fields.setdefault(fid, 0.0)

    @property
    def double_bit_error(self) -> bool:
        return self.fields[DCGM_FI_DEV_ECC_DBE_AGG_TOTAL] > 0 or self.fields[DCGM_FI_DEV_ECC_DBE_VOL_TOTAL] > 0

    @property
    def throttled(self) -> bool:
        return self.fields[DCGM_FI_DEV_GPU_TEMP] > hardware.GPU_THERMAL_LIMIT_C

    @property
    def clock_factor(self) -> float:
        """Decode slows with the SM clock (a throttled GPU runs at a fraction of its boost clock)."""
        return min(1.0, self.fields[DCGM_FI_DEV_SM_CLOCK] / hardware.GPU_SM_CLOCK_MHZ)


PowerState = Literal["running", "stopped", "rebooting", "terminated"]
DriverState = Literal["unloaded", "loading", "ready"]
PluginState = Literal["stopped", "registered", "registered-empty"]


@dataclass
class Node:
    name: str
    cluster: str
    az: str
    subnet_id: str
    instance_id: str
    instance_type: str
    nodegroup: str
    capacity_type: Literal["ON_DEMAND", "SPOT"]
    placement_group: str | None
    private_ip: str
    gpus: list[Gpu]
    role: Literal["13b", "70b-tp"] = "13b"
    power: PowerState = "running"
    driver: DriverState = "ready"
    plugin: PluginState = "registered"
    network_reachable: bool = True            # false while an AZ's connectivity is disrupted
    spot_notice_at: float | None = None       # wall time the notice was issued
    spot_terminate_at: float | None = None
    rebalance_at: float | None = None
    efa_load: float = 0.0                     # 0..1 share of fabric bandwidth taken by other traffic
    efa_counters: dict[str, int] = field(default_factory=lambda: {c: 0 for c in EFA_COUNTERS})
    efa_traffic: dict[str, int] = field(default_factory=lambda: {c: 0 for c in EFA_TRAFFIC_COUNTERS})
    booted_at: float = 0.0

    @property
    def allocatable_gpus(self) -> int:
        if self.power != "running" or self.plugin == "stopped":
            return 0
        if self.plugin == "registered-empty":
            return 0
        return len(self.gpus)


@dataclass
class NodeGroup:
    """An EKS managed nodegroup: one Auto Scaling group whose instances join `cluster` as nodes."""

    name: str
    cluster: str
    azs: list[str]
    instance_type: str
    capacity_type: Literal["ON_DEMAND", "SPOT"]
    desired: int
    role: Literal["13b", "70b-tp"] = "13b"
    placement_group: str | None = None


@dataclass
class Cluster:
    name: str
    azs: list[str]
    store: ObjectStore


@dataclass
class World:
    behaviour: Behaviour
    clock: TwinClock
    region: str = "us-east-2"
    azs: tuple[str, ...] = ("us-east-2a", "us-east-2b")
    nodes_per_az: int = 2
    seed: int = 7
    clusters: dict[str, Cluster] = field(default_factory=dict)
    nodegroups: dict[str, NodeGroup] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    subnets: dict[str, list[str]] = field(default_factory=dict)   # az -> subnet ids
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    serving_url: str = ""                       # gateway base URL; NLB health checks probe {serving_url}/targets/{node}/v2/health/ready
    zonal_shift_away: set[str] = field(default_factory=set)   # AZs an active ARC zonal shift routes away from
    disrupted_subnets: set[str] = field(default_factory=set)  # subnets under FIS disrupt-connectivity
    target_health: dict[str, str] = field(default_factory=dict)  # node name -> "healthy" | "unhealthy" as the NLB sees it
    io_latency_s: dict[str, float] = field(default_factory=dict)  # node name -> latency FIS adds to its EBS volume (inf: paused)

    def node_by_instance(self, instance_id: str) -> Node | None:
        return next((n for n in self.nodes.values() if n.instance_id == instance_id), None)

    def cluster_of(self, node: Node) -> Cluster:
        return self.clusters[node.cluster]

    def nodes_in(self, az: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.az == az]
