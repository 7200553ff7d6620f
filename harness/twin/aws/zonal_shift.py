"""ARC zonal shift, speaking the REST-JSON API boto3's `arc-zonal-shift` client uses (moto has none).

The managed resources are the twin's load balancers. An active shift moves traffic away from one AZ:
its AZ is in world.zonal_shift_away until the shift is cancelled or expires. `expiresIn` ("30m", "2h") is
real-world time and is scaled by time_scale like every other control-plane duration. `awayFrom` accepts
the AZ ID boto3 users pass in production (use2-az1) and the AZ name.
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


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": kind})


@dataclass
class ZonalShifts:
    world: World
    clock: TwinClock
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
        for az in resource.azs:
            if away in (az, az_id(az)):
                return az
        return None

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
        if resource is None:
            return _error(404, "ResourceNotFoundException", f"Resource {body.get('resourceIdentifier')} not found")
        away = self._az_name(resource, body.get("awayFrom", ""))
        if away is None:
            return _error(400, "ValidationException", f"awayFrom {body.get('awayFrom')} is not an AZ of the resource")
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
        if resource is None:
            return _error(404, "ResourceNotFoundException", f"Resource {ident} not found")
        return JSONResponse(self._in_resource(resource))

    async def list_resources(self, request: Request) -> JSONResponse:
        self.tick(self.clock.now())
        return JSONResponse({"items": [self._in_resource(r) for r in self.resources.values()]})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/zonalshifts", self.start, methods=["POST"]),
            Route("/zonalshifts", self.list_shifts, methods=["GET"]),
            Route("/zonalshifts/{shift_id}", self.update, methods=["PATCH"]),
            Route("/zonalshifts/{shift_id}", self.cancel, methods=["DELETE"]),
            Route("/managedresources", self.list_resources, methods=["GET"]),
            Route("/managedresources/{resource:path}", self.get_resource, methods=["GET"]),
        ])
