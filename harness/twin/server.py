"""The twin assembled: one asyncio loop serving every API on loopback, plus the controllers.

Layout: each Starlette app (a Kubernetes API per cluster, the inference gateway, IMDS, ARC zonal
shift) runs under its own uvicorn.Server on a pre-bound 127.0.0.1:0 socket, all on one asyncio loop
with the fleet's controllers and the AWS behaviour loop; moto runs in its own thread. Everything that
mutates the World happens on that loop, so no part of the twin needs locks around it.

The twin writes `kubeconfig` (one context per cluster) and `endpoints.json` (every URL, the region,
the time scale) to its output folder: the only things a client needs to treat it as a real target.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import uvicorn

from harness.twin.controllers.base import ControllerManager
from harness.twin.controllers.manager import build_manager
from harness.twin import heap
from harness.twin.flaky import FlakyApi, FlakyConfig
from harness.twin.fleet.handlers import FleetHandlers
from harness.twin.fleet.runtime import Fleet, FleetHooks
from harness.twin.kube.api import build_kube_app
from harness.twin.kube.flaky import FlakyKubeApp
from harness.twin.profiles import parse_profile
from harness.twin.topology import build_world
from harness.twin.world import World

log = logging.getLogger(__name__)

AWS_ACCESS_KEY = "testing"
AWS_SECRET_KEY = "testing"
ACCOUNT_ID = "123456789012"
DEFAULT_OUT = Path("reports/twin")


class _LoopServer(uvicorn.Server):
    """A uvicorn server that shares the twin's loop: signals belong to the twin, not to each server."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


def _bind() -> socket.socket:
    # proto IPPROTO_TCP, not the default 0: accepted sockets inherit it, and asyncio turns Nagle off only on
    # sockets whose proto says TCP; with Nagle on, a response's body waited ~40 ms for the ACK of its headers
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    sock.setblocking(False)
    return sock


@dataclass
class _Served:
    name: str
    url: str
    server: _LoopServer
    sock: socket.socket
    task: asyncio.Task | None = None


@dataclass
class TwinServer:
    """The whole twin. `await start()`, then `await run_forever()` (or `stop()`)."""

    profile: str = "article"
    nodes_per_az: int = 2
    time_scale: float = 30.0
    seed: int = 7
    out_dir: Path = DEFAULT_OUT
    flaky_api: float = 0.0          # fraction of client calls the Kubernetes and AWS APIs fail (0: reliable)
    rbac: str | None = None         # an RBAC file (deploy/rbac.yaml) the Kubernetes APIs enforce: 403 otherwise
    world: World | None = None
    fleet: Fleet | None = None
    manager: ControllerManager | None = None
    endpoints: dict[str, Any] = field(default_factory=dict)
    aws: Any = None
    serving: Any = None
    flaky: FlakyApi | None = None   # what the flaky control plane injected, by API and kind
    _flaky_front: Any = None
    _served: list[_Served] = field(default_factory=list)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _stop: asyncio.Event | None = None

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        # the flaky control plane's delays are control-plane time, compressed like the rest: a 15 s client
        # timeout and a 1 s Retry-After on AWS are 0.5 s and "retry now" at the default 30x
        self.flaky = FlakyApi(FlakyConfig(rate=self.flaky_api, seed=self.seed, hold_s=min(1.5, 15.0 / self.time_scale),
                                          retry_after_s=1 if self.time_scale < 10 else 0))

    # -- start -------------------------------------------------------------------------------------
    async def start(self) -> dict[str, Any]:
        behaviour = parse_profile(self.profile)
        self._stop = asyncio.Event()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        world = self.world = build_world(behaviour, self.nodes_per_az, self.time_scale, self.seed)
        fleet = self.fleet = Fleet(world)
        hooks = fleet.hooks = FleetHooks(fleet)
        self.manager = build_manager(fleet)

        from harness.twin.aws.twin import AwsTwin   # the AWS side: moto plus its behaviour
        (self.out_dir / "endpoints.json").unlink(missing_ok=True)   # never leave a stale file to readers
        started = asyncio.get_running_loop().time()
        self.aws = AwsTwin(world, hooks)
        # moto's start-up (imports, service models) overlaps with bringing the HTTP servers up
        aws_start = asyncio.ensure_future(asyncio.to_thread(self.aws.start))
        try:
            for name, cluster in world.clusters.items():
                handlers = FleetHandlers(fleet, name)
                kube_app = build_kube_app(cluster.store, exec_handler=handlers.exec, proxy_handler=handlers.proxy,
                                          log_handler=handlers.log)
                self._serve(f"kube:{name}", self._flaky_wrap(kube_app, FlakyKubeApp, f"kube:{name}"))
            gateway = self._gateway(world)
            if gateway is not None:
                world.serving_url = self._serve("gateway", gateway).url
            extra = self._aws_apps()
            await self._start_servers()
        finally:
            aws_url = await aws_start
        log.info("servers up and moto started in %.2fs", asyncio.get_running_loop().time() - started)
        client_aws_url = aws_url
        if self.flaky is not None and self.flaky.config.enabled:   # clients get the flaky front; controllers moto
            from harness.twin.aws.flaky import FlakyAwsFront
            self._flaky_front = FlakyAwsFront(self.flaky)
            client_aws_url = await asyncio.to_thread(self._flaky_front.start)
        self.aws.seed()                              # launches the fleet: hooks run on this loop
        self.manager.settle()
        fleet.instant = False
        fleet.aws_client = self._client_factory(aws_url, world.region)
        from harness.twin.kube.auditlog import install_audit   # every API call served, read by tests only
        install_audit(self)
        if self.rbac:                                       # opt-in: refuse what the RBAC file does not allow
            from harness.twin.kube.rbac import RbacPolicy, install_rbac
            install_rbac(self, RbacPolicy.from_yaml(Path(self.rbac).read_text()))
        for name in world.clusters:
            self.aws.set_cluster_endpoint(name, next(s.url for s in self._served if s.name == f"kube:{name}"))
        log.info("fleet seeded in %.2fs", asyncio.get_running_loop().time() - started)

        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.manager.run(self._stop), name="controllers"))
        self._tasks.append(loop.create_task(self.aws.run(), name="aws"))

        urls = {s.name: s.url for s in self._served}
        kubeconfig = self.out_dir / "kubeconfig"
        kubeconfig.write_text(render_kubeconfig({name: urls[f"kube:{name}"] for name in world.clusters}))
        self.endpoints = {
            "region": world.region, "time_scale": self.time_scale, "profile": self.profile,
            "kubeconfig": str(kubeconfig.resolve()), "contexts": list(world.clusters),
            "aws_endpoint": client_aws_url, "aws_endpoints": {k: urls[k] for k in extra if k != "imds"},
            "inference_url": world.serving_url, "pid": os.getpid(),
            "imds_url_template": f"{urls['imds']}/nodes/{{node}}" if "imds" in urls else "",
            "kube_urls": {name: urls[f"kube:{name}"] for name in world.clusters},
            "aws_access_key_id": AWS_ACCESS_KEY, "aws_secret_access_key": AWS_SECRET_KEY, "account_id": ACCOUNT_ID,
            "flaky_api": self.flaky_api, "rbac": self.rbac,
        }
        heap.settle()                                # the seeded fleet's heap: no full collection walks it again
        tmp = self.out_dir / "endpoints.json.tmp"
        tmp.write_text(json.dumps(self.endpoints, indent=2) + "\n")
        tmp.replace(self.out_dir / "endpoints.json")    # readers never see half a file
        return self.endpoints

    @staticmethod
    def _client_factory(endpoint: str, region: str) -> Callable[[str], Any]:
        import boto3
        session = boto3.session.Session(aws_access_key_id=AWS_ACCESS_KEY, aws_secret_access_key=AWS_SECRET_KEY,
                                        region_name=region)
        clients: dict[str, Any] = {}
        lock = threading.Lock()

        def client(service: str) -> Any:
            with lock:
                if service not in clients:
                    clients[service] = session.client(service, endpoint_url=endpoint)
                return clients[service]
        return client

    def _flaky_wrap(self, app: Any, middleware: Any, surface: str) -> Any:
        """`app` behind the flaky control plane's middleware when that mode is on, else `app` itself."""
        if self.flaky is None or not self.flaky.config.enabled:
            return app
        return middleware(app, self.flaky, surface)

    def _gateway(self, world: World) -> Any:
        try:
            from harness.twin.serving.replicas import ServingFleet
            from harness.twin.serving.gateway import build_gateway_app
        except ImportError:
            log.warning("serving layer not available: no inference gateway")
            return None
        self.serving = ServingFleet(world)
        assert self.fleet is not None
        self.fleet.serving = self.serving
        return build_gateway_app(self.serving)

    def _aws_apps(self) -> list[str]:
        """The AWS side's HTTP apps besides moto: IMDS and the ARC zonal shift endpoint."""
        names = []
        for name, attr in (("imds", "imds_app"), ("arc-zonal-shift", "zonal_shift_app")):
            factory = getattr(self.aws, attr, None)
            if factory is not None:
                app = factory() if callable(factory) else factory
                if name != "imds":     # instance metadata is the node's, not the control plane's
                    from harness.twin.aws.flaky import FlakyAsgi
                    app = self._flaky_wrap(app, FlakyAsgi, f"aws:{name}")
                self._serve(name, app)
                names.append(name)
        return names

    def _serve(self, name: str, app: Any) -> _Served:
        sock = _bind()
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                timeout_graceful_shutdown=1, ws_ping_interval=None)
        served = _Served(name, f"http://127.0.0.1:{sock.getsockname()[1]}", _LoopServer(config), sock)
        self._served.append(served)
        return served

    async def _start_servers(self) -> None:
        loop = asyncio.get_running_loop()
        for served in self._served:
            served.task = loop.create_task(served.server.serve(sockets=[served.sock]), name=f"uvicorn:{served.name}")
        deadline = loop.time() + 10
        while not all(s.server.started for s in self._served):
            failed = [s for s in self._served if s.task is not None and s.task.done()]
            if failed:
                raise RuntimeError(f"{failed[0].name} failed to start: {failed[0].task.exception()!r}")  # type: ignore[union-attr]
            if loop.time() > deadline:
                raise TimeoutError("twin servers did not start within 10 s")
            await asyncio.sleep(0.01)

    # -- run / stop --------------------------------------------------------------------------------
    async def run_forever(self) -> None:
        assert self._stop is not None, "start() first"
        await self._stop.wait()
        await self._shutdown()

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def stop(self) -> None:
        self.request_stop()
        await self._shutdown()

    async def _shutdown(self) -> None:
        self.request_stop()
        for served in self._served:
            served.server.should_exit = True
        if self.aws is not None:
            with contextlib.suppress(Exception):
                await self.aws.aclose()
        for task in self._tasks:
            if task.get_name() != "controllers":
                task.cancel()
        servers = [s.task for s in self._served if s.task is not None]
        await asyncio.gather(*self._tasks, *servers, return_exceptions=True)
        self._tasks.clear()
        for served in self._served:
            served.sock.close()
        self._served.clear()
        if self._flaky_front is not None:
            await asyncio.to_thread(self._flaky_front.stop)
            self._flaky_front = None
        if self.aws is not None:
            await asyncio.to_thread(self.aws.stop)
            self.aws = None

    # -- tests -------------------------------------------------------------------------------------
    @classmethod
    def start_in_thread(cls, profile: str = "article", nodes_per_az: int = 2, time_scale: float = 30.0,
                        out_dir: Path | str = DEFAULT_OUT, seed: int = 7, timeout_s: float = 20.0,
                        flaky_api: float = 0.0, rbac: str | None = None) -> "TwinHandle":
        """Run the twin on its own loop in a daemon thread; returns once every endpoint is serving."""
        twin = cls(profile=profile, nodes_per_az=nodes_per_az, time_scale=time_scale, seed=seed, out_dir=Path(out_dir),
                   flaky_api=flaky_api, rbac=rbac)
        started = threading.Event()
        failure: list[BaseException] = []
        holder: dict[str, asyncio.AbstractEventLoop] = {}

        async def main() -> None:
            holder["loop"] = asyncio.get_running_loop()
            try:
                await twin.start()
            except BaseException as exc:
                failure.append(exc)
                started.set()
                with contextlib.suppress(Exception):
                    await twin._shutdown()
                return
            started.set()
            await twin.run_forever()

        thread = threading.Thread(target=lambda: asyncio.run(main()), name="g7-twin", daemon=True)
        thread.start()
        if not started.wait(timeout_s):
            raise TimeoutError(f"the twin did not start within {timeout_s}s")
        if failure:
            raise RuntimeError(f"the twin failed to start: {failure[0]!r}") from failure[0]
        return TwinHandle(twin, holder["loop"], thread)


@dataclass
class TwinHandle:
    """A twin running in a background thread (tests, tools)."""

    twin: TwinServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def endpoints(self) -> dict[str, Any]:
        return self.twin.endpoints

    @property
    def world(self) -> World:
        assert self.twin.world is not None
        return self.twin.world

    @property
    def fleet(self) -> Fleet:
        assert self.twin.fleet is not None
        return self.twin.fleet

    def call(self, fn: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        """Run `fn` on the twin's loop (where every World change belongs) and return its result."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.twin.request_stop)
            self.thread.join(timeout_s)


def render_kubeconfig(servers: dict[str, str]) -> str:
    """A kubeconfig with one cluster, user and context per twin cluster (JSON is valid YAML)."""
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": url}} for name, url in servers.items()],
        "users": [{"name": f"{name}-admin", "user": {"token": "g7-twin-token"}} for name in servers],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}} for name in servers],
        "current-context": next(iter(servers), ""),
    }
    return json.dumps(config, indent=2) + "\n"
