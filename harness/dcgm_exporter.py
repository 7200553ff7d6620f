"""What a cluster's dcgm-exporter can show, read from its pods and ConfigMaps through the Kubernetes API.

`dcgmi test --inject` writes into one nv-hostengine's cache. dcgm-exporter sees it only when it reads that
hostengine (`-r/--remote-hostengine-info`, env DCGM_REMOTE_HOSTENGINE_INFO); otherwise it runs an embedded
hostengine of its own. It exports only the fields of its counters file (`-f/--collectors`,
DCGM_EXPORTER_COLLECTORS; or `-m/--configmap-data` `<ns>:<name>`, key `metrics`), and the image's
default-counters.csv has every ECC counter commented out (NVIDIA/dcgm-exporter pkg/cmd/app.go,
etc/default-counters.csv). So before trusting an exporter metric as the proof or the alarm of an injected
fault, the harness reads the exporter's configuration: a counters file it cannot resolve (a path baked into
the image) counts as the default file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_COLLECTORS = "/etc/dcgm-exporter/default-counters.csv"
# the uncommented fields of NVIDIA/dcgm-exporter etc/default-counters.csv that the faults and alarms care about
DEFAULT_COUNTERS = frozenset({"DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_MEMORY_TEMP",
                              "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_UTIL",
                              "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"})
_ARGS = {"-f": "collectors", "--collectors": "collectors", "-m": "configmap-data", "--configmap-data": "configmap-data",
         "-r": "remote-hostengine-info", "--remote-hostengine-info": "remote-hostengine-info"}
_ENV = {"DCGM_EXPORTER_COLLECTORS": "collectors", "DCGM_EXPORTER_CONFIGMAP_DATA": "configmap-data",
        "DCGM_REMOTE_HOSTENGINE_INFO": "remote-hostengine-info"}


@dataclass
class ExporterView:
    """One exporter pod's configuration as far as injected faults are concerned."""

    pod: str
    reads_injectable_hostengine: bool
    counters: frozenset[str]
    source: str                         # where the counters came from
    problems: list[str] = field(default_factory=list)

    def shows(self, metric: str) -> bool:
        """Would an injected value of `metric` appear on this exporter's /metrics?"""
        return self.reads_injectable_hostengine and metric in self.counters

    def why_not(self, metric: str) -> str:
        reasons = []
        if not self.reads_injectable_hostengine:
            reasons.append("it runs an embedded hostengine (no -r / DCGM_REMOTE_HOSTENGINE_INFO), which dcgmi "
                           "injections never reach")
        if metric not in self.counters:
            reasons.append(f"its counters ({self.source}) do not export {metric}")
        return f"dcgm-exporter {self.pod}: " + "; ".join(reasons) if reasons else ""


def parse_counters(text: str) -> frozenset[str]:
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split(",", 1)[0].strip())
    return frozenset(names)


def _flags(container: Any) -> dict[str, str]:
    out = {_ENV[e.name]: e.value or "" for e in container.env or [] if e.name in _ENV}
    args = list(container.args or [])
    i = 0
    while i < len(args):
        key, eq, inline = args[i].partition("=")
        if key in _ARGS:
            if eq:
                out[_ARGS[key]] = inline
            elif i + 1 < len(args):
                out[_ARGS[key]] = args[i + 1]
                i += 1
        i += 1
    return out


def exporter_view(core: Any, pod: Any) -> ExporterView:
    """Read one exporter pod's flags and the ConfigMap its counters come from (`core` is a CoreV1Api)."""
    container = pod.spec.containers[0]
    flags = _flags(container)
    namespace = pod.metadata.namespace
    counters, source = DEFAULT_COUNTERS, f"the image's {DEFAULT_COLLECTORS}"
    if flags.get("configmap-data"):
        ns, _, name = flags["configmap-data"].partition(":")
        cm = core.read_namespaced_config_map(name, ns)
        counters, source = parse_counters((cm.data or {}).get("metrics", "")), f"ConfigMap {ns}/{name}"
    else:
        path = flags.get("collectors", DEFAULT_COLLECTORS)
        volumes = {v.name: v for v in pod.spec.volumes or []}
        for mount in container.volume_mounts or []:
            base = mount.mount_path.rstrip("/") + "/"
            volume = volumes.get(mount.name)
            if path.startswith(base) and volume is not None and volume.config_map is not None:
                cm = core.read_namespaced_config_map(volume.config_map.name, namespace)
                key = path[len(base):]
                counters = parse_counters((cm.data or {}).get(key, ""))
                source = f"ConfigMap {namespace}/{volume.config_map.name} key {key}"
                break
    return ExporterView(pod.metadata.name, "remote-hostengine-info" in flags, counters, source)


def exporter_views(target: Any, context: str, node: str | None = None) -> list[ExporterView]:
    """The exporter pods of a context (or of one node), each with what it can show."""
    from kubernetes import client
    selector = target.spec.selectors.dcgm_exporter
    core = client.CoreV1Api(target.kube(context))
    kwargs = {"field_selector": f"spec.nodeName={node}"} if node else {}
    pods = core.list_namespaced_pod(selector.namespace, label_selector=selector.label_selector, **kwargs).items
    return [exporter_view(core, pod) for pod in pods]


def blind_spots(target: Any, context: str, node: str, metric: str) -> tuple[list[ExporterView], list[str]]:
    """The node's exporter pods, and why each cannot show `metric` (a fault records these as unobservable
    rather than letting an alarm on the metric be blamed for a silence nobody could see)."""
    from kubernetes import client
    try:
        views = exporter_views(target, context, node)
    except client.ApiException as exc:
        return [], [f"dcgm-exporter configuration unreadable ({exc.status})"]
    return views, [v.why_not(metric) for v in views if not v.shows(metric)]
