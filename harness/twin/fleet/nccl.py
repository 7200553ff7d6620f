"""`all_reduce_perf` (nccl-tests) run in a pod: real competing traffic on the node's EFA fabric.

EFA saturation cannot be faked with tc (it does not touch RDMA); the real way is to run collective
traffic that competes with the tensor-parallel pair. While a run lasts, the node's fabric carries
that load: the serving layer's all-reduce slows, and the EFA physics controller counts the
retransmits and drops a congested fabric produces, which the EFA alarm reads.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from harness.twin import hardware
from harness.twin.world import Node

SATURATING_LOAD = 0.95
WALL_PER_ITERATION_S = 0.05
MAX_RUN_S = 20.0


@dataclass
class NcclArgs:
    min_bytes: int = 8
    max_bytes: int = 128 * 2**20
    factor: int = 2
    iters: int = 20
    gpus: int = 8


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


async def all_reduce_perf(node: Node, argv: list[str], loads: dict[str, int]) -> tuple[int, str, str]:
    """Hold the node's fabric saturated for the run, then print nccl-tests' table."""
    try:
        args = parse(argv)
    except (ValueError, KeyError) as exc:
        return 1, "", f"{exc}\nUsage: all_reduce_perf -b MIN -e MAX -f FACTOR -g GPUS -n ITERS\n"
    before = node.efa_load
    # each GPU in the run drives its own NCCL channels onto the node's EFA interfaces: all eight saturate
    # the fabric, fewer leave a share of it idle
    level = SATURATING_LOAD * args.gpus / 8
    loads[node.name] = loads.get(node.name, 0) + 1
    node.efa_load = max(node.efa_load, level)
    try:
        await asyncio.sleep(min(MAX_RUN_S, args.iters * WALL_PER_ITERATION_S))
    finally:
        loads[node.name] -= 1
        if loads[node.name] == 0:
            node.efa_load = before if before < level else 0.0
    busbw = hardware.EFA_GBPS * (1.0 - (before if before < level else 0.0))
    lines = [f"# nThread 1 nGpus {args.gpus} minBytes %d maxBytes %d step: %d(factor) warmup iters: 5 iters: %d"
             % (args.min_bytes, args.max_bytes, args.factor, args.iters),
             "#       size         count      type   redop    root     time   algbw   busbw #wrong",
             "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)"]
    size = args.min_bytes
    while size <= args.max_bytes:
        bw = busbw * min(1.0, size / (8 * 2**20))
        time_us = size / max(bw, 1e-3) / 1e3 + 20.0
        lines.append(f"{size:>12} {size // 4:>13}     float     sum      -1 {time_us:>8.1f} {bw * 0.5:>7.2f} {bw:>7.2f}      0")
        size *= args.factor
    lines.append(f"# Avg bus bandwidth    : {busbw:.2f} ")
    return 0, "\n".join(lines) + "\n", ""
