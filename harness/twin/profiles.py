"""Deployment profiles of the twin.

`article` follows every prescription of the seed article; each other profile breaks exactly one of
them, so a check that fails on a profile can be traced to the one behaviour that profile removes.
Profiles compose left to right: `article,no-idempotency`.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Behaviour(BaseModel):
    """What the deployment under test does. Every field is one prescription of the article."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dbe_remediation: bool = True          # node monitoring agent + auto repair + canary pulls corrupted replicas
    dbe_alarm: bool = True                # CloudWatch alarm on DCGM_FI_DEV_ECC_DBE_VOL_TOTAL > 0
    gpu_temp_alarm: bool = True           # CloudWatch alarm on DCGM_FI_DEV_GPU_TEMP above the 83 C slowdown point
    idempotency: bool = True              # gateway idempotency ledger
    kv_offload: bool = True               # KV caches offloaded to NVMe on a spot notice
    topology: Literal["cluster-per-az", "single-multi-az-cluster"] = "cluster-per-az"
    plugin_waits_for_driver: bool = True  # device plugin gated on the driver at boot
    placement_group: bool = True          # tensor-parallel pair in a cluster placement group
    efa_monitoring: bool = True           # CloudWatch alarm on EFA error counters
    autoscale_metric: Literal["queue-depth", "gpu-util"] = "queue-depth"
    model_source: Literal["nvme", "s3"] = "nvme"
    exporter_hostengine: Literal["node", "embedded"] = "node"   # dcgm-exporter reads the node's DCGM (-r)


PROFILES: dict[str, tuple[str, dict]] = {
    "article": ("Follows every prescription of the article (the default).", {}),
    "no-dbe-remediation": ("Nothing acts on a GPU double-bit error: no condition, cordon, drain, replace or canary pull.",
                           {"dbe_remediation": False}),
    "no-dbe-alarm": ("No CloudWatch alarm on DCGM_FI_DEV_ECC_DBE_VOL_TOTAL.", {"dbe_alarm": False}),
    "no-gpu-temp-alarm": ("No CloudWatch alarm on DCGM_FI_DEV_GPU_TEMP: a GPU clocking down goes unnoticed.",
                          {"gpu_temp_alarm": False}),
    "no-idempotency": ("The gateway executes every retry again: no idempotency keys honoured.", {"idempotency": False}),
    "no-kv-offload": ("KV caches are lost on a spot interruption: follow-up turns re-prefill the whole history.",
                      {"kv_offload": False}),
    "single-multi-az-cluster": ("One EKS cluster stretched over both AZs instead of an independent cluster per AZ.",
                                {"topology": "single-multi-az-cluster"}),
    "plugin-before-driver": ("The NVIDIA device plugin starts before the driver: GPUs silently go missing after a reboot.",
                             {"plugin_waits_for_driver": False}),
    "no-placement-group": ("The tensor-parallel pair is not in a cluster placement group: EFA all-reduce is slow.",
                           {"placement_group": False}),
    "no-efa-monitoring": ("No CloudWatch alarm on EFA error counters.", {"efa_monitoring": False}),
    "gpu-util-autoscaling": ("Replicas scale on GPU utilisation, which reads low while they wait on I/O: "
                             "replicas are removed as clients queue.",
                             {"autoscale_metric": "gpu-util"}),
    "cold-start-from-s3": ("Replacement replicas load weights from S3 (minutes) instead of local NVMe.",
                           {"model_source": "s3"}),
    "embedded-dcgm-exporter": ("dcgm-exporter runs its own embedded hostengine instead of reading the node's "
                               "(no -r): its GPU figures are real, but nothing injected into the node's DCGM reaches "
                               "them, so a fault seen only through the exporter cannot be shown to land.",
                               {"exporter_hostengine": "embedded"}),
}


class UnknownProfile(ValueError):
    pass


def parse_profile(spec: str) -> Behaviour:
    """Compose a comma-separated profile list into one Behaviour."""
    fields: dict = {}
    for name in [part.strip() for part in spec.split(",") if part.strip()] or ["article"]:
        if name not in PROFILES:
            raise UnknownProfile(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
        fields.update(PROFILES[name][1])
    return Behaviour(**fields)
