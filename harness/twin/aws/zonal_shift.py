"""ARC zonal shift, speaking the REST-JSON API boto3's `arc-zonal-shift` client uses (moto has none).

The managed resources are the twin's load balancers. An active shift moves traffic away from one AZ:
its AZ is in world.zonal_shift_away until the shift is cancelled or expires. `expiresIn` ("30m", "2h") is
real-world time and is scaled by time_scale like every other control-plane duration.

As on AWS, `awayFrom` takes an AZ *ID* (use2-az1): an AZ name (us-east-2a) is refused with a
ValidationException (reason InvalidAz). A load balancer is a resource ARC can shift only while its
`zonal_shift.config.enabled` attribute is true (zonal shift is disabled by default on every NLB/ALB and
enabled per load balancer through elbv2 modify_load_balancer_attributes); the twin reads that attribute
from the load balancer itself, and treats a load balancer without it like an unregistered resource.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.twin.clock import TwinClock
from harness.twin.world import World

MAX_EXPIRES_S = 3 * 86400


def az_id(az: str) -> str:
    """us-east-2a -> use2-az1: the AZ ID ARC reports (letters map to numbers in this account)."""
    region, letter = az[:-1], az[-1]
    parts = region.split("-")
    return f"{parts[0]}{parts[1][0]}{parts[2]}-az{ord(letter) - ord('a') + 1}"


def parse_expires_in(text: str) -> float:
    match = re.fullmatch(r"(\d+)([mh])", (text or "").strip())
    if not match:
        raise ValueError("expiresIn must be a whole number followed by m or h, for example 30m or 2h")
    seconds = int(match.group(1)) * (60 if match.group(2) == "m" else 3600)
    if not 60 <= seconds <= MAX_EXPIRES_S:
        raise ValueError("expiresIn must be between 1m and 72h")
    return float(seconds)


@dataclass
class ManagedResource:
    arn: str
    name: str
    azs: list[str]


@dataclass
class Shift:
    id: str
    resource: str
    away_from: str          # AZ name
    start: float            # wall
    expiry: float           # wall
    comment: str
    status: str = "ACTIVE"


# FIDELITY ARC-1: awayFrom is an AZ ID such as use2-az1; anything else is ValidationException, reason InvalidAz.
_AZ_ID = re.compile(r"^[a-z]{2,4}[0-9]-az[0-9]+$")
# FIDELITY ARC-2: a load balancer is shiftable only with this attribute true (disabled by default).
ZONAL_SHIFT_ATTRIBUTE = "zonal_shift.config.enabled"


def _error(status: int, kind: str, message: str, reason: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message}
    if reason:
        body["reason"] = reason
    return JSONResponse(body, status_code=status, headers={"x-amzn-ErrorType": kind})


def zonal_shift_enabled(region: str, arn: str) -> bool:
    """The load balancer's own `zonal_shift.config.enabled` attribute, as elbv2 stores it."""
    from harness.twin.aws import backends

    balancer = backends.backend("elbv2", region).load_balancers.get(arn)
    if balancer is None:
        return False
    return str((balancer.attrs or {}).get(ZONAL_SHIFT_ATTRIBUTE, "false")).lower() == "true"


@dataclass
class ZonalShifts:
    world: World
    clock: TwinClock
    region: str | None = None      # where the load balancers live; None: every resource counts as enabled
    resources: dict[str, ManagedResource] = field(default_factory=dict)
    shifts: dict[str, Shift] = field(default_factory=dict)
    _applied: set[str] = field(default_factory=set)

    def add_resource(self, arn: str, name: str, azs: list[str]) -> None:
        self.resources[arn] = ManagedResource(arn, name, list(azs))

    def tick(self, now: float) -> None:
        for shift in self.shifts.values():
            if shift.status == "ACTIVE" and shift.expiry <= now:
                shift.status = "EXPIRED"
        # only the AZs this endpoint put there are taken out again: others may shift traffic too
        wanted = {s.away_from for s in self.shifts.values() if s.status == "ACTIVE"}
        self.world.zonal_shift_away.difference_update(self._applied - wanted)
        self.world.zonal_shift_away.update(wanted)
        self._applied = wanted

    def _az_name(self, resource: ManagedResource, away: str) -> str | None:
        """The AZ (name) of the resource whose ID is `away`; an AZ name is not accepted, as on AWS."""
        for az in resource.azs:
            if away == az_id(az):
                return az
        return None

    def _enabled(self, resource: ManagedResource) -> bool:
        return self.region is None or zonal_shift_enabled(self.region, resource.arn)

    def _managed(self) -> list[ManagedResource]:
        return [r for r in self.resources.values() if self._enabled(r)]

    def _shift_json(self, shift: Shift) -> dict[str, Any]:
        resource = self.resources.get(shift.resource)
        return {"zonalShiftId": shift.id, "resourceIdentifier": shift.resource,
                "awayFrom": az_id(shift.away_from) if resource else shift.away_from,
                "expiryTime": shift.expiry, "startTime": shift.start, "status": shift.status,
                "comment": shift.comment, "shiftType": "ZONAL_SHIFT"}

    def _in_resource(self, resource: ManagedResource) -> dict[str, Any]:
        active = [s for s in self.shifts.values() if s.resource == resource.arn and s.status == "ACTIVE"]
        away = {s.away_from for s in active}
        return {
            "arn": resource.arn, "name": resource.name,
            "availabilityZones": [az_id(a) for a in resource.azs],
            "appliedWeights": {az_id(a): (0.0 if a in away else 1.0) for a in resource.azs},
            "zonalShifts": [{**self._shift_json(s), "appliedStatus": "APPLIED"} for s in active],
            "autoshifts": [], "zonalAutoshiftStatus": "DISABLED", "practiceRunStatus": "DISABLED",
        }

    # -- handlers ------------------------------------------------------------------------------------------
    async def start(self, request: Request) -> JSONResponse:
        body = await request.json()
        resource = self.resources.get(body.get("resourceIdentifier", ""))
        if resource is None or not self._enabled(resource):
            # a load balancer without zonal shift enabled is no managed resource of ARC
            return _error(404, "ResourceNotFoundException", f"Resource {body.get('resourceIdentifier')} not found")
        away_from = str(body.get("awayFrom", ""))
        if not _AZ_ID.match(away_from):
            return _error(400, "ValidationException", f"awayFrom {away_from!r} is not an Availability Zone ID "
                          "(for example use2-az1)", reason="InvalidAz")
        away = self._az_name(resource, away_from)
        if away is None:
            return _error(400, "ValidationException", f"awayFrom {away_from} is not an AZ of the resource",
                          reason="UnsupportedAz")
        try:
            expires = parse_expires_in(body.get("expiresIn", ""))
        except ValueError as exc:
            return _error(400, "ValidationException", str(exc))
        now = self.clock.now()
        self.tick(now)
        if any(s.resource == resource.arn and s.status == "ACTIVE" for s in self.shifts.values()):
            return _error(409, "ConflictException", "A zonal shift is already active for this resource")
        shift = Shift(str(uuid.uuid4()), resource.arn, away, now, now + self.clock.wall(expires),
                      body.get("comment", ""))
        self.shifts[shift.id] = shift
        self.tick(now)
        return JSONResponse(self._shift_json(shift), status_code=201)

    async def list_shifts(self, request: Request) -> JSONResponse:
        self.tick(self.clock.now())
        status = request.query_params.get("status")
        resource = request.query_params.get("resourceIdentifier")
        items = [self._shift_json(s) for s in self.shifts.values()
                 if (not status or s.status == status) and (not resource or s.resource == resource)]
        return JSONResponse({"items": items})

    def _get(self, shift_id: str) -> Shift | None:
        self.tick(self.clock.now())
        return self.shifts.get(shift_id)

    async def update(self, request: Request) -> JSONResponse:
        shift = self._get(request.path_params["shift_id"])
        if shift is None:
            return _error(404, "ResourceNotFoundException", "Zonal shift not found")
        if shift.status != "ACTIVE":
            return _error(409, "ConflictException", f"Zonal shift is {shift.status}")
        body = await request.json()
        if "expiresIn" in body:
            try:
                shift.expiry = self.clock.now() + self.clock.wall(parse_expires_in(body["expiresIn"]))
            except ValueError as exc:
                return _error(400, "ValidationException", str(exc))
        if "comment" in body:
            shift.comment = body["comment"]
        return JSONResponse(self._shift_json(shift))

    async def cancel(self, request: Request) -> JSONResponse:
        shift = self._get(request.path_params["shift_id"])
        if shift is None:
            return _error(404, "ResourceNotFoundException", "Zonal shift not found")
        if shift.status != "ACTIVE":
            return _error(409, "ConflictException", f"Zonal shift is {shift.status}")
        shift.status = "CANCELED"
        self.tick(self.clock.now())
        return JSONResponse(self._shift_json(shift))

    async def get_resource(self, request: Request) -> JSONResponse:
        self.tick(self.clock.now())
        ident = request.path_params["resource"]
        resource = self.resources.get(ident) or next((r for r in self.resources.values() if r.name == ident), None)
        if resource is None or not self._enabled(resource):
            return _error(404, "ResourceNotFoundException", f"Resource {ident} not found")
        return JSONResponse(self._in_resource(resource))

    async def list_resources(self, request: Request) -> JSONResponse:
        self.tick(self.clock.now())
        return JSONResponse({"items": [self._in_resource(r) for r in self._managed()]})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/zonalshifts", self.start, methods=["POST"]),
            Route("/zonalshifts", self.list_shifts, methods=["GET"]),
            Route("/zonalshifts/{shift_id}", self.update, methods=["PATCH"]),
            Route("/zonalshifts/{shift_id}", self.cancel, methods=["DELETE"]),
            Route("/managedresources", self.list_resources, methods=["GET"]),
            Route("/managedresources/{resource:path}", self.get_resource, methods=["GET"]),
        ])
