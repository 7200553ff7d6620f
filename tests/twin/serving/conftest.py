"""Fixtures for the serving tests: a small World with Ready triton pods, and the gateway served on loopback.

The gateway runs in a real uvicorn server on its own thread and event loop (as in the twin), and tests
talk to it with a real HTTP client; the World and the ObjectStore are populated here the way the twin's
controllers would populate them.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import httpx
import pytest
import uvicorn

from harness.twin.clock import TwinClock
from harness.twin.kube.store import ObjectStore, resource
from harness.twin.profiles import parse_profile
from harness.twin.serving import ServingFleet, build_gateway_app
from harness.twin.world import Cluster, Gpu, Node, World
from support.polling import wait_for

PODS = resource("pods")


def make_node(name: str, cluster: str, az: str, gpus: int, role: str = "13b", placement_group: str | None = None) -> Node:
    return Node(name=name, cluster=cluster, az=az, subnet_id=f"subnet-{az}", instance_id=f"i-{name[-6:]}",
                instance_type="g7.48xlarge", nodegroup=f"{cluster}-{role}", capacity_type="SPOT" if role == "13b" else "ON_DEMAND",
                placement_group=placement_group, private_ip="10.0.0.1",
                gpus=[Gpu(i, f"GPU-{name}-{i}") for i in range(gpus)], role=role)  # type: ignore[arg-type]


def triton_pod(name: str, node: str, model: str, gpus: list[int], tp_group: str | None = None, ready: bool = True) -> dict:
    labels = {"app": "triton", "model": model}
    if tp_group:
        labels["tp-group"] = tp_group
    return {
        "metadata": {"name": name, "namespace": "inference", "labels": labels,
                     "annotations": {"twin.g7chaos.io/gpus": ",".join(map(str, gpus))}},
        "spec": {"nodeName": node, "containers": [{"name": "triton", "image": "nvcr.io/nvidia/tritonserver"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def build_world(profile: str = "article", gpus_per_node: int = 2, nodes_per_az: int = 1, tp70b: bool = False) -> World:
    """Two AZs; per AZ `nodes_per_az` nodes, each with one 13B replica per GPU (and optionally a 70B TP pair)."""
    behaviour = parse_profile(profile)
    world = World(behaviour=behaviour, clock=TwinClock(30.0))
    single = behaviour.topology == "single-multi-az-cluster"
    for az in world.azs:
        cname = "g7-use2" if single else f"g7-use2{az[-1]}"
        if cname not in world.clusters:
            world.clusters[cname] = Cluster(cname, [az], ObjectStore(cname))
        else:
            world.clusters[cname].azs.append(az)
        store = world.clusters[cname].store
        for i in range(nodes_per_az):
            node = make_node(f"ip-10-0-{az[-1]}{i}.us-east-2.compute.internal", cname, az, gpus_per_node)
            world.nodes[node.name] = node
            for g in range(gpus_per_node):
                store.create(PODS, triton_pod(f"triton-13b-{az[-1]}{i}{g}", node.name, "llama-13b-fp8", [g]))
    if tp70b:
        cname = "g7-use2" if single else "g7-use2a"
        store = world.clusters[cname].store
        pg = "g7-tp-70b" if behaviour.placement_group else None
        for k in range(2):
            node = make_node(f"ip-10-0-7{k}.us-east-2.compute.internal", cname, "us-east-2a", 8, "70b-tp", pg)
            world.nodes[node.name] = node
            store.create(PODS, triton_pod(f"triton-70b-{k}", node.name, "llama-70b-fp16", list(range(8)), "tp-0"))
    return world


@dataclass
class Served:
    url: str
    world: World
    fleet: ServingFleet
    loop: asyncio.AbstractEventLoop

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop thread (store mutations happen there in the twin)."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


@dataclass
class _Server:
    server: uvicorn.Server
    thread: threading.Thread


def serve_gateway(world: World) -> tuple[Served, _Server]:
    fleet = ServingFleet(world)
    app = build_gateway_app(fleet)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        holder["loop"] = loop
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, daemon=True, name="gateway")
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), 10, "the gateway to start", interval=0.01)
    if not server.started:
        raise RuntimeError("gateway did not start")
    url = f"http://127.0.0.1:{port}"
    world.serving_url = url
    return Served(url, world, fleet, holder["loop"]), _Server(server, thread)


@pytest.fixture
def gateway() -> Iterator[Callable[..., Served]]:
    """Factory: gateway(profile=..., **world options) -> Served; every server is stopped after the test."""
    running: list[_Server] = []

    def start(profile: str = "article", **kw: Any) -> Served:
        served, srv = serve_gateway(build_world(profile, **kw))
        running.append(srv)
        return served

    yield start
    for srv in running:
        srv.server.should_exit = True
        srv.thread.join(10)


def stream(client: httpx.Client, path: str, body: dict, headers: dict | None = None) -> "StreamResult":
    """POST with stream=true and read the SSE line by line, timing every content event."""
    out = StreamResult()
    sent = time.perf_counter()
    with client.stream("POST", path, json={**body, "stream": True}, headers=headers or {}) as resp:
        out.status = resp.status_code
        out.headers = dict(resp.headers)
        if resp.status_code != 200:
            resp.read()
            out.body = resp.text
            return out
        try:
            for line in resp.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    out.done = True
                    break
                event = json.loads(data)
                choice = event["choices"][0]
                text = choice.get("text") if "text" in choice else choice["delta"].get("content", "")
                out.times.append(time.perf_counter() - sent)
                out.events.append(event)
                out.text += text
        except httpx.HTTPError as exc:
            out.error = repr(exc)
    return out


@dataclass
class StreamResult:
    status: int = 0
    headers: dict | None = None
    text: str = ""
    done: bool = False
    error: str | None = None
    body: str = ""

    def __post_init__(self) -> None:
        self.times: list[float] = []
        self.events: list[dict] = []

    @property
    def ttft(self) -> float:
        return self.times[0]

    @property
    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:])]


@pytest.fixture
def sse() -> Callable[..., StreamResult]:
    """The streaming reader, as a fixture so test modules need not import conftest."""
    return stream


def raw_stream(url: str, path: str, body: dict, headers: dict | None = None, timeout: float = 10.0) -> StreamResult:
    """The leanest possible SSE client (a blocking socket, no HTTP library), for timing measurements.

    A library client adds its own milliseconds between the wire and the caller; what is compared with
    the model's stated timings must be what the server put on the wire.
    """
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps({**body, "stream": True}).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    req = (f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{extra}"
           f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n").encode() + payload
    out = StreamResult(headers={})
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sent = time.perf_counter()
    sock.sendall(req)
    buf = b""
    try:
        while not out.done:
            data = sock.recv(65536)
            now = time.perf_counter()
            if not data:
                break
            buf += data
            if not out.status and b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                out.status = int(head.split(b" ", 2)[1])
            while out.status:
                i = buf.find(b"data: ")
                j = buf.find(b"\n\n", i)
                if i < 0 or j < 0:
                    break
                data_line, buf = buf[i + 6:j], buf[j + 2:]
                if data_line == b"[DONE]":
                    out.done = True
                    break
                event = json.loads(data_line)
                out.events.append(event)
                out.times.append(now - sent)
                out.text += event["choices"][0].get("text", "")
    finally:
        sock.close()
    return out


@pytest.fixture(name="raw_stream")
def raw_stream_fixture() -> Callable[..., StreamResult]:
    return raw_stream
