"""A running AWS twin for the AWS side's own tests: moto, the behaviour loop, IMDS and zonal-shift apps.

The loop runs in a background thread as in the assembled twin; the tests drive it only through real
boto3 clients and HTTP on loopback, and watch the hooks a test double records.
"""
from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Callable, Iterator

import pytest
import uvicorn

from harness.twin.aws.hooks import RecordingHooks
from harness.twin.aws.twin import AwsTwin
from harness.twin.clock import TwinClock
from harness.twin.profiles import parse_profile
from harness.twin.world import NodeGroup, World

TIME_SCALE = 60.0


def build_world(profile: str = "article", nodes_per_az: int = 2) -> World:
    behaviour = parse_profile(profile)
    world = World(behaviour=behaviour, clock=TwinClock(TIME_SCALE), nodes_per_az=nodes_per_az)
    if behaviour.topology == "cluster-per-az":
        for az in world.azs:
            cluster = f"g7-{az.replace('us-east-2', 'use2')}"
            world.nodegroups[f"{cluster}-13b"] = NodeGroup(f"{cluster}-13b", cluster, [az], "g7.48xlarge", "SPOT",
                                                           nodes_per_az)
        tp_cluster, tp_azs = "g7-use2a", ["us-east-2a"]
    else:
        tp_cluster, tp_azs = "g7-use2", list(world.azs)
        world.nodegroups["g7-use2-13b"] = NodeGroup("g7-use2-13b", "g7-use2", list(world.azs), "g7.48xlarge", "SPOT",
                                                    nodes_per_az * len(world.azs))
    world.nodegroups[f"{tp_cluster}-70b-tp"] = NodeGroup(
        f"{tp_cluster}-70b-tp", tp_cluster, tp_azs[:1], "g7.48xlarge", "ON_DEMAND", 2, role="70b-tp",
        placement_group="g7-tp-70b" if behaviour.placement_group else None)
    return world


def state(twin: RunningTwin, name: str) -> str:
    alarms = twin.aws.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return alarms[0]["StateValue"] if alarms else "absent"


def node_in(twin: RunningTwin, cluster: str):
    return next(n for n in twin.world.nodes.values() if n.cluster == cluster and n.role == "13b")


class RunningTwin:
    def __init__(self, profile: str = "article") -> None:
        self.world = build_world(profile)
        self.hooks = RecordingHooks(self.world)
        self.aws = AwsTwin(self.world, self.hooks)
        self.loop = asyncio.new_event_loop()
        self.servers: list[uvicorn.Server] = []
        self.urls: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> "RunningTwin":
        self.aws.start()
        self.aws.seed()
        ready = threading.Event()

        async def main() -> None:
            serving = []
            for name, app in (("imds", self.aws.imds_app()), ("zonal", self.aws.zonal_shift_app())):
                sock = socket.socket()
                sock.bind(("127.0.0.1", 0))
                server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
                self.servers.append(server)
                self.urls[name] = f"http://127.0.0.1:{sock.getsockname()[1]}"
                serving.append(asyncio.create_task(server.serve(sockets=[sock])))
            self._task = asyncio.create_task(self.aws.run())
            while not all(s.started for s in self.servers):
                await asyncio.sleep(0.01)
            ready.set()
            await asyncio.gather(self._task, *serving, return_exceptions=True)

        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self._thread.start()
        assert ready.wait(10), "twin loop did not start"
        return self

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the twin's loop thread (where the world is mutated) and return its result."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def stop(self) -> None:
        if self._thread is None:
            return
        async def shutdown() -> None:
            await self.aws.aclose()
            for server in self.servers:
                server.should_exit = True
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self._thread.join(10)
        self._thread = None
        self.aws.stop()


@pytest.fixture(scope="session")
def twin(twin_pool) -> Iterator[RunningTwin]:
    """One article twin shared by the modules (starting one costs seconds); tests use disjoint nodes.
    Modules that need another profile stop it first: moto's backends hold one twin per process. A twin the pool
    still runs goes first: stopping it later would reset moto under this one and wipe what it seeded."""
    twin_pool.release()
    running = RunningTwin().start()
    yield running
    running.stop()
