"""az-loss: one Availability Zone drops off the network (or loses power), injected the way AWS FIS does it.

`mode: network` runs `aws:network:disrupt-connectivity` with `scope: all` on exactly the zone's subnets (found
with ec2 describe_subnets filtered by availability-zone, and passed as explicit ARNs, so the experiment can never
reach another zone or region). `mode: power` is the "AZ Availability: Power Interruption" shape: the zone's
subnets cut plus `aws:ec2:stop-instances` of the zone's instances with `startInstancesAfterDuration`.
`zonal_shift: true` also starts an ARC zonal shift of the load balancer away from the zone, which is what an
operator (or zonal autoshift) does; it is cancelled on revert. ARC takes the zone's AZ *ID* (use2-az1, from
ec2 describe_availability_zones: zone names map to different IDs in every account) and shifts only a load
balancer whose `zonal_shift.config.enabled` attribute is true (off by default), so the plan reads both and
refuses to start when either is missing: a shift that cannot start is a failed preflight, not a half-run loss.

The zone's subnets are those of the cluster's VPC only (the VPC EC2 names for the zone's nodes' instances):
another VPC with subnets in the same zone is not this deployment's zone. FIS takes at most 5 ARNs per target, so
a zone of more subnets (or instances) is several targets, each with its own copy of the action.

Landed: the zone's nodes go NotReady/Unknown in the Kubernetes API, or the load balancer reports the zone's
targets unhealthy (elbv2 describe_target_health): the two signals a real AZ loss gives.
Revert: stop the experiment (FIS restores connectivity and starts stopped instances) and cancel the shift.
"""
from __future__ import annotations

import math
import time
from typing import Any, Literal

from kubernetes import client
from pydantic import Field

from harness.faults.base import Fault, FaultError, NodeRef, register
from harness.faults.fis import (await_experiment_started, create_template, fis_stop_conditions, grouped_action,
                                instance_arn, start_experiment, stop_fis_owed, stops_on, template_token)
from harness.faults.selection import ZONE, NODEGROUP, instance_id_of
from harness.loadbalancer import LoadBalancerNotFound, load_balancer_arn, target_groups
from harness.strict.params import FaultParams

ARC = "arc-zonal-shift"
DISRUPT_ACTION = "aws:network:disrupt-connectivity"
STOP_ACTION = "aws:ec2:stop-instances"
ZONAL_SHIFT_ATTRIBUTE = "zonal_shift.config.enabled"     # elbv2 load balancer attribute, false by default
FIS_MARGIN_S = 120.0      # deployment seconds the experiment outlasts the scenario step
FIS_MAX_DURATION_S = 12 * 3600.0   # disrupt-connectivity duration and startInstancesAfterDuration: PT1M..PT12H


def zonal_shift_enabled(attributes: list[dict[str, str]]) -> bool:
    """Is `zonal_shift.config.enabled` true in an elbv2 describe_load_balancer_attributes answer?"""
    return any(a.get("Key") == ZONAL_SHIFT_ATTRIBUTE and str(a.get("Value", "")).lower() == "true"
               for a in attributes)


def _iso_duration(seconds: float) -> str:
    return f"PT{max(1, math.ceil(seconds / 60))}M"


def _expires_in(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds / 60))}m"


class AzLossParams(FaultParams):
    """FIS `aws:network:disrupt-connectivity` (scope all) on one AZ's subnets, or the power-interruption variant."""

    zone: str = Field(..., max_length=64)
    mode: Literal["network", "power"] = "network"
    zonal_shift: bool = Field(False, description="also start an ARC zonal shift away from the zone")


@register
class AzLoss(Fault):
    name = "az-loss"
    params_model = AzLossParams
    params: AzLossParams
    # resolved by plan()
    subnets: list[str]                 # the zone's subnet ids, in the cluster's VPC only
    subnet_arns: list[str]
    vpcs: list[str]                    # the cluster's VPC(s), named by EC2 for the zone's nodes' instances
    instance_arns: list[str]           # mode power: the zone's instances FIS stops
    target_groups: list[str]           # the load balancer's target groups, to read the zone's target health
    duration_s: float                  # FIS's own duration, longer than the step: the dead man's switch
    load_balancer_arn: str | None = None   # zonal_shift: the load balancer ARC shifts away from the zone
    away_from: str | None = None           # zonal_shift: the zone's AZ ID (use2-az1), as ARC takes it
    stop_conditions: list[dict[str, str]]
    # started by inject()
    template_id: str | None = None
    experiment_id: str | None = None
    zonal_shift_id: str | None = None
    zonal_shift_at: float | None = None

    # ------------------------------------------------------------------------------------------ plan
    MOMENT_LABELS = {**Fault.MOMENT_LABELS, "lost_at": "FIS experiment running: zone's network cut"}

    def moments(self) -> list[tuple[float, str]]:
        """The zonal shift this fault started is the scenario's action, not the deployment's: it is labelled as
        such, so a report never credits the deployment with an isolation the harness made."""
        shift = [(self.zonal_shift_at, f"{self.name}: ARC zonal shift away from {self.away_from} (by the scenario)")]
        return super().moments() + [(at, label) for at, label in shift if at is not None]

    def plan(self) -> str:
        target, zone = self.ctx.target, self.params.zone
        if not zone.startswith(target.region):
            raise FaultError(f"zone {zone!r} is not in the target's region {target.region}")
        self.nodes = self._zone_nodes(zone)
        if not self.nodes:
            raise FaultError(f"no Kubernetes node in {zone} in contexts {', '.join(target.contexts)}")
        subnets = self._zone_subnets(zone)
        self.subnets = sorted(s["SubnetId"] for s in subnets)
        self.subnet_arns = [s.get("SubnetArn") or f"arn:aws:ec2:{target.region}:{s['OwnerId']}:subnet/{s['SubnetId']}"
                            for s in sorted(subnets, key=lambda s: s["SubnetId"])]
        # FIS's own duration is the dead man's switch: longer than the step, so the harness's revert (which
        # stop_experiment does) is what ends the loss, and a crashed harness still gets the zone back.
        step_duration = self.step.duration if self.step is not None else None
        self.duration_s = float(step_duration) + FIS_MARGIN_S if step_duration else 3600.0
        if self.duration_s > FIS_MAX_DURATION_S:
            raise FaultError(f"FIS holds a zone down for at most PT12H; the step lasts {step_duration:g} s")
        plan = (f"FIS aws:network:disrupt-connectivity (scope all) on {len(subnets)} subnet(s) of {zone} "
                f"({', '.join(self.subnets)}), {len(self.nodes)} node(s)")
        self.instance_arns = []
        if self.params.mode == "power":
            ids = [n.instance_id for n in self.nodes if n.instance_id]
            self.instance_arns = [instance_arn(target, i) for i in ids]
            plan += f"; aws:ec2:stop-instances on {len(ids)} instance(s), started again on revert"
        if self.params.zonal_shift:
            self.load_balancer_arn = self._load_balancer_arn()
            self.away_from = self._zone_id(zone)
            self._require_zonal_shift_enabled(self.load_balancer_arn)
            plan += f"; ARC zonal shift of {self.load_balancer_arn} away from {self.away_from}"
        self.target_groups = self._target_groups()
        self.stop_conditions = fis_stop_conditions(self.ctx)
        return plan + stops_on(self.stop_conditions)

    def _zone_nodes(self, zone: str) -> list[NodeRef]:
        found = []
        for context in self.ctx.target.contexts:
            for node in client.CoreV1Api(self.ctx.target.kube(context)).list_node().items:
                labels = node.metadata.labels or {}
                if labels.get(ZONE) == zone:
                    found.append(NodeRef(context=context, name=node.metadata.name, zone=zone,
                                         nodegroup=labels.get(NODEGROUP), instance_id=instance_id_of(node)))
        return sorted(found, key=lambda n: (n.context, n.name))

    def _zone_subnets(self, zone: str) -> list[dict[str, Any]]:
        """The zone's subnets in the cluster's VPC only: the VPC the zone's nodes' instances are in (an EKS
        cluster and its nodes live in one VPC), read from EC2. Other VPCs of the account that have subnets in
        the zone (another team's, a shared-services VPC) are not this deployment's zone and stay untouched."""
        ec2 = self.ctx.target.aws("ec2")
        ids = sorted({n.instance_id for n in self.nodes if n.instance_id})
        if not ids:
            raise FaultError(f"no node in {zone} carries an aws:/// providerID: cannot tell the cluster's VPC")
        reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
        vpcs = sorted({i["VpcId"] for r in reservations for i in r["Instances"] if i.get("VpcId")})
        if not vpcs:
            raise FaultError(f"EC2 names no VPC for the instances of {zone} ({', '.join(ids)})")
        subnets = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": [zone]},
                                                {"Name": "vpc-id", "Values": vpcs}])["Subnets"]
        if not subnets:
            raise FaultError(f"no subnet in {zone} in VPC(s) {', '.join(vpcs)}: nothing to disconnect")
        self.vpcs = vpcs
        return subnets

    def _load_balancer_arn(self) -> str:
        try:
            return load_balancer_arn(self.ctx.target)
        except LoadBalancerNotFound as exc:
            raise FaultError(str(exc)) from exc

    def _zone_id(self, zone: str) -> str:
        """The AZ ID ARC's awayFrom takes (use2-az1). Zone names map to IDs per account, and ARC refuses a
        name, so there is no falling back to the name: no ID, no shift."""
        try:
            zones = self.ctx.target.aws("ec2").describe_availability_zones(ZoneNames=[zone])["AvailabilityZones"]
        except Exception as exc:
            raise FaultError(f"could not map {zone} to its AZ ID for the zonal shift "
                             f"(ec2 describe_availability_zones: {exc})") from exc
        zone_id = next((z.get("ZoneId") for z in zones if z.get("ZoneName") == zone and z.get("ZoneId")), None)
        if not zone_id:
            raise FaultError(f"EC2 reports no AZ ID for {zone}: ARC zonal shift takes AZ IDs (such as use2-az1), "
                             "not zone names")
        return zone_id

    def _require_zonal_shift_enabled(self, load_balancer_arn: str) -> None:
        """Preflight: ARC shifts a load balancer only when its `zonal_shift.config.enabled` attribute is true."""
        elbv2 = self.ctx.target.aws("elbv2")
        try:
            attributes = elbv2.describe_load_balancer_attributes(LoadBalancerArn=load_balancer_arn)["Attributes"]
        except Exception as exc:
            raise FaultError(f"could not read the attributes of {load_balancer_arn} "
                             f"(elbv2 describe_load_balancer_attributes: {exc})") from exc
        if not zonal_shift_enabled(attributes):
            raise FaultError(f"zonal shift is not enabled on {load_balancer_arn}: ARC would refuse the shift. "
                             f"Enable it (elbv2 modify_load_balancer_attributes {ZONAL_SHIFT_ATTRIBUTE}=true) "
                             "or drop zonal_shift from the scenario")

    def _target_groups(self) -> list[str]:
        """Target group ARNs of the load balancer, to read the zone's target health (empty when there is none)."""
        try:
            groups = target_groups(self.ctx.target, self.load_balancer_arn)
        except Exception:
            return []
        return [tg["TargetGroupArn"] for tg in groups]

    # ---------------------------------------------------------------------------------------- inject
    def inject(self) -> None:
        target = self.ctx.target
        duration = _iso_duration(self.duration_s)
        # FIS takes at most 5 ARNs per target and one target per action key: a zone of more subnets (or
        # instances) is several targets, each cut (or stopped) by its own copy of the action, all at once.
        targets: dict[str, Any] = {}
        actions: dict[str, Any] = {}
        grouped_action(targets, actions, target="subnets", action="disrupt", resource_type="aws:ec2:subnet",
                       arns=self.subnet_arns, action_id=DISRUPT_ACTION, target_key="Subnets",
                       parameters={"duration": duration, "scope": "all"})
        if self.params.mode == "power" and self.instance_arns:
            grouped_action(targets, actions, target="instances", action="power", resource_type="aws:ec2:instance",
                           arns=self.instance_arns, action_id=STOP_ACTION, target_key="Instances",
                           parameters={"startInstancesAfterDuration": duration})
        token = template_token()
        args: dict[str, Any] = {"template_token": token}
        if self.params.zonal_shift:
            args.update(load_balancer_arn=self.load_balancer_arn, away_from=self.away_from)
        self.owe_revert(args)
        template_id = create_template(target, token, f"g7chaos az-loss of {self.params.zone} ({self.params.mode})",
                                      targets, actions, self.stop_conditions)
        self.template_id = template_id
        self.times.lost_at = time.time()      # the zone may go dark from here on: the failover clock starts
        self.experiment_id = start_experiment(target, template_id, token=token)
        await_experiment_started(target, self.experiment_id, time.time() + 10)
        if self.params.zonal_shift:
            try:
                shift = target.aws(ARC).start_zonal_shift(
                    resourceIdentifier=self.load_balancer_arn, awayFrom=self.away_from,
                    expiresIn=_expires_in(self.duration_s), comment=f"g7chaos az-loss {self.params.zone}")
            except Exception as exc:
                raise FaultError(f"ARC start_zonal_shift away from {self.away_from} failed: {exc}") from exc
            self.zonal_shift_id = shift["zonalShiftId"]
            self.zonal_shift_at = time.time()

    # ---------------------------------------------------------------------------------------- landed
    def check_landed(self) -> dict[str, Any] | None:
        not_ready = {}
        for node in self.nodes:
            try:
                current = client.CoreV1Api(self.ctx.target.kube(node.context)).read_node(node.name)
            except client.ApiException as exc:
                if exc.status == 404:
                    not_ready[node.name] = "gone"
                continue
            ready = next((c for c in current.status.conditions or [] if c.type == "Ready"), None)
            if ready is not None and ready.status != "True":
                not_ready[node.name] = ready.status
        if self.nodes and len(not_ready) == len(self.nodes):
            return {"source": "node-condition", "zone": self.params.zone, "nodes": not_ready}
        unhealthy = self._unhealthy_targets()
        if unhealthy is not None and unhealthy["targets"] and unhealthy["unhealthy"] == unhealthy["targets"]:
            return {"source": "target-health", "zone": self.params.zone, **unhealthy}
        return None

    def _unhealthy_targets(self) -> dict[str, Any] | None:
        zone_instances = {n.instance_id for n in self.nodes if n.instance_id}
        if not zone_instances or not self.target_groups:
            return None
        elbv2 = self.ctx.target.aws("elbv2")
        total = unhealthy = 0
        for tg in self.target_groups:
            for desc in elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]:
                if desc["Target"]["Id"] in zone_instances:
                    total += 1
                    unhealthy += desc["TargetHealth"]["State"] != "healthy"
        return {"targets": total, "unhealthy": unhealthy}

    # ---------------------------------------------------------------------------------------- revert
    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        """Stop the experiment (FIS restores the network and starts what it stopped), cancel our zonal shift."""
        errors = []
        try:
            stop_fis_owed(target, args)
        except Exception as exc:
            errors.append(f"FIS: {exc}")
        if args.get("load_balancer_arn"):
            try:
                arc = target.aws(ARC)
                shifts = arc.list_zonal_shifts(status="ACTIVE").get("items", [])
                for shift in shifts:
                    if shift.get("resourceIdentifier") == args["load_balancer_arn"] and \
                            str(shift.get("comment", "")).startswith("g7chaos az-loss"):
                        arc.cancel_zonal_shift(zonalShiftId=shift["zonalShiftId"])
            except Exception as exc:
                errors.append(f"ARC: {exc}")
        if errors:
            raise FaultError("; ".join(errors))
