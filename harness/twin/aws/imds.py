"""The instance metadata service, one per node, at `/nodes/{node}/latest/...`.

A real IMDS is reachable only from its instance at 169.254.169.254; the twin serves every node's from one
loopback port, the node name in the path. Software on a node learns of a spot interruption by polling
`meta-data/spot/instance-action` (404 until a notice, then {"action": "terminate", "time": ...}) and of a
rebalance recommendation from `meta-data/events/recommendations/rebalance`. IMDSv2 tokens are issued by
PUT api/token; requests without a token are answered too (http-tokens optional), a wrong token gets 401.
"""
from __future__ import annotations

import datetime as dt
import secrets
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from harness.twin.aws.instances import InstanceWatcher
from harness.twin.world import Node, World

TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"


def iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Imds:
    def __init__(self, world: World, watcher: InstanceWatcher) -> None:
        self.world = world
        self.watcher = watcher
        self.tokens: dict[str, tuple[str, float]] = {}      # token -> (node, expires wall)

    def _node(self, name: str) -> Node | None:
        return self.world.nodes.get(name)

    async def token(self, request: Request) -> Response:
        node = request.path_params["node"]
        ttl = request.headers.get(TTL_HEADER)
        if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return PlainTextResponse("", status_code=400)
        if self._node(node) is None and self.watcher.by_node(node) is None:
            return PlainTextResponse("", status_code=404)
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (node, time.time() + int(ttl))
        return PlainTextResponse(token, headers={TTL_HEADER: ttl})

    async def meta_data(self, request: Request) -> Response:
        name = request.path_params["node"]
        token = request.headers.get(TOKEN_HEADER)
        if token is not None:
            owner = self.tokens.get(token)
            if owner is None or owner[0] != name or owner[1] < time.time():
                return PlainTextResponse("", status_code=401)
        node = self._node(name)
        managed = self.watcher.by_node(name)
        if node is None and managed is None:
            return PlainTextResponse("Not Found", status_code=404)
        if node is not None and node.power != "running":
            return PlainTextResponse("", status_code=503)
        path = request.path_params.get("path", "").strip("/")
        notice_at = node.spot_notice_at if node is not None and node.spot_notice_at else (
            managed.spot_notice_at if managed else None)
        terminate_at = node.spot_terminate_at if node is not None and node.spot_terminate_at else (
            managed.spot_terminate_at if managed else None)
        rebalance_at = node.rebalance_at if node is not None and node.rebalance_at else (
            managed.rebalance_at if managed else None)
        if path == "spot/instance-action":
            if terminate_at is None and notice_at is None:
                return PlainTextResponse("Not Found", status_code=404)
            return JSONResponse({"action": "terminate", "time": iso(terminate_at or notice_at or 0.0)})
        if path == "events/recommendations/rebalance":
            if rebalance_at is None:
                return PlainTextResponse("Not Found", status_code=404)
            return JSONResponse({"noticeTime": iso(rebalance_at)})
        values = self._static(node, managed)
        if path == "" :
            return PlainTextResponse("\n".join(sorted({k.split("/")[0] + ("/" if "/" in k else "") for k in values})))
        if path in values:
            return PlainTextResponse(values[path])
        return PlainTextResponse("Not Found", status_code=404)

    def _static(self, node: Node | None, managed: object) -> dict[str, str]:
        from harness.twin.aws.instances import ManagedInstance

        m = managed if isinstance(managed, ManagedInstance) else None
        instance_id = node.instance_id if node else m.instance_id if m else ""
        instance_type = node.instance_type if node else m.instance_type if m else ""
        az = node.az if node else m.az if m else ""
        ip = node.private_ip if node else m.private_ip if m else ""
        capacity = node.capacity_type if node else m.capacity_type if m else "ON_DEMAND"
        group = node.placement_group if node else m.placement_group if m else None
        values = {
            "instance-id": instance_id, "instance-type": instance_type, "local-ipv4": ip,
            "placement/availability-zone": az, "placement/region": self.world.region,
            "local-hostname": f"ip-{ip.replace('.', '-')}.{self.world.region}.compute.internal",
            "hostname": f"ip-{ip.replace('.', '-')}.{self.world.region}.compute.internal",
            "instance-life-cycle": "spot" if capacity == "SPOT" else "on-demand",
            "ami-id": "ami-0e6a1f2b3c4d5e6f7",
        }
        if group:
            values["placement/group-name"] = group
        return values

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/nodes/{node}/latest/api/token", self.token, methods=["PUT"]),
            Route("/nodes/{node}/latest/meta-data/{path:path}", self.meta_data, methods=["GET"]),
            Route("/nodes/{node}/latest/meta-data", self.meta_data, methods=["GET"]),
        ])
