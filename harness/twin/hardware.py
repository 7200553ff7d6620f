"""G7 hardware facts, in one place, with where each comes from.

Sources:
- NVIDIA RTX PRO 4500 Blackwell Server Edition (GB203): 32 GB GDDR7, 256-bit, 800 GB/s
  (exxactcorp.com benchmark post, May 2026; technical.city spec page); 896 GB/s on the workstation card.
- Dense tensor throughput, workstation card: FP8 ~440 TFLOPS (FP16 accumulate), BF16 ~110 TFLOPS
  (hmc-tech.com spec comparison); Server Edition clocks are lower, so we take 80% of those.
- PCIe 5.0 x16 (~64 GB/s per direction), no NVLink.
- AWS G7 announcement (the seed article): 2.45x G6 memory bandwidth, 700 Gbps EFA, g7.48xlarge has
  8 GPUs and 7.6 TB local NVMe; g7.12xlarge 2 GPUs; g7.2xlarge / g7.8xlarge 1 GPU; a 13B FP8 model on one
  GPU serves sequences up to 512 tokens at P99 below 80 ms; 70B FP16 is 140 GB; NVMe ~100 us vs EBS gp3
  ~500 us; a cold start of 140 GB from S3 takes 5-15 minutes.
"""
from __future__ import annotations

from dataclasses import dataclass

GPU_MODEL = "NVIDIA RTX PRO 4500 Blackwell Server Edition"
GPU_MEMORY_GB = 32
GPU_MEMORY_BANDWIDTH_GBPS = 800.0          # GB/s, Server Edition
GPU_FP8_TFLOPS = 440.0 * 0.8               # dense, Server Edition clocks
GPU_BF16_TFLOPS = 110.0 * 0.8
GPU_SM_CLOCK_MHZ = 2100                    # nominal boost
GPU_SM_CLOCK_THROTTLED_MHZ = 1200          # clock under thermal slowdown
GPU_THERMAL_LIMIT_C = 83.0                 # the article's alarm threshold
GPU_IDLE_TEMP_C = 45.0
PCIE5_X16_GBPS = 64.0                      # GB/s per direction
EFA_GBPS = 700.0 / 8                       # 700 Gbit/s -> GB/s
NVME_LATENCY_S = 100e-6
EBS_GP3_LATENCY_S = 500e-6


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpus: int
    vcpus: int
    memory_gib: int
    efa_interfaces: int
    nvme_tb: float


INSTANCE_TYPES: dict[str, InstanceType] = {
    "g7.2xlarge": InstanceType("g7.2xlarge", 1, 8, 32, 0, 0.9),
    "g7.8xlarge": InstanceType("g7.8xlarge", 1, 32, 128, 1, 1.9),
    "g7.12xlarge": InstanceType("g7.12xlarge", 2, 48, 192, 1, 3.8),
    "g7.48xlarge": InstanceType("g7.48xlarge", 8, 192, 768, 4, 7.6),
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    params_billion: float
    bytes_per_param: float                 # FP8 = 1, FP16 = 2
    layers: int
    hidden: int
    tensor_parallel: int                   # GPUs per replica

    @property
    def weight_bytes(self) -> float:
        return self.params_billion * 1e9 * self.bytes_per_param


MODEL_13B_FP8 = ModelSpec("llama-13b-fp8", 13, 1.0, 40, 5120, 1)
MODEL_70B_FP16 = ModelSpec("llama-70b-fp16", 70, 2.0, 80, 8192, 16)   # 140 GB over two g7.48xlarge

# Real-world control-plane timings (seconds), scaled by the twin's time_scale.
SPOT_NOTICE_S = 120.0
NODE_BOOT_S = 90.0                  # instance start to kubelet Ready
DRIVER_LOAD_S = 20.0                # NVIDIA driver load after boot
PLUGIN_START_S = 5.0                # device plugin registration
NODE_MONITOR_PUSH_S = 15.0          # FIDELITY NMA-1: the agent pushes its node conditions every 15 s (policy event -> condition within one push)
NODE_MONITOR_HEALTH_S = 300.0       # FIDELITY NMA-2: the agent's DCGM health check runs every 5 min (311 -> DCGMHealthCode4)
NODE_MONITOR_DETECT_S = NODE_MONITOR_PUSH_S     # FIDELITY NMA-1: longest wait from a DCGM policy event to the node condition
AUTO_REPAIR_DELAY_S = 600.0         # FIDELITY REPAIR-1: AcceleratedHardwareReady is repaired after 10 min unless nodeRepairConfig overrides it
AUTO_REPAIR_MAX_UNHEALTHY = 0.20    # FIDELITY REPAIR-3: managed node groups of more than 5 nodes pause repair above 20 % unhealthy
AUTO_REPAIR_MIN_GROUP = 5           # FIDELITY REPAIR-3
DCGM_SAMPLE_PERIOD_S = 10.0         # FIDELITY DCGM-2: DCGM's policy manager watches its fields every 10 s (newest sample replaces an injection)
DCGM_EXPORTER_INTERVAL_S = 30.0     # FIDELITY DCGM-4: dcgm-exporter's default collect interval (30000 ms)
NLB_HEALTH_INTERVAL_S = 10.0
NLB_UNHEALTHY_THRESHOLD = 3
NODE_MONITOR_GRACE_S = 50.0         # FIDELITY K8S-1: kube-controller-manager node-monitor-grace-period (50 s since Kubernetes 1.32)
POD_EVICTION_TOLERATION_S = 300.0   # default unreachable:NoExecute toleration
ALARM_PERIOD_S = 60.0
MODEL_LOAD_NVME_S = 15.0
MODEL_LOAD_S3_S = 600.0
