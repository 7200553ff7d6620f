"""mpirun in a launcher pod: it starts its ranks in other pods and the collective runs across their nodes.

A container whose command is `mpirun ...` (or a shell loop around it) starts, once Running, one rank per
slot of each host it names. A host is a pod of the launcher's namespace, reached through the rsh agent it
is given (`--mca plm_rsh_agent`, a kubectl-exec script as mpi-operator v1 wrote it); without an agent mpirun
would ssh to a pod name and fail, as it does on a cluster without sshd and keys. While a run lasts, every
node holding ranks carries its share of the fabric (FIDELITY EFA-3): the share of its GPUs in the run, when
the rank's pod holds an EFA device (otherwise NCCL uses TCP sockets over ENA and EFA sees nothing); ranks
all on one node never leave it. The run's nccl-tests output goes to the launcher's log (the pod log API),
ending in `# Avg bus bandwidth`. Deleting the launcher or a worker ends the run and frees the fabric.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet import nccl
from harness.twin.fleet.runtime import PODS
from harness.twin.kube.store import NotFound, Obj, ObjectStore
from harness.twin.serving.latency import EFA_NO_PLACEMENT_GROUP_BW_SHARE

SOCKET_BUSBW_GBPS = 4.0          # FIDELITY EFA-3 (assumed figure): NCCL's TCP socket transport over ENA
MAX_LOG_CHARS = 200_000


@dataclass
class Launch:
    mpi: nccl.MpiRun | None = None
    args: nccl.NcclArgs | None = None
    loop: bool = False
    loads: dict[str, float] = field(default_factory=dict)     # node -> fabric share while a run lasts
    busbw: float = 0.0
    ranks: int = 0
    run_end: float | None = None
    runs: int = 0
    over: bool = False                                         # failed, or finished without a loop


class MpiLauncher(Controller):
    name = "mpi-launcher"

    def __init__(self, fleet):
        super().__init__(fleet)
        self.launches: dict[tuple[str, str, str], Launch] = {}
        self._applied: dict[str, float] = {}

    def _log(self, key: tuple[str, str, str], text: str) -> None:
        logs = self.fleet.pod_logs
        logs[key] = (logs.get(key, "") + text)[-MAX_LOG_CHARS:]

    def reconcile(self, now: float) -> None:
        seen = set()
        for cluster in self.world.clusters.values():
            store = cluster.store
            for pod in store.iter_raw(PODS):
                if pod.get("status", {}).get("phase") != "Running" or ko.is_terminating(pod):
                    continue
                containers = pod["spec"].get("containers") or []
                program = nccl.launcher_program(list(containers[0].get("command") or [])) if containers else None
                if program is None:
                    continue
                key = (store.cluster, pod["metadata"]["namespace"], pod["metadata"]["name"])
                seen.add(key)
                launch = self.launches.setdefault(key, Launch(loop=program[1]))
                self._step(store, pod, key, launch, program[0], now)
        for key in [k for k in self.launches if k not in seen]:
            del self.launches[key]           # the launcher is gone: its ranks die with mpirun
        self._apply_loads()

    def _step(self, store: ObjectStore, pod: Obj, key: tuple[str, str, str], launch: Launch, argv: list[str],
              now: float) -> None:
        if launch.over:
            return
        if launch.run_end is not None:
            if not self._hosts_alive(store, key[1], launch):
                self._fail(store, pod, key, launch, "ORTE has lost communication with a remote daemon.\n")
                return
            if now < launch.run_end:
                return
            self._log(key, nccl.table(launch.args, launch.busbw, launch.ranks))
            launch.runs += 1
            launch.run_end = None
            if not launch.loop:
                launch.over = True
                self._set_phase(store, pod, "Succeeded")
                return
        error = self._start(store, key, launch, argv, now, pod)
        if error:
            self._fail(store, pod, key, launch, error)

    def _start(self, store: ObjectStore, key: tuple[str, str, str], launch: Launch, argv: list[str],
               now: float, launcher: Obj) -> str | None:
        try:
            mpi = nccl.parse_mpirun(argv)
        except (ValueError, IndexError) as exc:
            return f"{exc}\n"
        if mpi.rsh_agent is None:
            host = mpi.hosts[0][0]
            return (f"ssh: Could not resolve hostname {host}: Name or service not known\n"
                    "ORTE was unable to reliably start one or more daemons.\n")
        mounts = [m.get("mountPath", "") for m in launcher["spec"]["containers"][0].get("volumeMounts") or []]
        if not any(mpi.rsh_agent.startswith(m.rstrip("/") + "/") for m in mounts if m):
            # the image has no such script: it must come from a volume an init container filled
            return f"sh: 1: {mpi.rsh_agent}: not found\nORTE was unable to reliably start one or more daemons.\n"
        if mpi.program[0].rsplit("/", 1)[-1] != "all_reduce_perf":
            return f"{mpi.program[0]}: not found\n"
        try:
            args = nccl.parse(mpi.program[1:])
        except (ValueError, KeyError) as exc:
            return f"{exc}\n"
        ranks_on: dict[str, int] = {}
        efa_pods: dict[str, bool] = {}
        for host, slots in mpi.hosts:
            pod = store.get(PODS, key[1], host)
            node = self.world.nodes.get((pod or {}).get("spec", {}).get("nodeName") or "")
            if pod is None or node is None or pod.get("status", {}).get("phase") != "Running":
                return f'Error from server (NotFound): pods "{host}" not found\n'
            if not node.network_reachable or not self.fleet.kubelet_ready(node, now):
                return f"error dialing backend: dial tcp {node.private_ip}:10250: i/o timeout\n"
            if nccl.visible_gpus(pod, node) < slots * args.gpus:
                return nccl.NO_CUDA
            ranks_on[node.name] = ranks_on.get(node.name, 0) + slots * args.gpus
            efa_pods[node.name] = efa_pods.get(node.name, True) and nccl.efa_devices(pod) > 0
        launch.mpi, launch.args, launch.ranks = mpi, args, sum(ranks_on.values())
        nodes = [self.world.nodes[n] for n in ranks_on]
        if len(nodes) == 1:     # FIDELITY EFA-1: every rank on one node: PCIe, no fabric
            launch.loads, launch.busbw = {}, hardware.PCIE5_X16_GBPS * 0.8
        elif not all(efa_pods.values()):
            launch.loads, launch.busbw = {}, SOCKET_BUSBW_GBPS
            if mpi.env.get("NCCL_DEBUG") == "INFO" and launch.runs == 0:
                self._log(key, "NCCL INFO NET/Socket : Using [0]eth0\n")
        else:
            launch.loads = {n.name: nccl.SATURATING_LOAD * ranks_on[n.name] / max(1, len(n.gpus)) for n in nodes}
            groups = {n.placement_group for n in nodes}
            in_group = self.world.behaviour.placement_group and len(groups) == 1 and None not in groups
            share = 1.0 if in_group else EFA_NO_PLACEMENT_GROUP_BW_SHARE
            launch.busbw = hardware.EFA_GBPS * max(launch.loads.values()) * share
            itype = hardware.INSTANCE_TYPES.get(nodes[0].instance_type)
            nics = itype.efa_interfaces if itype else 1
            if mpi.env.get("NCCL_DEBUG") == "INFO" and launch.runs == 0:
                self._log(key, "NCCL INFO NET/OFI Using Libfabric version 1.22\n"
                               f"NCCL INFO NET/OFI Selected Provider is efa (found {nics} nics)\n")
        launch.run_end = now + args.run_s
        return None

    def _hosts_alive(self, store: ObjectStore, namespace: str, launch: Launch) -> bool:
        for host, _ in launch.mpi.hosts if launch.mpi else []:
            pod = store.get(PODS, namespace, host)
            if pod is None or ko.is_terminating(pod) or pod.get("status", {}).get("phase") != "Running":
                return False
        return True

    def _fail(self, store: ObjectStore, pod: Obj, key: tuple[str, str, str], launch: Launch, error: str) -> None:
        """mpirun exits non-zero; a shell loop would retry it at once, the same way, so one failure is logged."""
        self._log(key, error)
        launch.over, launch.run_end, launch.loads = True, None, {}
        if not launch.loop:
            self._set_phase(store, pod, "Failed")

    @staticmethod
    def _set_phase(store: ObjectStore, pod: Obj, phase: str) -> None:
        def change(obj: Obj) -> None:
            obj.setdefault("status", {})["phase"] = phase
            ko.set_pod_ready(obj, False)
        try:
            store.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], change, actor="kubelet")
        except NotFound:
            pass

    def _apply_loads(self) -> None:
        wanted: dict[str, float] = {}
        for launch in self.launches.values():
            if launch.run_end is None:
                continue
            for node, level in launch.loads.items():
                wanted[node] = min(nccl.SATURATING_LOAD, wanted.get(node, 0.0) + level)
        for name in set(wanted) | set(self._applied):
            node = self.world.nodes.get(name)
            level = wanted.get(name, 0.0)
            if node is not None and self._applied.get(name) != level:
                node.efa_load = level
        self._applied = {n: v for n, v in wanted.items()}
