"""How many concurrent streams the gateway sustains on one core without distorting the model's timings.

Why this exists: every latency verdict the harness gives on the twin assumes the twin itself adds nothing
measurable. The gateway stamps each SSE event with the model's due time for that token (server_due_ts)
and the time it actually wrote it (server_send_ts); the difference is what the server adds. This module
runs the gateway in its own process pinned to one core, drives it from another core with a minimal
asyncio HTTP client (cheaper than any library client, so the client is not the bottleneck), and reports
tokens/s and the p99 the server adds. The bench suite calls `measure()` / `find_capacity()`; by hand:

    python -m harness.twin.serving.capacity --streams 300
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from pydantic import BaseModel

from harness.twin.clock import TwinClock
from harness.twin.kube.store import ObjectStore, resource
from harness.twin.profiles import parse_profile
from harness.twin.world import Cluster, Gpu, Node, World

BUDGET_MS = 1.0        # what the gateway may add at p99 (the acceptance bound)


class CapacityReport(BaseModel):
    streams: int
    completed: int
    failed: int
    tokens: int
    seconds: float
    tokens_per_s: float
    server_added_p50_ms: float
    server_added_p99_ms: float
    client_lag_p99_ms: float
    model_tbt_p50_ms: float
    observed_tbt_p50_ms: float
    observed_tbt_p99_ms: float
    server_cpu: int | None
    server_cpu_percent: float          # the gateway process's CPU over the run (100 = one core saturated)
    client_cpu_percent: float          # the measuring client's; near 100 means the numbers are the client's lag
    other_cpu_percent: float           # CPU everything else on the machine used meanwhile (neighbours)
    environment_jitter_p99_ms: float   # idle 1 ms timers' lateness on the server core just before the run
    degraded: bool                     # the machine or the client, not the gateway, limits the measurement
    within_budget: bool


def demo_world(nodes_per_az: int = 2, gpus_per_node: int = 8, profile: str = "article") -> World:
    """The default topology's 13B fleet (one cluster per AZ, one replica per GPU), without the control plane."""
    world = World(behaviour=parse_profile(profile), clock=TwinClock(30.0))
    pods = resource("pods")
    for az in world.azs:
        cname = f"g7-use2{az[-1]}"
        store = ObjectStore(cname)
        world.clusters[cname] = Cluster(cname, [az], store)
        for i in range(nodes_per_az):
            name = f"ip-10-0-{az[-1]}{i}.us-east-2.compute.internal"
            world.nodes[name] = Node(name=name, cluster=cname, az=az, subnet_id=f"subnet-{az}", instance_id=f"i-{az[-1]}{i}",
                                     instance_type="g7.48xlarge", nodegroup=f"{cname}-13b", capacity_type="SPOT",
                                     placement_group=None, private_ip="10.0.0.1",
                                     gpus=[Gpu(g, f"GPU-{name}-{g}") for g in range(gpus_per_node)])
            for g in range(gpus_per_node):
                store.create(pods, {
                    "metadata": {"name": f"triton-13b-{az[-1]}{i}{g}", "namespace": "inference",
                                 "labels": {"app": "triton", "model": "llama-13b-fp8"},
                                 "annotations": {"twin.g7chaos.io/gpus": str(g)}},
                    "spec": {"nodeName": name, "containers": [{"name": "triton", "image": "tritonserver"}]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    return world


async def _timer_jitter(seconds: float) -> list[float]:
    """Lateness of 1 ms timers on an idle loop: what the machine itself adds (VM scheduling, neighbours)."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    end = loop.time() + seconds
    while loop.time() < end:
        t = loop.time()
        await asyncio.sleep(0.001)
        late.append(max(0.0, loop.time() - t - 0.001))
    return late


def _serve(conn, cpu: int | None, world_options: dict | None = None, jitter_s: float = 0.0) -> None:   # child process
    import uvicorn

    from harness.twin.serving import ServingFleet, build_gateway_app
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    # proto IPPROTO_TCP, not the default 0: accepted sockets inherit it, and asyncio turns Nagle off only on
    # sockets whose proto says TCP; with Nagle on, a response's body waited ~40 ms for the ACK of its headers
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    world = demo_world(**(world_options or {}))
    app = build_gateway_app(ServingFleet(world))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="on"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        late = await _timer_jitter(jitter_s) if jitter_s > 0 else []
        conn.send({"port": sock.getsockname()[1], "jitter_p99_ms": _pct(late, 0.99) * 1e3 if late else 0.0})
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)   # parent says stop
        server.should_exit = True
        await task
    asyncio.run(main())


@dataclass
class _Sample:
    added: list[float]
    lag: list[float]
    due_gaps: list[float]
    gaps: list[float]
    dues: list[float] = field(default_factory=list)
    tokens: int = 0
    completed: int = 0
    failed: int = 0


class _StreamClient(asyncio.Protocol):
    """One streaming request, parsed in data_received: no reader task, no future per line.

    The client has to be several times cheaper per event than the server it measures, or the numbers
    are its own lag; a Protocol callback that slices the two stamps out of each event is.
    """

    def __init__(self, request: bytes, sample: _Sample, finished: asyncio.Future):
        self.request, self.sample, self.finished = request, sample, finished
        self.buf = b""
        self.last_due = self.last_recv = 0.0
        self.ok = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)   # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        recv = time.time()
        buf = self.buf + data
        sample = self.sample
        start = 0
        while True:
            i = buf.find(b"data: ", start)
            if i < 0:
                break
            end = buf.find(b"\n\n", i)
            if end < 0:
                break
            start = end + 2
            if buf.startswith(b"data: [DONE]", i):
                self.ok = True
                self.transport.close()
                break
            # the stamps are the event's last two fields: slice them out instead of parsing the JSON
            d = buf.rfind(b'"server_due_ts":', i, end)
            t = buf.find(b',"server_send_ts":', d, end)
            if d < 0 or t < 0:
                continue
            due, sent = float(buf[d + 16:t]), float(buf[t + 18:buf.find(b"}", t, end)])
            sample.added.append(sent - due)
            sample.dues.append(due)
            sample.lag.append(recv - due)
            if self.last_due:
                sample.due_gaps.append(due - self.last_due)
                sample.gaps.append(recv - self.last_recv)
            self.last_due, self.last_recv = due, recv
            sample.tokens += 1
        self.buf = buf[start:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ok:
            self.sample.completed += 1
        else:
            self.sample.failed += 1
        if not self.finished.done():
            self.finished.set_result(None)


async def _one_stream(port: int, i: int, max_tokens: int, prompt_words: int, sample: _Sample, deadline: float) -> None:
    body = json.dumps({"model": "llama-13b-fp8", "prompt": f"capacity {i} " + "w " * prompt_words,
                       "max_tokens": max_tokens, "stream": True}).encode()
    req = (f"POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
           f"x-g7-stamp: 1\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    try:
        transport, _ = await loop.create_connection(lambda: _StreamClient(req, sample, finished), "127.0.0.1", port)
    except OSError:
        sample.failed += 1
        return
    try:
        await asyncio.wait_for(finished, max(0.1, deadline - time.time()))
    except asyncio.TimeoutError:
        transport.close()
        await finished


def _proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine, all cores (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


async def _drive(port: int, streams: int, max_tokens: int, prompt_words: int, ramp_s: float, timeout_s: float) -> tuple[_Sample, float]:
    sample = _Sample([], [], [], [])
    gc.disable()                    # a collection pause in the client would read as server lag
    start = time.time()
    deadline = start + timeout_s
    tasks = []
    for i in range(streams):
        tasks.append(asyncio.create_task(_one_stream(port, i, max_tokens, prompt_words, sample, deadline)))
        await asyncio.sleep(ramp_s / streams)
    await asyncio.gather(*tasks)
    gc.enable()
    return sample, time.time() - start


@dataclass
class GatewayProcess:
    url: str
    port: int
    pid: int
    jitter_p99_ms: float      # idle timer lateness on its core before the run (0 if not probed)


@contextmanager
def gateway_process(server_cpu: int | None = None, jitter_s: float = 0.0,
                    **world_options: object) -> Iterator[GatewayProcess]:
    """A gateway over demo_world(**world_options) in its own process.

    Its own process means its own GIL and, with server_cpu, its own core: what a client measures is
    then the model's timing plus the network, not contention with the client's interpreter.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if server_cpu is not None and server_cpu not in cpus:
        server_cpu = None
    proc = ctx.Process(target=_serve, args=(child, server_cpu, world_options, jitter_s), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("gateway process did not start")
        hello = parent.recv()
        assert proc.pid is not None
        yield GatewayProcess(f"http://127.0.0.1:{hello['port']}", hello["port"], proc.pid, hello["jitter_p99_ms"])
    finally:
        try:
            parent.send("stop")
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


def measure(streams: int = 300, max_tokens: int = 128, prompt_words: int = 32, ramp_s: float = 1.0,
            timeout_s: float = 30.0, server_cpu: int | None = 0, client_cpu: int | None = 1,
            jitter_s: float = 0.5) -> CapacityReport:
    """Run `streams` concurrent streams against a fresh gateway process pinned to `server_cpu`."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    with gateway_process(server_cpu=server_cpu, jitter_s=jitter_s) as gw:
        try:
            if client_cpu is not None and client_cpu in cpus and len(cpus) > 1:
                os.sched_setaffinity(0, {client_cpu})
            cpu0, mine0, busy0 = _proc_cpu_s(gw.pid), time.process_time(), _machine_busy_s()
            sample, seconds = asyncio.run(_drive(gw.port, streams, max_tokens, prompt_words, ramp_s, timeout_s))
            cpu_pct = (_proc_cpu_s(gw.pid) - cpu0) / seconds * 100 if seconds else 0.0
            client_pct = (time.process_time() - mine0) / seconds * 100 if seconds else 0.0
            others_pct = max(0.0, (_machine_busy_s() - busy0) / seconds * 100 - cpu_pct - client_pct) if seconds else 0.0
        finally:
            if cpus:
                os.sched_setaffinity(0, cpus)
    added_p99 = _pct(sample.added, 0.99) * 1e3
    return CapacityReport(
        streams=streams, completed=sample.completed, failed=sample.failed, tokens=sample.tokens, seconds=seconds,
        tokens_per_s=sample.tokens / seconds if seconds else 0.0,
        server_added_p50_ms=_pct(sample.added, 0.5) * 1e3, server_added_p99_ms=added_p99,
        client_lag_p99_ms=_pct(sample.lag, 0.99) * 1e3,
        model_tbt_p50_ms=_pct(sample.due_gaps, 0.5) * 1e3,
        observed_tbt_p50_ms=_pct(sample.gaps, 0.5) * 1e3, observed_tbt_p99_ms=_pct(sample.gaps, 0.99) * 1e3,
        server_cpu=server_cpu if server_cpu in cpus else None, server_cpu_percent=cpu_pct,
        client_cpu_percent=client_pct, other_cpu_percent=others_pct, environment_jitter_p99_ms=gw.jitter_p99_ms,
        degraded=gw.jitter_p99_ms > BUDGET_MS / 2 or client_pct > 80.0 or others_pct > 20.0,
        within_budget=sample.failed == 0 and added_p99 <= BUDGET_MS)


def find_capacity(levels: tuple[int, ...] = (100, 200, 300, 400, 600), **kw) -> tuple[int, list[CapacityReport]]:
    """Step the stream count up until the server adds more than BUDGET_MS at p99; return the last level held."""
    held, reports = 0, []
    for n in levels:
        report = measure(streams=n, **kw)
        reports.append(report)
        if not report.within_budget:
            break
        held = n
    return held, reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--find", action="store_true", help="step up until the 1 ms p99 budget is exceeded")
    args = parser.parse_args(argv)
    if args.find:
        held, reports = find_capacity(max_tokens=args.max_tokens)
        for r in reports:
            print(r.model_dump_json())
        print(json.dumps({"capacity_streams": held}))
        return 0
    report = measure(streams=args.streams, max_tokens=args.max_tokens)
    print(report.model_dump_json(indent=2))
    return 0 if report.within_budget else 1


if __name__ == "__main__":
    raise SystemExit(main())
