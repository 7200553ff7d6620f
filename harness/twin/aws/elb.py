"""NLB target health from real health checks.

moto reports every registered target `healthy` forever. The twin probes each target the way an NLB does:
an HTTP GET of the target group's health-check path on the target, every HealthCheckIntervalSeconds
(scaled), healthy after HealthyThresholdCount passes and unhealthy after UnhealthyThresholdCount failures.
A target's HTTP endpoint is the serving gateway's per-node route
`{world.serving_url}/targets/{node}{path}`; before a gateway exists, a target passes iff its node is
running, reachable and has allocatable GPUs. The verdicts go to world.target_health (what the gateway
routes on) and, by wrapping each managed target group's `health_for`, to boto3 describe_target_health.
A terminated instance's target reads `draining` for the deregistration delay (scaled), then disappears.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from harness.twin.aws import backends
from harness.twin.clock import TwinClock
from harness.twin.world import World

log = logging.getLogger(__name__)

MIN_PROBE_TIMEOUT_S = 1.0   # wall seconds: a loaded 2-core CI box must not fail probes by scheduling lag


@dataclass
class TargetState:
    node: str | None = None
    status: str = "initial"
    reason: str | None = "Elb.RegistrationInProgress"
    description: str | None = "Target registration is in progress"
    passes: int = 0
    failures: int = 0
    next_at: float = 0.0
    inflight: bool = False


@dataclass(frozen=True)
class Probe:
    ok: bool
    reason: str | None = None
    description: str | None = None


class TargetHealth:
    def __init__(self, world: World, region: str, clock: TwinClock) -> None:
        self.world = world
        self.region = region
        self.clock = clock
        self.target_groups: dict[str, str] = {}          # az -> target group arn
        self.states: dict[tuple[str, str], TargetState] = {}
        self._draining_since: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- moto side ---------------------------------------------------------------------------------------
    def _elbv2(self) -> Any:
        return backends.backend("elbv2", self.region)

    def manage(self, az: str, target_group_arn: str) -> None:
        from moto.elbv2.models import FakeHealthStatus

        tg = self._elbv2().target_groups[target_group_arn]
        original = tg.health_for
        states = self.states

        def health_for(target: dict[str, Any], ec2_backend: Any) -> Any:
            registered = tg.targets.get(target["Id"])
            state = states.get((tg.arn, target["Id"]))
            if registered is None or state is None:
                return original(target, ec2_backend)
            instance = ec2_backend.get_instance_by_id(target["Id"])
            if instance is not None and instance.state != "running":
                return original(target, ec2_backend)
            return FakeHealthStatus(target["Id"], registered["Port"], tg.health_check_port, state.status,
                                    state.reason, state.description)

        tg.health_for = health_for
        self.target_groups[az] = target_group_arn

    def register(self, az: str, instance_id: str, in_service: bool = False) -> None:
        """A new target starts `initial` and takes no traffic until it passes HealthyThresholdCount checks.

        `in_service`: a target of the fleet the twin starts with. That deployment has been serving for long (its
        replicas finished loading their model long ago), so its targets passed their checks long ago too; starting
        them `initial` would turn every request away for the first thresholds' worth of probes.
        """
        arn = self.target_groups.get(az)
        if arn is not None:
            self._elbv2().register_targets(arn, [{"Id": instance_id}])
            if in_service:
                tg = self._elbv2().target_groups[arn]
                self.states[(arn, instance_id)] = TargetState(status="healthy", reason=None, description=None,
                                                              passes=int(tg.healthy_threshold_count))

    def deregister_terminated(self, instance_id: str) -> None:
        for arn in self.target_groups.values():
            tg = self._elbv2().target_groups.get(arn)
            if tg is not None:
                tg.deregister_terminated_instances([instance_id])

    # -- probing -----------------------------------------------------------------------------------------
    def tick(self, now: float, client: httpx.AsyncClient) -> None:
        seen: set[tuple[str, str]] = set()
        for arn in self.target_groups.values():
            tg = self._elbv2().target_groups.get(arn)
            if tg is None:
                continue
            self._finish_draining(tg, now)
            interval = self.clock.wall(float(tg.health_check_interval_seconds))
            for target in backends.snapshot(lambda: tg.targets.values()):
                key = (arn, target["Id"])
                seen.add(key)
                state = self.states.setdefault(key, TargetState(next_at=now))
                if state.inflight or now < state.next_at:
                    continue
                state.inflight = True
                state.next_at = now + interval
                task = asyncio.create_task(self._probe(tg, target["Id"], state, client))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        for key in [k for k in self.states if k not in seen]:
            state = self.states.pop(key)
            if state.node is not None and state.node not in self.world.nodes:
                self.world.target_health.pop(state.node, None)

    def _finish_draining(self, tg: Any, now: float) -> None:
        """A terminated target drains for the group's deregistration delay (scaled), then is gone."""
        delay = self.clock.wall(float(tg.attributes.get("deregistration_delay.timeout_seconds", 300)))
        for target_id in list(tg.terminated_targets):
            key = (tg.arn, target_id)
            since = self._draining_since.setdefault(key, now)
            if now - since >= delay:
                tg.terminated_targets.pop(target_id, None)
                self._draining_since.pop(key, None)

    async def _probe(self, tg: Any, instance_id: str, state: TargetState, client: httpx.AsyncClient) -> None:
        try:
            result = await self._check(tg, instance_id, state, client)
        except Exception as exc:   # never let one probe stop the checker
            result = Probe(False, "Target.FailedHealthChecks", f"Health checks failed: {exc}")
        finally:
            state.inflight = False
        if result.ok:
            state.passes, state.failures = state.passes + 1, 0
            if state.status != "healthy" and state.passes >= int(tg.healthy_threshold_count):
                state.status, state.reason, state.description = "healthy", None, None
        else:
            state.passes, state.failures = 0, state.failures + 1
            if state.status == "unhealthy":
                state.reason, state.description = result.reason, result.description
            elif state.failures >= int(tg.unhealthy_threshold_count):
                state.status, state.reason, state.description = "unhealthy", result.reason, result.description
        if state.node is not None:
            self.world.target_health[state.node] = "healthy" if state.status == "healthy" else "unhealthy"

    async def _check(self, tg: Any, instance_id: str, state: TargetState, client: httpx.AsyncClient) -> Probe:
        node = self.world.node_by_instance(instance_id)
        if node is None or node.power != "running":
            return Probe(False, "Target.FailedHealthChecks", "Health checks failed")
        state.node = node.name
        if not node.network_reachable or node.subnet_id in self.world.disrupted_subnets:
            return Probe(False, "Target.Timeout", "Request timed out")
        if not self.world.serving_url:
            if node.allocatable_gpus > 0:
                return Probe(True)
            return Probe(False, "Target.ResponseCodeMismatch", "Health checks failed with these codes: [503]")
        path = tg.health_check_path or "/v2/health/ready"
        timeout = max(MIN_PROBE_TIMEOUT_S, self.clock.wall(float(tg.health_check_timeout_seconds)))
        url = f"{self.world.serving_url.rstrip('/')}/targets/{node.name}{path}"
        try:
            response = await client.get(url, timeout=timeout)
        except httpx.TimeoutException:
            return Probe(False, "Target.Timeout", "Request timed out")
        except httpx.HTTPError:
            return Probe(False, "Target.FailedHealthChecks", "Health checks failed")
        if response.status_code == 200:
            return Probe(True)
        return Probe(False, "Target.ResponseCodeMismatch",
                     f"Health checks failed with these codes: [{response.status_code}]")

    async def drain(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
