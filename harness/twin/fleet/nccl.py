"""nccl-tests' `all_reduce_perf`, alone in one pod or launched by mpirun across pods, and what each loads.

One process moves data only between the GPUs of its own node (NVIDIA/nccl-tests README: multi-node runs
need MPI); on G7 that is PCIe, so a one-process run loads no EFA fabric, moves no EFA counter and leaves
serving across nodes alone (FIDELITY EFA-1). mpirun whose ranks sit on several nodes' pods runs the
collective over the fabric: each node's share of the load is the share of its GPUs carrying ranks, but
only when the pod holds an EFA device; without one NCCL falls back to TCP sockets over ENA and EFA sees
nothing. A rank needs a GPU: the pod requests `nvidia.com/gpu` or names GPUs by `NVIDIA_VISIBLE_DEVICES`.
"""
from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field

from harness.twin import hardware
from harness.twin.kube.store import Obj
from harness.twin.world import Node

SATURATING_LOAD = 0.95
WALL_PER_ITERATION_S = 0.05
MAX_RUN_S = 20.0
EFA = "vpc.amazonaws.com/efa"
GPU = "nvidia.com/gpu"
NO_CUDA = "Cuda failure 'no CUDA-capable device is detected'\n"   # FIDELITY EFA-8: a rank without a GPU


@dataclass
class NcclArgs:
    min_bytes: int = 8
    max_bytes: int = 128 * 2**20
    factor: int = 2
    iters: int = 20
    gpus: int = 1

    @property
    def run_s(self) -> float:
        return min(MAX_RUN_S, self.iters * WALL_PER_ITERATION_S)


def _size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper()
    return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)


def parse(argv: list[str]) -> NcclArgs:
    args = NcclArgs()
    flags = {"-b": "min_bytes", "--minbytes": "min_bytes", "-e": "max_bytes", "--maxbytes": "max_bytes",
             "-f": "factor", "--stepfactor": "factor", "-n": "iters", "--iters": "iters", "-g": "gpus", "--ngpus": "gpus"}
    ignored = {"-w", "--warmup_iters", "-c", "--check", "-t", "--nthreads"}
    i = 0
    while i < len(argv):
        flag = argv[i]
        if i + 1 >= len(argv) or (flag not in flags and flag not in ignored):
            raise ValueError(f"Invalid argument {flag!r}")
        if flag in flags:
            value = argv[i + 1]
            setattr(args, flags[flag], _size(value) if flags[flag].endswith("bytes") else int(value))
        i += 2
    if args.iters < 1 or args.factor < 2 or args.min_bytes > args.max_bytes or not 1 <= args.gpus <= 8:
        raise ValueError("need -n >= 1, -f >= 2, -b <= -e and 1 <= -g <= 8")
    return args


def _containers(pod: Obj) -> list[dict]:
    return pod["spec"].get("containers") or []


def efa_devices(pod: Obj) -> int:
    """EFA devices the pod requests: a collective job reaches the fabric only through them."""
    return sum(int(c.get("resources", {}).get("requests", {}).get(EFA, 0) or 0) for c in _containers(pod))


def visible_gpus(pod: Obj, node: Node) -> int:
    """GPUs a process in the pod can open: those the device plugin allocated, else those NVIDIA_VISIBLE_DEVICES
    names (the container toolkit honours it for an unprivileged container by default)."""
    requested = sum(int(c.get("resources", {}).get("requests", {}).get(GPU, 0) or 0) for c in _containers(pod))
    if requested:
        return requested
    for container in _containers(pod):
        for env in container.get("env") or []:
            if env.get("name") == "NVIDIA_VISIBLE_DEVICES":
                value = str(env.get("value") or "")
                if value == "all":
                    return len(node.gpus)
                if value not in ("", "void", "none"):
                    return len([v for v in value.split(",") if v.strip()])
    return 0


def table(args: NcclArgs, busbw: float, ranks: int) -> str:
    """nccl-tests' output: header, one row per size, and the `# Avg bus bandwidth` line."""
    lines = [f"# nThread 1 nGpus {args.gpus} minBytes {args.min_bytes} maxBytes {args.max_bytes} step: "
             f"{args.factor}(factor) warmup iters: 5 iters: {args.iters} agg iters: 1 validation: 1 graph: 0",
             f"# Using devices ({ranks} ranks)",
             "#       size         count      type   redop    root     time   algbw   busbw #wrong",
             "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)"]
    size = args.min_bytes
    while size <= args.max_bytes:
        bw = busbw * min(1.0, size / (8 * 2**20))
        time_us = size / max(bw, 1e-3) / 1e3 + 20.0
        lines.append(f"{size:>12} {size // 4:>13}     float     sum      -1 {time_us:>8.1f} {bw * 0.5:>7.2f} {bw:>7.2f}      0")
        size *= args.factor
    lines.append(f"# Avg bus bandwidth    : {busbw:.2f} ")
    return "\n".join(lines) + "\n"


async def all_reduce_perf(pod: Obj, node: Node, argv: list[str]) -> tuple[int, str, str]:
    """One process: its GPUs talk over the node's PCIe switch only; the fabric is untouched."""
    try:
        args = parse(argv)
    except (ValueError, KeyError) as exc:
        return 1, "", f"{exc}\nUsage: all_reduce_perf -b MIN -e MAX -f FACTOR -g GPUS -n ITERS\n"
    if visible_gpus(pod, node) < args.gpus:
        return 1, "", NO_CUDA
    await asyncio.sleep(args.run_s)
    busbw = hardware.PCIE5_X16_GBPS * 0.8 if args.gpus > 1 else 0.0   # FIDELITY EFA-1: intra-node only
    return 0, table(args, busbw, 1), ""


@dataclass
class MpiRun:
    """One mpirun command line: where its ranks go and what they run."""

    hosts: list[tuple[str, int]]            # host (a pod name for the kubectl-exec agent) -> slots
    np: int
    rsh_agent: str | None
    program: list[str]
    env: dict[str, str] = field(default_factory=dict)


def parse_mpirun(argv: list[str]) -> MpiRun:
    hosts: list[tuple[str, int]] = []
    np, agent, env = 0, None, {}
    i = 1
    valueless = {"--allow-run-as-root", "--oversubscribe", "-q", "--quiet", "--tag-output"}
    with_value = {"-bind-to", "--bind-to", "-map-by", "--map-by", "--mca-param", "-N", "--npernode"}
    while i < len(argv) and argv[i].startswith("-"):
        flag = argv[i]
        if flag in valueless:
            i += 1
        elif flag in ("-H", "--host", "-host"):
            for item in argv[i + 1].split(","):
                name, _, slots = item.partition(":")
                hosts.append((name, int(slots or 1)))
            i += 2
        elif flag in ("-np", "-n", "--np"):
            np = int(argv[i + 1])
            i += 2
        elif flag in ("--mca", "-mca"):
            if argv[i + 1] in ("plm_rsh_agent", "orte_rsh_agent"):
                agent = argv[i + 2]
            i += 3
        elif flag == "-x":
            key, _, value = argv[i + 1].partition("=")
            env[key] = value
            i += 2
        elif flag in with_value:
            i += 2
        else:
            raise ValueError(f"mpirun: unrecognized option {flag!r}")
    if not hosts or i >= len(argv):
        raise ValueError("mpirun: no hosts (-H) or no program to run")
    return MpiRun(hosts=hosts, np=np or sum(s for _, s in hosts), rsh_agent=agent, program=argv[i:], env=env)


def launcher_program(command: list[str]) -> tuple[list[str], bool] | None:
    """The mpirun argv a container command runs, and whether a shell loop repeats it; None if it runs none."""
    argv = list(command)
    if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash") and argv[1] == "-c":
        script = argv[2].strip()
        loop = False
        for prefix, suffix in (("while :; do ", "; done"), ("while true; do ", "; done")):
            if script.startswith(prefix) and script.endswith(suffix):
                script, loop = script[len(prefix):-len(suffix)], True
        argv = shlex.split(script)
        if any(tok in (";", "&&", "|", "||") for tok in argv):
            return None
        return (argv, loop) if argv and argv[0].rsplit("/", 1)[-1] == "mpirun" else None
    return (argv, False) if argv and argv[0].rsplit("/", 1)[-1] == "mpirun" else None
