"""What runs inside the fleet's pods when the API server execs into them or proxies to them.

One exec handler per cluster dispatches by pod, as a container runtime would: `dcgmi` in a
`dcgm-server` pod acts on that node's GPUs; `cat` and `sh -c 'echo N > .../cgroup.freeze'` in a pod that mounts
the host's /sys/fs/cgroup read and write that node's cgroup v2 hierarchy (`cgroups`), which is how a replica is
frozen and thawed from the node; `kill -STOP|-KILL|-CONT 1` inside a Triton pod does nothing and exits 0, as the
kernel drops signals a PID namespace's init has no handler for when they come from inside that namespace;
nccl-tests' `all_reduce_perf` in a GPU pod loads the node's EFA fabric never (one process stays on its node: PCIe
only; mpirun across pods loads it, see controllers/mpilauncher); `grep -H . /sys/class/infiniband/...hw_counters/...`
reads the node's EFA counters; a pod's log is what its process wrote (an mpirun launcher's nccl-tests output);
anything else is "command not found" (exit 127). The pod proxy serves a dcgm-exporter pod's `:9400/metrics` and a
Triton pod's `:8000/v2/health/ready|live`, which a frozen replica never answers. A node that is powered off or cut off answers
neither, with the errors the API server gives when it cannot reach a kubelet.
"""
from __future__ import annotations

import shlex

from harness.twin import hardware
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet.cgroups import CgroupFs
from harness.twin.fleet.dcgm import run_dcgmi
from harness.twin.fleet.exporter import CONTENT_TYPE, exporter_config, exporter_text
from harness.twin.fleet.nccl import all_reduce_perf
from harness.twin.fleet.runtime import INFERENCE_NS, PODS, Fleet
from harness.twin.kube.exec import ExecResult
from harness.twin.kube.store import Obj
from harness.twin.world import Node

# FIDELITY STALL-1: from inside its own PID namespace, PID 1 gets only the signals it has a handler for; SIGSTOP and
# SIGKILL can have none and Triton installs none for SIGCONT, so these are dropped and kill(1) still succeeds
DROPPED_BY_INIT = {"-STOP", "-SIGSTOP", "-19", "-KILL", "-SIGKILL", "-9", "-CONT", "-SIGCONT", "-18"}
HEALTH_PORT = 8000
HEALTH_PATHS = ("v2/health/ready", "v2/health/live")   # FIDELITY STALL-5: a frozen replica answers neither
PROXY_WAIT_S = 30.0          # how long the twin holds a proxied request to a frozen replica before giving up


def _unwrap_shell(command: list[str]) -> list[str]:
    """`sh -c "dcgmi ..."` runs the same command line as `dcgmi ...`."""
    if len(command) >= 3 and command[0].rsplit("/", 1)[-1] in ("sh", "bash") and command[1] == "-c":
        return shlex.split(command[2])
    return command


HW_COUNTERS_GLOB = "/sys/class/infiniband/*/ports/*/hw_counters/*"


def hw_counters_text(node: Node, efa_devices: int) -> str:
    """`grep -H . <hw_counters>` as the node's EFA devices answer it (FIDELITY EFA-2): one line per device,
    port 1 and counter, the node's counts split over its devices. RDMA devices are visible in every
    container in the kernel's default shared RDMA netns mode (assumed for EKS AMIs)."""
    lines = []
    counts = {**node.efa_counters, **node.efa_traffic}
    for i in range(efa_devices):
        for name, value in counts.items():
            share = value // efa_devices + (1 if i < value % efa_devices else 0)
            lines.append(f"/sys/class/infiniband/rdmap{16 + i}s27/ports/1/hw_counters/{name}:{share}")
    return "\n".join(lines) + ("\n" if lines else "")


class FleetHandlers:
    """The exec and proxy handlers of one cluster's API server."""

    def __init__(self, fleet: Fleet, cluster: str):
        self.fleet = fleet
        self.cluster = cluster
        self.store = fleet.world.clusters[cluster].store
        self.cgroups = CgroupFs(lambda node: self.fleet.pods_on(self.store, node), fleet.frozen_cgroups,
                                self._frozen_changed)

    def _frozen_changed(self, node: str) -> None:
        """After a write to a cgroup.freeze: the node's inference replicas stop or resume with their containers."""
        serving = self.fleet.serving
        if serving is None:
            return
        frozen = self.cgroups.frozen_pods(node)
        for pod in self.fleet.pods_on(self.store, node):
            if pod["metadata"]["namespace"] == INFERENCE_NS:
                name = pod["metadata"]["name"]
                serving.freeze(name, f"{INFERENCE_NS}/{name}" in frozen)

    def _pod_and_node(self, namespace: str, pod_name: str) -> tuple[Obj | None, Node | None, str | None]:
        pod = self.store.get(PODS, namespace, pod_name)
        if pod is None:
            return None, None, f'pods "{pod_name}" not found'
        node_name = pod["spec"].get("nodeName")
        node = self.fleet.world.nodes.get(node_name or "")
        if node is None or pod.get("status", {}).get("phase") != "Running":
            return pod, None, f'unable to upgrade connection: container not found ("{pod["spec"]["containers"][0]["name"]}")'
        if not node.network_reachable or not self.fleet.kubelet_ready(node, self.fleet.now()):
            return pod, None, f"error dialing backend: dial tcp {node.private_ip}:10250: i/o timeout"
        return pod, node, None

    async def exec(self, namespace: str, pod_name: str, container: str | None, command: list[str]) -> ExecResult:
        pod, node, error = self._pod_and_node(namespace, pod_name)
        if error is not None or pod is None or node is None:
            return ExecResult(1, b"", f"Error from server: {error}\n".encode())
        argv = _unwrap_shell(list(command))
        if not argv:
            return ExecResult(1, b"", b"error: you must specify at least one command for the container\n")
        program = argv[0].rsplit("/", 1)[-1]
        labels = pod["metadata"].get("labels") or {}
        if program == "dcgmi" and labels.get("k8s-app") == "dcgm-server":
            result = run_dcgmi(node, argv[1:], self.fleet.world.clock)
            return ExecResult(result.exit_code, result.stdout.encode(), result.stderr.encode())
        if program == "kill" and labels.get("app") == "triton":
            return self._kill(argv[1:])
        if program == "cat" and len(argv) == 2:
            code, out, err = self.cgroups.cat(node.name, pod, container, argv[1])
            return ExecResult(code, out.encode(), err.encode())
        if program == "echo" and len(argv) in (3, 4) and (argv[2] == ">" or argv[2].startswith(">")):
            path = argv[3] if argv[2] == ">" and len(argv) == 4 else argv[2][1:]
            code, out, err = self.cgroups.write(node.name, pod, container, path, argv[1])
            return ExecResult(code, out.encode(), err.encode())
        if program == "all_reduce_perf":
            code, out, err = await all_reduce_perf(pod, node, argv[1:])
            return ExecResult(code, out.encode(), err.encode())
        if program == "grep" and argv[1:] == ["-H", ".", HW_COUNTERS_GLOB]:
            devices = hardware.INSTANCE_TYPES[node.instance_type].efa_interfaces if node.instance_type in \
                hardware.INSTANCE_TYPES else 0
            if not devices:
                return ExecResult(2, b"", f"grep: {HW_COUNTERS_GLOB}: No such file or directory\n".encode())
            return ExecResult(0, hw_counters_text(node, devices).encode())
        if program in ("true", ":"):
            return ExecResult(0)
        return ExecResult(127, b"", f"sh: 1: {argv[0]}: not found\n".encode())

    @staticmethod
    def _kill(args: list[str]) -> ExecResult:
        """`kill -STOP 1` from inside the container reaches the namespace's init, which drops it: exit 0, no effect."""
        if len(args) != 2 or args[0] not in DROPPED_BY_INIT or args[1] != "1":
            return ExecResult(1, b"", b"kill: usage: kill -STOP|-KILL|-CONT 1\n")
        return ExecResult(0)

    async def proxy(self, namespace: str, pod_name: str, port: int | None, path: str) -> tuple[int, str, bytes]:
        pod, node, error = self._pod_and_node(namespace, pod_name)
        if error is not None or pod is None or node is None:
            code = 404 if pod is None else 503
            return code, "text/plain; charset=utf-8", f"{error}\n".encode()
        labels = pod["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/name") == "dcgm-exporter" and port in (9400, None) and path.strip("/") == "metrics":
            config = exporter_config(self.store, pod)
            text = exporter_text(node, self.holders(node.name), config, self.fleet.world.clock.time_scale,
                                 self.fleet.now())
            return 200, CONTENT_TYPE, text.encode()
        if labels.get("app") == "triton" and port in (HEALTH_PORT, None) and path.strip("/") in HEALTH_PATHS:
            return await self._health(pod_name, path.strip("/"))
        return 404, "text/plain; charset=utf-8", b"404 page not found\n"

    async def _health(self, pod_name: str, path: str) -> tuple[int, str, bytes]:
        """Triton's health endpoints: 200 when ready (live), 400 when not; a frozen server answers nothing, so the
        request hangs until it is thawed (the caller's timeout is what ends it)."""
        serving = self.fleet.serving
        if serving is None:
            return 503, "text/plain; charset=utf-8", b"no serving layer\n"
        if not await serving.await_answering(pod_name, PROXY_WAIT_S):
            return 503, "text/plain; charset=utf-8", b"error trying to reach service: context deadline exceeded\n"
        replica = serving.replica_of(pod_name)
        ok = replica is not None and not replica.dead and (path == "v2/health/live" or replica.ready)
        return (200 if ok else 400), "application/json", b""

    def log(self, namespace: str, pod_name: str) -> str:
        """What the pod's process wrote (an mpirun launcher's output); empty for the rest."""
        return self.fleet.pod_logs.get((self.cluster, namespace, pod_name), "")

    def holders(self, node_name: str) -> dict[int, tuple[str, str, str]]:
        """GPU index -> (namespace, pod, container) of the pods holding GPUs on the node."""
        out: dict[int, tuple[str, str, str]] = {}
        for pod in self.fleet.pods_on(self.store, node_name):
            raw = (pod["metadata"].get("annotations") or {}).get(ko.GPUS_ANNOTATION, "")
            for index in (int(x) for x in raw.split(",") if x.strip().isdigit()):
                out[index] = (pod["metadata"]["namespace"], pod["metadata"]["name"], pod["spec"]["containers"][0]["name"])
        return out
