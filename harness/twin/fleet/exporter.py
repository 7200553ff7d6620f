"""dcgm-exporter's `/metrics` for one node, in the Prometheus text format it really serves.

The harness reads GPU telemetry the way an SRE's Prometheus does: plain HTTP GET of the exporter on
port 9400 (through the API server's pod proxy). Label names and metric names are the exporter's own
(`gpu`, `UUID`, `device`, `modelName`, `Hostname`, plus `namespace`/`pod`/`container` of the pod that
holds the GPU), so the same parser works against a real cluster.
"""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.fleet.dcgm import pci_bus_id
from harness.twin.world import (DCGM_FI_DEV_ECC_DBE_AGG_TOTAL, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL,
                                DCGM_FI_DEV_ECC_SBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP, DCGM_FI_DEV_GPU_UTIL,
                                DCGM_FI_DEV_POWER_USAGE, DCGM_FI_DEV_SM_CLOCK, DCGM_FI_DEV_XID_ERRORS, Node)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DRIVER_VERSION = "580.95.05"

# field -> (type, help) as dcgm-exporter's default-counters.csv describes them
EXPORTED: dict[int, tuple[str, str, str]] = {
    DCGM_FI_DEV_SM_CLOCK: ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    DCGM_FI_DEV_GPU_TEMP: ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    DCGM_FI_DEV_POWER_USAGE: ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    DCGM_FI_DEV_GPU_UTIL: ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    DCGM_FI_DEV_XID_ERRORS: ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter",
                                    "Total number of single-bit volatile ECC errors."),
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter",
                                    "Total number of double-bit volatile ECC errors."),
    DCGM_FI_DEV_ECC_DBE_AGG_TOTAL: ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "counter",
                                    "Total number of double-bit persistent ECC errors."),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exporter_text(node: Node, holders: dict[int, tuple[str, str, str]] | None = None) -> str:
    """Render the node's GPU fields; `holders` maps a GPU index to (namespace, pod, container) holding it."""
    holders = holders or {}
    lines: list[str] = []
    for fid, (name, kind, help_text) in EXPORTED.items():
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for gpu in node.gpus:
            labels = {"gpu": str(gpu.index), "UUID": gpu.uuid, "pci_bus_id": pci_bus_id(gpu.index),
                      "device": f"nvidia{gpu.index}", "modelName": hardware.GPU_MODEL, "Hostname": node.name,
                      "DCGM_FI_DRIVER_VERSION": DRIVER_VERSION}
            if gpu.index in holders:
                ns, pod, container = holders[gpu.index]
                labels.update({"container": container, "namespace": ns, "pod": pod})
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            value = gpu.fields.get(fid, 0.0)
            lines.append(f"{name}{{{rendered}}} {int(value) if float(value).is_integer() else value}")
    return "\n".join(lines) + "\n"
