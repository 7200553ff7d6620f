"""Auto Scaling groups that keep their capacity, spread over their AZs, on the twin's clock.

moto's groups replace a lost instance at once and always in their first subnet, so a whole group ends up
in one AZ. The twin takes the launching over: moto's own replacement is switched off for the groups it
manages, and a reconciler compares in-service instances with desired capacity, launches the missing ones
after a (scaled) launch delay into the AZ with the fewest instances (what EC2 Auto Scaling's AZ balancing
does), registers them with the group in moto and reports them through hooks.launched. Capacity
Rebalancing is honoured: a rebalance recommendation on a spot instance launches its replacement early.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from harness.twin.aws import backends, placement
from harness.twin.aws.instances import GONE_STATES, InstanceWatcher, ManagedInstance
from harness.twin.clock import TwinClock

log = logging.getLogger(__name__)

AMI_ID = "ami-0e6a1f2b3c4d5e6f7"     # stands for the EKS-optimized accelerated AMI
# Real-world seconds from a lost instance to its replacement being launched: the group's health check
# notices, then EC2 places the new instance. Node boot (kubelet Ready) is the fleet's NODE_BOOT_S on top.
ASG_LAUNCH_DELAY_S = 30.0


@dataclass
class GroupSpec:
    nodegroup: str
    cluster: str
    asg_name: str
    azs: list[str]
    subnets: dict[str, list[str]]          # az -> subnet ids of this group
    instance_type: str
    capacity_type: str
    placement_group: str | None
    launch_template_id: str
    tags: dict[str, str] = field(default_factory=dict)
    eks_desired: int | None = None         # the nodegroup's desiredSize last applied to the group


@dataclass
class PendingLaunch:
    spec: GroupSpec
    az: str
    subnet_id: str
    due: float
    task: asyncio.Task[None] | None = None


class ScalingGroups:
    def __init__(self, region: str, clock: TwinClock, watcher: InstanceWatcher, ec2_client: Any) -> None:
        self.region = region
        self.clock = clock
        self.watcher = watcher
        self.ec2 = ec2_client
        self.groups: dict[str, GroupSpec] = {}           # by nodegroup name
        self.pending: list[PendingLaunch] = []
        self.rebalancing: set[str] = set()               # instances whose replacement was launched early
        self.on_launched: list[Callable[[ManagedInstance], None]] = []
        self.launch_delay_s = ASG_LAUNCH_DELAY_S

    # -- moto side ---------------------------------------------------------------------------------------
    def moto_group(self, spec: GroupSpec) -> Any | None:
        return backends.backend("autoscaling", self.region).autoscaling_groups.get(spec.asg_name)

    def manage(self, spec: GroupSpec) -> None:
        """Take launching over from moto for this group (moto would fill its first subnet at once)."""
        group = self.moto_group(spec)
        if group is None:
            raise KeyError(spec.asg_name)
        group.replace_autoscaling_group_instances = lambda count, tags: None
        self.groups[spec.nodegroup] = spec

    # -- scaling activities (moto always answers an empty list) -----------------------------------------
    def record_activity(self, asg_name: str, description: str, cause: str) -> None:
        activities = _activities(backends.backend("autoscaling", self.region))
        group = backends.backend("autoscaling", self.region).autoscaling_groups.get(asg_name)
        now = dt.datetime.now(dt.timezone.utc)
        activities.append({
            "ActivityId": str(uuid.uuid4()), "AutoScalingGroupName": asg_name,
            "AutoScalingGroupARN": group.arn if group is not None else "", "Description": description,
            "Cause": f"At {now.strftime('%Y-%m-%dT%H:%M:%SZ')} {cause}", "StartTime": now, "EndTime": now,
            "StatusCode": "Successful", "Progress": 100, "Details": "{}"})

    def record_termination(self, instance: ManagedInstance) -> None:
        cause = ("an instance was taken out of service in response to an EC2 instance rebalance recommendation "
                 "and a spot interruption notice" if instance.spot_terminate_at is not None
                 else "an instance was taken out of service in response to a user request or a health check")
        self.record_activity(instance.asg_name, f"Terminating EC2 instance: {instance.instance_id}", cause)

    def _register_in_group(self, spec: GroupSpec, instance_id: str) -> None:
        from moto.autoscaling.models import InstanceState

        group = self.moto_group(spec)
        if group is None:
            return
        instance = backends.backend("ec2", self.region).get_instance(instance_id)
        instance.autoscaling_group = group
        group.instance_states.append(InstanceState(instance, autoscaling_group=group))

    # -- launching ---------------------------------------------------------------------------------------
    def launch_now(self, spec: GroupSpec, az: str, subnet_id: str) -> ManagedInstance:
        """Launch one instance of the group through the EC2 API (blocking; run off the loop when it runs).
        The caller tracks it, on the loop thread, where the watcher reads its registry."""
        tags = {**spec.tags, "aws:autoscaling:groupName": spec.asg_name}
        request: dict[str, Any] = dict(
            LaunchTemplate={"LaunchTemplateId": spec.launch_template_id, "Version": "$Latest"},
            ImageId=AMI_ID, InstanceType=spec.instance_type, MinCount=1, MaxCount=1, SubnetId=subnet_id,
            Placement={"AvailabilityZone": az, **({"GroupName": spec.placement_group} if spec.placement_group else {})},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )
        if spec.capacity_type == "SPOT":
            request["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
                "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
        reply = self.ec2.run_instances(**request)["Instances"][0]
        if spec.placement_group:
            placement.stamp(self.region, reply["InstanceId"], spec.placement_group)
        self._register_in_group(spec, reply["InstanceId"])
        managed = ManagedInstance(
            instance_id=reply["InstanceId"], nodegroup=spec.nodegroup, asg_name=spec.asg_name, az=az,
            subnet_id=subnet_id, private_ip=reply["PrivateIpAddress"], instance_type=spec.instance_type,
            capacity_type=spec.capacity_type, placement_group=spec.placement_group, region=self.region)
        return managed

    def placement(self, spec: GroupSpec, extra: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
        """AZ with the fewest live or pending instances, then its least used subnet (AZ balancing)."""
        live = [(i.az, i.subnet_id) for i in self.watcher.instances.values()
                if i.nodegroup == spec.nodegroup and not i.gone and i.instance_id not in self.rebalancing]
        live += [(p.az, p.subnet_id) for p in self.pending if p.spec is spec] + list(extra)
        per_az = Counter(az for az, _ in live)
        per_subnet = Counter(subnet for _, subnet in live)
        az = min(spec.azs, key=lambda a: (per_az[a], spec.azs.index(a)))
        subnet = min(spec.subnets[az], key=lambda s: (per_subnet[s], spec.subnets[az].index(s)))
        return az, subnet

    def in_service(self, spec: GroupSpec) -> list[str]:
        group = self.moto_group(spec)
        if group is None:
            return []
        return [s.instance.id for s in backends.snapshot(lambda: group.instance_states)
                if s.lifecycle_state == "InService" and s.instance.state not in GONE_STATES
                and s.instance.id not in self.rebalancing]

    def rebalance(self, instance_id: str) -> None:
        """Capacity Rebalancing: the group launches a replacement as soon as a spot instance is at risk."""
        instance = self.watcher.instances.get(instance_id)
        if instance is None or instance.nodegroup not in self.groups:
            return
        group = self.moto_group(self.groups[instance.nodegroup])
        if group is not None and getattr(group, "capacity_rebalance", False):
            self.rebalancing.add(instance_id)

    def _follow_nodegroup(self, spec: GroupSpec, group: Any) -> None:
        """EKS drives a managed nodegroup's ASG: update_nodegroup_config(scalingConfig) resizes the group."""
        clusters = backends.backend("eks", self.region).clusters
        nodegroup = clusters[spec.cluster].nodegroups.get(spec.nodegroup) if spec.cluster in clusters else None
        if nodegroup is None:
            return
        scaling = dict(nodegroup.scaling_config or {})
        desired = scaling.get("desiredSize")
        if desired is None or desired == spec.eks_desired:
            return
        first = spec.eks_desired is None
        spec.eks_desired = int(desired)
        if first:
            return
        group.min_size = int(scaling.get("minSize", group.min_size or 0))
        group.max_size = int(scaling.get("maxSize", group.max_size or desired))
        group.set_desired_capacity(int(desired))   # grows through the reconciler; shrinks by terminating

    # -- the reconciler ----------------------------------------------------------------------------------
    async def tick(self, now: float) -> None:
        for spec in self.groups.values():
            group = self.moto_group(spec)
            if group is None:
                continue
            self._follow_nodegroup(spec, group)
            waiting = sum(1 for p in self.pending if p.spec is spec)
            deficit = int(group.desired_capacity or 0) - len(self.in_service(spec)) - waiting
            for _ in range(max(0, deficit)):
                az, subnet = self.placement(spec)
                self.pending.append(PendingLaunch(spec, az, subnet, now + self.clock.wall(self.launch_delay_s)))
        for launch in [p for p in self.pending if p.due <= now and p.task is None]:
            launch.task = asyncio.create_task(self._launch(launch))

    async def _launch(self, launch: PendingLaunch) -> None:
        try:
            instance = await asyncio.to_thread(self.launch_now, launch.spec, launch.az, launch.subnet_id)
        except Exception:   # a failed launch is retried on the next tick, as the real group does
            log.exception("launch into %s failed", launch.subnet_id)
            self.pending.remove(launch)
            return
        self.pending.remove(launch)
        self.watcher.track(instance)
        self.record_activity(launch.spec.asg_name, f"Launching a new EC2 instance: {instance.instance_id}",
                             "an instance was started in response to a difference between desired and actual "
                             f"capacity in {instance.az}")
        for callback in self.on_launched:
            callback(instance)

    async def drain(self) -> None:
        tasks = [p.task for p in self.pending if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _activities(autoscaling_backend: Any) -> list[dict[str, Any]]:
    if not hasattr(autoscaling_backend, "twin_activities"):
        autoscaling_backend.twin_activities = []
    return autoscaling_backend.twin_activities


def install_activities() -> None:
    """Serve describe_scaling_activities from the activities the twin records (newest first)."""
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult

    if getattr(AutoScalingResponse.describe_scaling_activities, "twin", False):
        return

    def describe_scaling_activities(self: Any) -> ActionResult:
        name = self._get_param("AutoScalingGroupName")
        ids = set(self._get_param("ActivityIds", []) or [])
        limit = int(self._get_param("MaxRecords") or 100)
        items = [a for a in reversed(_activities(self.autoscaling_backend))
                 if (not name or a["AutoScalingGroupName"] == name) and (not ids or a["ActivityId"] in ids)]
        return ActionResult({"Activities": items[:limit]})

    describe_scaling_activities.twin = True  # type: ignore[attr-defined]
    AutoScalingResponse.describe_scaling_activities = describe_scaling_activities  # type: ignore[method-assign]
