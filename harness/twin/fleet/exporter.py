"""dcgm-exporter's `/metrics` for one node, in the Prometheus text format it really serves.

The harness reads GPU telemetry the way an SRE's Prometheus does: plain HTTP GET of the exporter on
port 9400 (through the API server's pod proxy). Label names and metric names are the exporter's own
(`gpu`, `UUID`, `device`, `modelName`, `Hostname`, plus `namespace`/`pod`/`container` of the pod that
holds the GPU), so the same parser works against a real cluster.

What it exports follows its own configuration, read from its pod as the API serves it (NVIDIA/dcgm-exporter
pkg/cmd/app.go), so changing the DaemonSet or its ConfigMap changes what it shows:
- the counters: `-f/--collectors` (DCGM_EXPORTER_COLLECTORS; a file of a mounted ConfigMap, or the image's
  default-counters.csv) or `-m/--configmap-data` (DCGM_EXPORTER_CONFIGMAP_DATA, `<ns>:<name>`, key `metrics`);
  the default file has every ECC counter commented out (FIDELITY DCGM-5);
- which hostengine: `-r/--remote-hostengine-info` (DCGM_REMOTE_HOSTENGINE_INFO) reads the node's DCGM pod,
  where `dcgmi test --inject` lands; without it the exporter runs an embedded hostengine that sees only what
  the hardware reports, never an injection (FIDELITY DCGM-6);
- `-c/--collect-interval` (DCGM_EXPORTER_INTERVAL, ms, default 30000): values are those of the last collection
  (FIDELITY DCGM-4).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from harness.twin import hardware
from harness.twin.fleet.dcgm import pci_bus_id
from harness.twin.kube.store import ObjectStore, resource
from harness.twin.world import DCGM_FIELD_NAMES, Node

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DRIVER_VERSION = "580.95.05"
DEFAULT_COLLECTORS = "/etc/dcgm-exporter/default-counters.csv"
EXPORTER_LABEL = ("app.kubernetes.io/name", "dcgm-exporter")

# The fields of NVIDIA/dcgm-exporter etc/default-counters.csv the twin's GPUs have, as that file has them:
# ECC counters are commented out there (FIDELITY DCGM-5).
DEFAULT_COUNTERS_CSV = """# Format
# DCGM FIELD, Prometheus metric type, help message
DCGM_FI_DEV_SM_CLOCK,  gauge, SM clock frequency (in MHz).
DCGM_FI_DEV_GPU_TEMP,    gauge, GPU temperature (in C).
DCGM_FI_DEV_POWER_USAGE,              gauge, Power draw (in W).
DCGM_FI_DEV_GPU_UTIL,      gauge, GPU utilization (in %).
DCGM_FI_DEV_XID_ERRORS,            gauge,   Value of the last XID error encountered.
# DCGM_FI_DEV_ECC_SBE_VOL_TOTAL, counter, Total number of single-bit volatile ECC errors.
# DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter, Total number of double-bit volatile ECC errors.
# DCGM_FI_DEV_ECC_SBE_AGG_TOTAL, counter, Total number of single-bit persistent ECC errors.
# DCGM_FI_DEV_ECC_DBE_AGG_TOTAL, counter, Total number of double-bit persistent ECC errors.
"""
FIELD_IDS = {name: fid for fid, name in DCGM_FIELD_NAMES.items()}


def counters_turned_on(text: str, names: tuple[str, ...]) -> str:
    """A counters file with the commented-out lines of `names` turned on, as an operator edits the default file."""
    out = []
    for line in text.splitlines():
        body = line.lstrip("# ")
        out.append(body if line.startswith("#") and body.split(",", 1)[0].strip() in names else line)
    return "\n".join(out) + "\n"


@dataclass
class ExporterConfig:
    counters: dict[int, tuple[str, str, str]] = field(default_factory=dict)   # field -> (metric, type, help)
    remote: bool = False
    interval_s: float = hardware.DCGM_EXPORTER_INTERVAL_S


def parse_counters(text: str) -> dict[int, tuple[str, str, str]]:
    out: dict[int, tuple[str, str, str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",", 2)]
        if len(parts) == 3 and parts[0] in FIELD_IDS:
            out[FIELD_IDS[parts[0]]] = (parts[0], parts[1], parts[2])
    return out


def _flags(container: dict[str, Any]) -> dict[str, str]:
    """The exporter's flags from args (`-f x`, `--collectors=x`) over env, keyed by long name."""
    names = {"-f": "collectors", "--collectors": "collectors", "-m": "configmap-data", "--configmap-data":
             "configmap-data", "-r": "remote-hostengine-info", "--remote-hostengine-info": "remote-hostengine-info",
             "-c": "collect-interval", "--collect-interval": "collect-interval"}
    env = {"DCGM_EXPORTER_COLLECTORS": "collectors", "DCGM_EXPORTER_CONFIGMAP_DATA": "configmap-data",
           "DCGM_REMOTE_HOSTENGINE_INFO": "remote-hostengine-info", "DCGM_EXPORTER_INTERVAL": "collect-interval"}
    out = {env[e["name"]]: str(e.get("value", "")) for e in container.get("env") or [] if e.get("name") in env}
    args = list(container.get("args") or [])
    i = 0
    while i < len(args):
        arg = args[i]
        key, _, inline = arg.partition("=")
        if key in names:
            if inline or "=" in arg:
                out[names[key]] = inline
                i += 1
            elif i + 1 < len(args):
                out[names[key]] = args[i + 1]
                i += 2
            else:
                i += 1
        else:
            i += 1
    return out


def exporter_config(store: ObjectStore, pod: dict[str, Any]) -> ExporterConfig:
    container = pod["spec"]["containers"][0]
    flags = _flags(container)
    namespace = pod["metadata"]["namespace"]
    text = DEFAULT_COUNTERS_CSV
    if flags.get("configmap-data"):
        ns, _, name = flags["configmap-data"].partition(":")
        cm = store.get(resource("configmaps"), ns, name)
        text = ((cm or {}).get("data") or {}).get("metrics", "")
    else:
        path = flags.get("collectors", DEFAULT_COLLECTORS)
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            base = mount["mountPath"].rstrip("/") + "/"
            source = volumes.get(mount["name"], {}).get("configMap")
            if path.startswith(base) and source:
                cm = store.get(resource("configmaps"), namespace, source["name"])
                text = ((cm or {}).get("data") or {}).get(path[len(base):], "")
                break
    try:
        interval = float(flags.get("collect-interval", hardware.DCGM_EXPORTER_INTERVAL_S * 1000)) / 1000.0
    except ValueError:
        interval = hardware.DCGM_EXPORTER_INTERVAL_S
    return ExporterConfig(parse_counters(text), "remote-hostengine-info" in flags, interval)


def exporter_pod(store: ObjectStore, node_name: str) -> dict[str, Any] | None:
    key, value = EXPORTER_LABEL
    return next((p for p in store.iter_raw(resource("pods")) if p["spec"].get("nodeName") == node_name
                 and (p["metadata"].get("labels") or {}).get(key) == value), None)


def collected(node: Node, config: ExporterConfig, scale: float, now: float | None = None) -> dict[int, dict[int, float]]:
    """field -> gpu -> value as of the exporter's last collection: read from the node's hostengine (injections
    included) when remote, from the hardware alone when embedded."""
    now = time.time() if now is None else now
    interval = max(config.interval_s / scale, 1e-3)
    tick = math.floor(now / interval) * interval
    out: dict[int, dict[int, float]] = {}
    for fid in config.counters:
        out[fid] = {g.index: (g.value(fid, tick) if config.remote else g.fields.get(fid, 0.0)) for g in node.gpus}
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exporter_text(node: Node, holders: dict[int, tuple[str, str, str]] | None = None,
                  config: ExporterConfig | None = None, scale: float = 30.0, now: float | None = None) -> str:
    """Render the node's GPU fields; `holders` maps a GPU index to (namespace, pod, container) holding it."""
    holders = holders or {}
    config = config or ExporterConfig(parse_counters(DEFAULT_COUNTERS_CSV))
    values = collected(node, config, scale, now)
    lines: list[str] = []
    for fid, (name, kind, help_text) in config.counters.items():
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
            value = values[fid][gpu.index]
            lines.append(f"{name}{{{rendered}}} {int(value) if float(value).is_integer() else value}")
    return "\n".join(lines) + "\n"
