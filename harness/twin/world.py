"""The physical and logical state of the twin: the one place every part of the twin reads and writes.

Kubernetes-visible state lives in each cluster's ObjectStore (what the API serves); AWS records live
in moto's backends; everything that neither API shows directly lives here: GPUs with their DCGM
field caches, the driver and device-plugin start-up, EFA fabric load and counters, power and network
reachability, and the links node <-> instance <-> replicas.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Literal

from harness.twin import hardware
from harness.twin.clock import TwinClock
from harness.twin.kube.store import ObjectStore
from harness.twin.profiles import Behaviour

# DCGM field ids (NVIDIA/DCGM:dcgmlib/dcgm_fields.h; numeric ids are stable across the 4.6 renames)
DCGM_FI_DEV_SM_CLOCK = 100
DCGM_FI_DEV_GPU_TEMP = 150
DCGM_FI_DEV_POWER_USAGE = 155
DCGM_FI_DEV_GPU_UTIL = 203
DCGM_FI_DEV_XID_ERRORS = 230
DCGM_FI_DEV_ECC_SBE_VOL_TOTAL = 310
DCGM_FI_DEV_ECC_DBE_VOL_TOTAL = 311   # FIDELITY DCGM-1: volatile DBE total; DCGM's MEM health watch reads it
DCGM_FI_DEV_ECC_DBE_AGG_TOTAL = 313   # aggregate (persistent) DBE total
DCGM_FI_DEV_ECC_DBE_VOL_DEV = 319     # FIDELITY DCGM-1: device-memory volatile DBE; DCGM's DBE *policy* watches it

DCGM_FIELD_NAMES = {
    DCGM_FI_DEV_SM_CLOCK: "DCGM_FI_DEV_SM_CLOCK",
    DCGM_FI_DEV_GPU_TEMP: "DCGM_FI_DEV_GPU_TEMP",
    DCGM_FI_DEV_POWER_USAGE: "DCGM_FI_DEV_POWER_USAGE",
    DCGM_FI_DEV_GPU_UTIL: "DCGM_FI_DEV_GPU_UTIL",
    DCGM_FI_DEV_XID_ERRORS: "DCGM_FI_DEV_XID_ERRORS",
    DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    DCGM_FI_DEV_ECC_DBE_AGG_TOTAL: "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    DCGM_FI_DEV_ECC_DBE_VOL_DEV: "DCGM_FI_DEV_ECC_DBE_VOL_DEV",
}

# FIDELITY EFA-2: counters of the kernel EFA driver's hw_counters (no `rdma_read_resp_err`: errors are *_wr_err)
EFA_COUNTERS = ("rx_drops", "rdma_read_wr_err", "rdma_write_wr_err", "retrans_pkts", "retrans_timeout_events",
                "unresponsive_remote_events", "impaired_remote_conn_events")
EFA_TRAFFIC_COUNTERS = ("tx_bytes", "rx_bytes", "tx_pkts", "rx_pkts")


@dataclass
class Injection:
    """A value `dcgmi test --inject` put into the hostengine's cache, with the sample timestamp it carries."""

    value: float
    ts: float            # wall time the sample is stamped with (now + the scaled --offset)
    at: float = 0.0      # wall time it was injected (a reader asking about an earlier moment does not see it)


@dataclass
class Gpu:
    """One GPU: `fields` is what the hardware reports (what every real sample reads); `injected` holds the
    values `dcgmi test --inject` put into the node's hostengine cache, each standing only while no real sample
    newer than its timestamp exists (FIDELITY DCGM-2). `value()` is the newest sample, as DCGM serves it."""

    index: int
    uuid: str
    fields: dict[int, float] = field(default_factory=dict)
    injected: dict[int, Injection] = field(default_factory=dict)          # field -> the newest-stamped injection
    injected_history: dict[int, list[Injection]] = field(default_factory=dict, repr=False)
    sample_period_s: float = hardware.DCGM_SAMPLE_PERIOD_S / 30.0   # wall seconds between real samples

    def __post_init__(self) -> None:
        self.fields.setdefault(DCGM_FI_DEV_SM_CLOCK, hardware.GPU_SM_CLOCK_MHZ)
        self.fields.setdefault(DCGM_FI_DEV_GPU_TEMP, hardware.GPU_IDLE_TEMP_C)
        self.fields.setdefault(DCGM_FI_DEV_POWER_USAGE, 60.0)
        self.fields.setdefault(DCGM_FI_DEV_GPU_UTIL, 0.0)
        for fid in (DCGM_FI_DEV_XID_ERRORS, DCGM_FI_DEV_ECC_SBE_VOL_TOTAL, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL,
                    DCGM_FI_DEV_ECC_DBE_AGG_TOTAL, DCGM_FI_DEV_ECC_DBE_VOL_DEV):
            self.fields.setdefault(fid, 0.0)

    def inject(self, fid: int, value: float, ts: float, at: float | None = None) -> None:
        """A sample stamped `ts`, injected at `at`. The previous injections stay on record (a reader asking about a
        moment before this one still sees them); the newest timestamp wins."""
        sample = Injection(float(value), ts, time.time() if at is None else at)
        history = [i for i in self.injected_history.get(fid, []) if i.ts >= sample.at - 3600.0][-7:]
        history.append(sample)
        self.injected_history[fid] = history
        self.injected[fid] = max(history, key=lambda i: i.ts)

    def value(self, fid: int, now: float | None = None) -> float:
        """The newest sample of `fid` in the hostengine cache at `now`: the injected sample with the newest stamp
        among those injected by then, until the first real sample stamped after it (samples are taken every
        `sample_period_s`); the hardware's value otherwise."""
        now = time.time() if now is None else now
        known = [i for i in self.injected_history.get(fid, []) if i.at <= now]
        if known:
            newest = max(known, key=lambda i: i.ts)
            last_sample = math.floor(now / self.sample_period_s) * self.sample_period_s
            if newest.ts >= last_sample:
                return newest.value
        return self.fields.get(fid, 0.0)

    @property
    def double_bit_error(self) -> bool:
        """What the GPU's DCGM shows of a double-bit error: the policy field (319) or the volatile total (311)."""
        return self.value(DCGM_FI_DEV_ECC_DBE_VOL_DEV) > 0 or self.value(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL) > 0

    @property
    def throttled(self) -> bool:
        """The hardware is above its slowdown threshold (an injected temperature heats nothing: FIDELITY THERM-2)."""
        return self.fields[DCGM_FI_DEV_GPU_TEMP] > hardware.GPU_THERMAL_LIMIT_C

    @property
    def clock_factor(self) -> float:
        """Decode slows with the hardware's SM clock (a really throttled GPU runs at a fraction of its boost)."""
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
    dcgm_events: list[tuple[int, int, float, float]] = field(default_factory=list)  # (gpu, field, value, at) injected

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
    repair_config: dict | None = None     # the nodegroup's EKS nodeRepairConfig, as the deployment sets it


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
