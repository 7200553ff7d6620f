"""The replicas' latency model: every constant in one place, each derived from harness/twin/hardware.py.

Why a roofline and not measured tables: the twin has to answer "what would this GPU do" for states no
table covers (a throttled clock, a loaded EFA fabric, a tensor-parallel pair without a placement group),
so each step is computed from the hardware facts:

- decode is memory-bandwidth bound: one step reads every weight once plus the KV cache of every sequence
  in the batch, at GPU_MEMORY_BANDWIDTH_GBPS (hardware.py: 800 GB/s, RTX PRO 4500 Server Edition);
- prefill is compute bound: 2 * params FLOPs per prompt token at GPU_FP8_TFLOPS (or GPU_BF16_TFLOPS for
  an FP16 model);
- a step that mixes both (continuous batching admits new prompts into a running batch) takes the larger
  of its memory time and its compute time (roofline), divided by the SM clock factor;
- tensor parallelism adds two all-reduces per layer (attention and MLP outputs): over PCIe inside a node
  (hardware.PCIE5_X16_GBPS; G7 has no NVLink) and over EFA between nodes (hardware.EFA_GBPS), whose
  latency grows with the fabric's load and is far higher outside a cluster placement group.

Sanity (the article): 13B FP8 on one GPU at batch 1 reads ~13 GB per token -> ~16.3 ms per token; a
512-token prompt prefills in ~38 ms; both far below the article's P99 of 80 ms at low load.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.twin import hardware
from harness.twin.hardware import ModelSpec
from harness.twin.profiles import Behaviour

GB = 1e9

# KV cache layout per model (architecture facts of the Llama 2 family, not of the GPU):
# 13B uses multi-head attention (40 KV heads of 40); 70B uses grouped-query attention (8 KV heads of 64).
KV_HEAD_RATIO: dict[str, float] = {"llama-13b-fp8": 1.0, "llama-70b-fp16": 8 / 64}
# KV cache element size: an FP8 deployment keeps an FP8 KV cache; the FP16 model keeps FP16.
KV_BYTES_PER_ELEMENT: dict[str, float] = {"llama-13b-fp8": 1.0, "llama-70b-fp16": 2.0}

# Collective costs. NCCL's small-message all-reduce is latency bound: a ring over 8 GPUs on a PCIe 5.0
# switch takes tens of microseconds; EFA's one-way latency inside a cluster placement group is ~15 us per
# hop, and several times that across spines when the instances are spread out (no placement group).
PCIE_ALLREDUCE_LATENCY_S = 20e-6
EFA_ALLREDUCE_LATENCY_S = 30e-6
EFA_NO_PLACEMENT_GROUP_FACTOR = 6.0       # latency multiplier outside a cluster placement group
EFA_NO_PLACEMENT_GROUP_BW_SHARE = 0.5     # FIDELITY EFA-7: share of EFA bandwidth reachable across spines
ALLREDUCES_PER_LAYER = 2

# Largest batch a replica runs at once; later arrivals queue (nv_inference_queue_duration_us).
MAX_BATCH: dict[str, int] = {"llama-13b-fp8": 64, "llama-70b-fp16": 64}

# KV offload on a spot notice: blocks go to the node's local NVMe (hardware.NVME_LATENCY_S) and are
# restored into the replica that takes the conversation over GPUDirect RDMA across EFA (the path the
# article cites for loading from FSx), so the restore is bounded by hardware.EFA_GBPS.
KV_RESTORE_GBPS = hardware.EFA_GBPS


@dataclass(frozen=True)
class Interconnect:
    """How the GPUs of one replica talk: how many shards per node and the inter-node fabric state."""

    gpus_per_node: int = 1
    nodes: int = 1
    efa_load: float = 0.0          # 0..1, the most loaded node of the group
    placement_group: bool = True


def kv_bytes_per_token(model: ModelSpec) -> float:
    """K and V for every layer: 2 * layers * hidden * (KV heads share) * element size."""
    return 2 * model.layers * model.hidden * KV_HEAD_RATIO.get(model.name, 1.0) * KV_BYTES_PER_ELEMENT.get(model.name, 1.0)


def _flops(model: ModelSpec) -> float:
    tflops = hardware.GPU_FP8_TFLOPS if model.bytes_per_param <= 1.0 else hardware.GPU_BF16_TFLOPS
    return tflops * 1e12


def allreduce_s(model: ModelSpec, batch_tokens: int, link: Interconnect) -> float:
    """One step's tensor-parallel communication: ALLREDUCES_PER_LAYER all-reduces per layer."""
    shards = link.gpus_per_node * link.nodes
    if shards <= 1:
        return 0.0
    message = model.hidden * max(1, batch_tokens) * 2.0          # activations in FP16
    one = 0.0
    if link.gpus_per_node > 1:                                   # ring over PCIe inside the node
        ring = 2 * (link.gpus_per_node - 1) / link.gpus_per_node
        one += PCIE_ALLREDUCE_LATENCY_S + ring * message / (hardware.PCIE5_X16_GBPS * GB)
    if link.nodes > 1:                                           # then across nodes over EFA
        share = 1.0 - min(max(link.efa_load, 0.0), 0.95)         # fabric left after competing traffic
        latency = EFA_ALLREDUCE_LATENCY_S / share                # queueing grows as the fabric fills
        bandwidth = hardware.EFA_GBPS * GB * share
        if not link.placement_group:
            latency *= EFA_NO_PLACEMENT_GROUP_FACTOR
            bandwidth *= EFA_NO_PLACEMENT_GROUP_BW_SHARE
        one += latency + 2 * (link.nodes - 1) / link.nodes * message / bandwidth
    return model.layers * ALLREDUCES_PER_LAYER * one


def step_s(model: ModelSpec, *, decode_seqs: int, kv_tokens: int, prefill_tokens: int = 0,
           clock_factor: float = 1.0, link: Interconnect = Interconnect()) -> float:
    """One continuous-batching step: every running sequence gets a token, new prompts get prefilled.

    Memory time = (weights + KV of the batch) / aggregate bandwidth; compute time = 2 * params * tokens /
    aggregate FLOPS; the step takes the larger (roofline), slowed by the SM clock, plus TP all-reduces.
    """
    shards = max(1, link.gpus_per_node * link.nodes)
    bandwidth = hardware.GPU_MEMORY_BANDWIDTH_GBPS * GB * shards
    memory = (model.weight_bytes + kv_tokens * kv_bytes_per_token(model)) / bandwidth
    tokens = decode_seqs + prefill_tokens
    compute = 2 * model.params_billion * 1e9 * tokens / (_flops(model) * shards)
    factor = min(1.0, max(clock_factor, 0.05))
    return max(memory, compute) / factor + allreduce_s(model, tokens, link)


def stated_ttft_s(model: ModelSpec, prompt_tokens: int, link: Interconnect = Interconnect()) -> float:
    """Time to the first token on an idle replica: one step that prefills the prompt."""
    return step_s(model, decode_seqs=0, kv_tokens=prompt_tokens, prefill_tokens=prompt_tokens, link=link)


def stated_tbt_s(model: ModelSpec, context_tokens: int, batch: int = 1, link: Interconnect = Interconnect()) -> float:
    """Time between tokens for `batch` sequences of `context_tokens` each."""
    return step_s(model, decode_seqs=batch, kv_tokens=context_tokens * batch, link=link)


def kv_restore_s(model: ModelSpec, tokens: int) -> float:
    """Bring an offloaded conversation's KV back from NVMe into the new replica."""
    return hardware.NVME_LATENCY_S + tokens * kv_bytes_per_token(model) / (KV_RESTORE_GBPS * GB)


def cold_start_s(behaviour: Behaviour, model: ModelSpec) -> float:
    """Real-world seconds a replacement replica takes to load its weights (scale with the twin clock).

    From local NVMe (the article) it is hardware.MODEL_LOAD_NVME_S; from S3 it is hardware.MODEL_LOAD_S3_S
    for the 140 GB 70B model (the article: 5-15 minutes), proportionally less for a smaller model.
    """
    if behaviour.model_source == "s3":
        return hardware.MODEL_LOAD_S3_S * max(0.1, model.weight_bytes / hardware.MODEL_70B_FP16.weight_bytes)
    return hardware.MODEL_LOAD_NVME_S
